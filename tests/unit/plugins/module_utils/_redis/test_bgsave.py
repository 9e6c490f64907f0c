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


class _NoInfoServer:
    """A server that must not be asked: the rename alone says the save is over."""

    def info(self, section=None):
        raise AssertionError("INFO asked after the RDB was renamed into place")

    def describe(self):
        return "redis://test"


def _tailing(tmp_path, temp):
    rdb = redis_bgsave.BgsaveRdb.__new__(redis_bgsave.BgsaveRdb)
    rdb.server, rdb.path, rdb.directory = _NoInfoServer(), str(tmp_path / "dump.rdb"), str(tmp_path)
    rdb.handle = redis_bgsave.BgsaveRdb._open_file(str(temp))  # pylint: disable=protected-access
    rdb.tailed, rdb.complete = True, False
    return rdb


def test_a_tailed_save_ends_when_its_file_is_renamed_into_place(tmp_path):
    temp = tmp_path / "temp-123.rdb"
    temp.write_bytes(b"REDIS0010 first")
    rdb = _tailing(tmp_path, temp)
    assert rdb.read(1024) == b"REDIS0010 first"
    with open(str(temp), "ab") as handle:
        handle.write(b" last")
    os.rename(str(temp), str(tmp_path / "dump.rdb"))
    assert rdb.read(1024) == b" last"
    assert rdb.read(1024) == b""
    assert rdb.complete
    rdb.close()


def test_an_older_rdb_at_the_final_path_does_not_end_a_tailed_save(tmp_path):
    (tmp_path / "dump.rdb").write_bytes(b"REDIS0010 old")
    temp = tmp_path / "temp-123.rdb"
    temp.write_bytes(b"REDIS0010 new")
    rdb = _tailing(tmp_path, temp)
    assert rdb.read(1024) == b"REDIS0010 new"
    assert not rdb._renamed_into_place()  # pylint: disable=protected-access
    rdb.close()
