# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite maintenance of one database file: integrity_check, then VACUUM, ANALYZE and PRAGMA optimize, reporting the
space reclaimed. A file another process is writing (or whose WAL a reader pins) is reported busy after a bounded
wait, never waited on forever; a file that fails integrity_check is reported and left alone (VACUUM would copy the
damage into a fresh file and hide it)."""

import os
import sqlite3

STEPS = ("integrity_check", "vacuum", "analyze", "optimize")


def _size(path):
    """Bytes the database takes, with its -wal file."""
    return sum(os.path.getsize(name) for name in (path, path + "-wal") if os.path.exists(name))


def _connect(path, busy_timeout):
    # isolation_level None: VACUUM cannot run inside the transaction the sqlite3 module would open.
    return sqlite3.connect("file:%s?mode=rw" % path.replace("?", "%3f").replace("#", "%23"), uri=True,
                           timeout=busy_timeout, isolation_level=None)


def _integrity(conn):
    rows = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


def _reclaimable(conn):
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size


def _take_exclusive(conn):
    """Prove no other connection writes or pins the file, within the connection's busy timeout; the error text
    when one does."""
    try:
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        return str(error)
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            return "its WAL is in use by another connection"
    return ""


def _needed(conn, steps, reclaimable):
    """The steps that would do something: VACUUM only with free pages to give back, ANALYZE after a VACUUM or where
    no statistics exist yet, PRAGMA optimize always (it judges for itself, usually doing nothing). A second run
    right after a first is then a no-op, as Ansible expects of a task."""
    has_stats = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0]
    wanted = {"vacuum": reclaimable > 0, "optimize": True}
    wanted["analyze"] = wanted["vacuum"] and "vacuum" in steps or not has_stats
    return [step for step in steps if wanted.get(step)]


def maintain(path, steps=STEPS, busy_timeout=5.0, check_mode=False):
    """Run `steps` on the database at `path`; returns what was found and done. Check mode runs integrity_check and
    estimates the space VACUUM would reclaim (the free pages), changing nothing."""
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ValueError("unknown SQLite maintenance steps %s; choose from %s" % (", ".join(unknown), ", ".join(STEPS)))
    before = _size(path)
    conn = _connect(path, busy_timeout)
    try:
        try:
            result = {"path": path, "size_before": before, "reclaimable": _reclaimable(conn), "done": [],
                      "integrity": _integrity(conn) if "integrity_check" in steps else None, "busy": None}
        except sqlite3.DatabaseError as error:  # damage SQLite notices before integrity_check can run
            return {"path": path, "size_before": before, "size_after": before, "reclaimable": None, "done": [],
                    "integrity": str(error), "busy": None, "reclaimed": 0, "changed": False}
        if result["integrity"] not in (None, "ok"):
            return dict(result, size_after=before, reclaimed=0, changed=False)
        writes = _needed(conn, steps, result["reclaimable"])
        changes = bool(set(writes) - {"optimize"})
        if check_mode or not writes:
            return dict(result, size_after=before, reclaimed=0, changed=changes, would=writes)
        result["busy"] = _take_exclusive(conn) or None
        if result["busy"]:
            return dict(result, size_after=before, reclaimed=0, changed=False)
        for step in writes:
            conn.execute({"vacuum": "VACUUM", "analyze": "ANALYZE", "optimize": "PRAGMA optimize"}[step])
            result["done"].append(step)
    finally:
        conn.close()
    after = _size(path)
    return dict(result, size_after=after, reclaimed=max(before - after, 0), changed=changes)
