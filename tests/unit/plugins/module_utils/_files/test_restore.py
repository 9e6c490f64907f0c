"""Restore plans: what each index record would do to what is on disk, and the checks before anything is touched."""

import hashlib
import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import restore


class _Config:
    def __init__(self, restore_paths=None, journal_dir=None):
        self.restore_paths, self.journal_dir = restore_paths, journal_dir


def _file(name, content):
    return {"name": name, "type": "file", "mode": 0o644, "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest()}


def test_the_plan_tells_created_replaced_and_unchanged_apart(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "same").write_bytes(b"same")
    (tmp_path / "app" / "other").write_bytes(b"different")
    os.link(str(tmp_path / "app" / "same"), str(tmp_path / "app" / "link-same"))
    os.link(str(tmp_path / "app" / "other"), str(tmp_path / "app" / "link-other"))
    index = {"app": {"name": "app", "type": "directory", "mode": 0o755},
             "app/same": _file("app/same", b"same"), "app/other": _file("app/other", b"stored"),
             "app/new": _file("app/new", b"new!"),
             "app/link-same": {"name": "app/link-same", "type": "hardlink", "mode": 0o644, "link": "app/same"},
             "app/link-other": {"name": "app/link-other", "type": "hardlink", "mode": 0o644, "link": "app/other"}}
    plan, size = restore.plan_restore(str(tmp_path), index, None)
    assert plan == {"create": ["app/new"], "replace": ["app/link-other", "app/other"],
                    "unchanged": ["app", "app/link-same", "app/same"]}
    assert size == len(b"stored") + len(b"new!")
    only, _size = restore.plan_restore(str(tmp_path), index, ["app/new"])
    assert only == {"create": ["app/new"], "replace": [], "unchanged": []}


def test_restore_paths_must_lie_inside_the_backup():
    assert restore.wanted_names(_Config(["/srv/app/data"]), ["srv/app"]) == ["srv/app/data"]
    assert restore.wanted_names(_Config(), ["srv/app"]) is None
    with pytest.raises(ConfigError, match="is not inside the paths the backup holds"):
        restore.wanted_names(_Config(["/srv/application"]), ["srv/app"])
    with pytest.raises(ConfigError, match="without '..'"):
        restore.wanted_names(_Config(["/srv/app/../x"]), ["srv/app"])


def test_not_enough_free_space_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(KeelError, match="free some space"):
        restore._check_space(str(tmp_path / "not" / "yet"), 1 << 60)  # pylint: disable=protected-access
    assert restore._check_space(str(tmp_path), 1) > 0  # pylint: disable=protected-access


def test_each_root_and_source_has_its_own_journal(tmp_path):
    config = _Config(journal_dir=str(tmp_path))
    paths = {restore.journal_path(config, root, source) for root in ("/", "/t") for source in ("a", "b")}
    assert len(paths) == 4 and all(path.startswith(str(tmp_path)) for path in paths)
