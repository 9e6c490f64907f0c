"""SQLite maintenance on real database files: space reclaimed, check mode, damage and busy files reported."""

import sqlite3

import pytest

from ansible_collections.keel.ops.plugins.module_utils._maintenance.sqlite import maintain


def make_db(path, wal=False):
    db = sqlite3.connect(str(path))
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 2000)
    db.commit()
    db.execute("DELETE FROM t WHERE rowid > 1000")  # the second half of the pages become free
    db.commit()
    db.close()
    return str(path)


def test_vacuum_reclaims_the_free_pages_and_reports_them(tmp_path):
    path = make_db(tmp_path / "clo.db")
    found = maintain(path)
    assert found["integrity"] == "ok" and found["done"] == ["vacuum", "analyze", "optimize"] and found["busy"] is None
    assert found["reclaimable"] > 500000 and found["reclaimed"] > 500000 and found["changed"] is True
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1000
    assert db.execute("SELECT count(*) FROM sqlite_stat1").fetchone()[0] >= 1, "ANALYZE ran"


def test_a_second_run_right_after_the_first_changes_nothing(tmp_path):
    path = make_db(tmp_path / "clo.db")
    maintain(path)
    again = maintain(path)
    assert again["changed"] is False and again["done"] == ["optimize"] and again["reclaimed"] == 0
    assert maintain(path, check_mode=True)["would"] == ["optimize"]


def test_check_mode_estimates_and_changes_nothing(tmp_path):
    path = make_db(tmp_path / "clo.db")
    with open(path, "rb") as handle:
        before = handle.read()
    found = maintain(path, check_mode=True)
    assert found["would"] == ["vacuum", "analyze", "optimize"] and found["reclaimable"] > 500000
    assert found["reclaimed"] == 0 and found["done"] == []
    with open(path, "rb") as handle:
        assert handle.read() == before


def test_a_file_another_process_writes_is_reported_busy_not_waited_on(tmp_path):
    path = make_db(tmp_path / "clo.db", wal=True)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES ('held')")
    try:
        found = maintain(path, busy_timeout=0.2)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert found["busy"] == "database is locked" and found["done"] == [] and found["changed"] is False


def test_a_damaged_file_is_reported_and_left_alone(tmp_path):
    path = make_db(tmp_path / "clo.db")
    with open(path, "r+b") as handle:
        handle.seek(4096 * 3)
        handle.write(b"\xff" * 4096)
    found = maintain(path)
    assert found["integrity"] != "ok" and found["done"] == [] and found["changed"] is False, found
    with open(path, "r+b") as handle:  # a header SQLite refuses outright is reported the same way
        handle.write(b"not a database at all")
    found = maintain(path)
    assert found["integrity"] == "file is not a database" and found["changed"] is False


def test_unknown_steps_are_refused():
    with pytest.raises(ValueError, match="unknown SQLite maintenance steps reindex"):
        maintain("/nonexistent.db", steps=("reindex",))
