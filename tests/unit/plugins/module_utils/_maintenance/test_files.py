"""Which files log_cleanup picks, and the directories it refuses."""

import os
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._maintenance.files import check_root, cleanup, matches


def test_names_match_the_patterns_unless_excluded():
    assert matches("app.log.3.gz", ("*.log", "*.log.*"), ())
    assert not matches("app.txt", ("*.log", "*.log.*"), ())
    assert not matches("audit.log", ("*.log",), ("audit*",))


def test_roots_are_resolved_and_the_system_root_refused(tmp_path):
    os.symlink(str(tmp_path), str(tmp_path / "here"))
    assert check_root(str(tmp_path / "here")) == os.path.realpath(str(tmp_path))
    with pytest.raises(ConfigError, match="is the whole system"):
        check_root("/tmp/..")


def test_without_recursion_only_the_top_directory_is_cleaned(tmp_path):
    (tmp_path / "sub").mkdir()
    old = time.time() - 30 * 86400
    for path in (tmp_path / "a.log", tmp_path / "sub" / "b.log"):
        path.write_text("x")
        os.utime(str(path), (old, old))
    found = cleanup([str(tmp_path)], recurse=False, check_mode=True)
    assert [f["path"] for f in found["files"]] == [str(tmp_path / "a.log")] and found["changed"]
    listed = cleanup([str(tmp_path)], check_mode=True, list_limit=1)
    assert listed["count"] == 2 and len(listed["files"]) == 1
