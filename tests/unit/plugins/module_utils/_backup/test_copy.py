"""Offsite copies between two local repositories: options, what is copied, what is refused."""

import hashlib

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup import copy
from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError


def _params(tmp_path, **extra):
    params = dict(repository=str(tmp_path / "a"), to_repository=str(tmp_path / "b"), kind="files", source="app1",
                  backup_id="latest", before=None, lock_timeout=5, keep_last=None, keep_daily=None,
                  keep_weekly=None, keep_monthly=None)
    params.update(extra)
    return params


def _backup(repo, content=b"data"):
    """A minimal files backup (one artifact serving as archive and index), committed."""
    backup_id = new_backup_id()
    with repo.artifact_writer(backup_id, "files.tar") as writer:
        writer.write(content)
        writer.commit()
    digest = hashlib.sha256(content).hexdigest()
    repo.commit({"id": backup_id, "kind": "files", "format": "tar", "source": {"name": repo.source, "paths": ["/x"]},
                 "artifacts": [{"name": "files.tar", "kind": "files", "size": len(content), "raw_size": len(content),
                                "sha256": digest},
                               {"name": "files.tar", "kind": "index", "size": len(content),
                                "raw_size": len(content), "sha256": digest}],
                 "compression": {"algorithm": "none", "level": None}, "encryption": None,
                 "statistics": {"files": 1}, "started": "2026-12-01T00:00:00Z"})
    return backup_id


def test_the_destination_options_are_read_without_their_prefix():
    assert copy.destination_params({"to_s3_region": "eu-west-1", "to_repository": "x", "s3_region": "other"}) \
        == {"s3_region": "eu-west-1"}


@pytest.mark.parametrize("extra, expected", [
    ({"kind": "mysql"}, "kind must be one of"),
    ({"source": "../etc"}, "not usable as a repository folder name"),
    ({"to_repository": "relative"}, "is relative"),
])
def test_bad_options_are_refused_before_anything_is_reached(tmp_path, extra, expected):
    with pytest.raises(ConfigError, match=expected):
        copy.CopyConfig.from_params(_params(tmp_path, **extra))


def test_copying_into_the_same_repository_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is the repository itself"):
        copy.CopyConfig.from_params(_params(tmp_path, to_repository=str(tmp_path / "a") + "/"))


def test_a_copy_is_idempotent_and_an_id_holding_other_artifacts_is_an_error(tmp_path):
    source = Repository(LocalStorage(str(tmp_path / "a")), "files", "app1")
    backup_id = _backup(source)
    config = copy.CopyConfig.from_params(_params(tmp_path))
    first = copy.copy_backups(config, Reporter())
    assert first["copied"] == [backup_id] and first["changed"]
    again = copy.copy_backups(config, Reporter())
    assert again["copied"] == [] and not again["changed"] and again["sources"][0]["present"] == [backup_id]

    destination = Repository(LocalStorage(str(tmp_path / "b")), "files", "app1")
    clashing = source.load(backup_id)  # another writer's backup under the same id: other artifacts
    clashing.manifest["artifacts"][0]["sha256"] = "0" * 64
    with pytest.raises(IntegrityError, match="with other artifacts"):
        copy._state_at(destination, clashing)  # pylint: disable=protected-access
