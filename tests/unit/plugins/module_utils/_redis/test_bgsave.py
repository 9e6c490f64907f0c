"""An RDB on this host is read as the server's only through its own path, never through a symlink."""

import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis import bgsave as redis_bgsave


def test_an_rdb_on_disk_is_never_read_through_a_symlink(tmp_path):
    target = tmp_path / "secret"
    target.write_text("not an rdb")
    os.symlink(str(target), str(tmp_path / "dump.rdb"))
    with pytest.raises(RedisError, match="cannot read the RDB .*dump.rdb: Too many levels of symbolic links"):
        redis_bgsave.BgsaveRdb._open_file(str(tmp_path / "dump.rdb"))  # pylint: disable=protected-access
