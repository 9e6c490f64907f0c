"""SQLite copies by the online backup API, and integrity_check on private copies."""

import os
import sqlite3

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import sqlite


def _database(path, rows=100):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    db.commit()
    return db


def test_a_copy_holds_what_only_the_wal_holds_and_creates_nothing_beside_the_source(tmp_path):
    source = str(tmp_path / "we?ird#name%20.db")  # URI syntax in a file name is data
    db = _database(source)
    before = sorted(os.listdir(str(tmp_path)))
    copy = str(tmp_path / "copy")
    sqlite.snapshot(source, copy, timeout=5)
    assert sorted(name for name in os.listdir(str(tmp_path)) if name != "copy") == before
    db.close()
    sqlite.integrity_check(copy, "the copy")
    assert os.listdir(str(tmp_path)).count("copy-shm") == 0  # checked as immutable: nothing beside the copy
    assert sqlite3.connect(copy).execute("SELECT count(*) FROM t").fetchone()[0] == 100


def test_a_copy_of_a_closed_wal_database_leaves_no_wal_or_shm_behind(tmp_path):
    source = str(tmp_path / "idle.db")
    _database(source).close()  # the last connection closed: SQLite removed its -wal and -shm
    assert sorted(os.listdir(str(tmp_path))) == ["idle.db"]
    sqlite.snapshot(source, str(tmp_path / "copy"), timeout=5)
    assert sorted(os.listdir(str(tmp_path))) == ["copy", "idle.db"]


def test_a_missing_database_is_named(tmp_path):
    with pytest.raises(KeelError, match="cannot open the SQLite database"):
        sqlite.snapshot(str(tmp_path / "absent.db"), str(tmp_path / "copy"), timeout=1)


def test_a_damaged_database_fails_integrity_check(tmp_path):
    path = str(tmp_path / "d.db")
    _database(path, rows=5000).close()
    with open(path, "r+b") as handle:
        handle.seek(4096 * 2)
        handle.write(b"\xff" * 4096)
    with pytest.raises(IntegrityError, match="the restored copy"):
        sqlite.integrity_check(path, "the restored copy")
    garbage = tmp_path / "g.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    with pytest.raises(IntegrityError, match="is not a sound SQLite database|fails PRAGMA integrity_check"):
        sqlite.integrity_check(str(garbage), "g")
