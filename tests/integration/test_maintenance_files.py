"""log_cleanup and sqlite_maintenance run as Ansible runs them, on real files: old logs deleted and new ones kept,
nothing outside the directory reached through a symlink, and SQLite files vacuumed, or reported busy or damaged."""

import os
import sqlite3
import time

from ansible_run import run_four_ways, run_module

DAY = 86400


def write(path, data=b"x" * 1000, age_days=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def test_old_log_files_are_deleted_and_new_ones_kept_four_ways(tmp_path):
    logs, outside = tmp_path / "logs", tmp_path / "outside"
    old = [write(logs / "app.log.1", age_days=10), write(logs / "nested" / "worker.log", age_days=30)]
    new = [write(logs / "app.log", age_days=1), write(logs / "app.log.2", age_days=6.5)]
    other = [write(logs / "state.db", age_days=90), write(logs / "audit.log", age_days=90)]
    secret = write(outside / "precious.log", age_days=365)
    os.symlink(str(secret), str(logs / "linked.log"))
    os.symlink(str(outside), str(logs / "linked-dir"))
    args = {"paths": [str(logs)], "older_than_days": 7, "exclude": ["audit*"]}
    check, real, check_again, again = run_four_ways("log_cleanup", args)
    assert check["changed"] and check["count"] == 2 and check["bytes"] == 2000
    assert sorted(f["path"] for f in check["files"]) == sorted(str(p) for p in old)
    assert real["changed"] and real["count"] == 2 and real["roots"] == [{"path": str(logs), "count": 2, "bytes": 2000}]
    assert not any(p.exists() for p in old) and all(p.exists() for p in new + other + [secret])
    assert os.path.islink(str(logs / "linked.log")) and (logs / "nested").is_dir()
    assert not check_again["changed"] and not again["changed"] and again["count"] == 0


def test_log_cleanup_refuses_the_root_and_relative_paths(tmp_path):
    for path, message in (("/", "is the whole system"), ("var/log", "is not an absolute path"),
                          (str(tmp_path / "missing"), "is not a directory")):
        result = run_module("log_cleanup", {"paths": [path]})
        assert result["failed"] and message in result["msg"], result["msg"]


def make_db(path, rows=2000):
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * rows)
    db.commit()
    db.execute("DELETE FROM t WHERE rowid > %d" % (rows // 2))
    db.commit()
    db.close()
    return str(path)


def test_sqlite_files_are_vacuumed_busy_ones_reported_and_damaged_ones_fail_the_task(tmp_path):
    clean, busy = make_db(tmp_path / "clean.db"), make_db(tmp_path / "busy.db")
    holder = sqlite3.connect(busy, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer that does not let go
    try:
        check, real, check_again, again = run_four_ways("sqlite_maintenance", {"paths": [clean, busy],
                                                                               "busy_timeout": 0.5})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert check["changed"] and check["reclaimed"] == 0 and os.path.getsize(clean) > 1000000
    assert real["changed"] and real["busy"] == [busy] and real["reclaimed"] > 500000 and not real["damaged"]
    # the clean file has nothing left to do; the busy one still waits for its turn
    assert [f["changed"] for f in check_again["files"]] == [False, True] and again["busy"] == [busy]
    assert [f["changed"] for f in again["files"]] == [False, False] and not again["changed"]
    assert sqlite3.connect(clean).execute("SELECT count(*) FROM t").fetchone()[0] == 1000
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    failed = run_module("sqlite_maintenance", {"paths": [clean, str(damaged)]})
    assert failed["failed"] and failed["damaged"] == [str(damaged)] and "restore them from a backup" in failed["msg"]
    assert damaged.read_bytes().endswith(b"\xff" * 100)
