# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite databases in a file set: a consistent copy by SQLite's online backup API (never a copy of the live
file, which a writer can change half-way), and PRAGMA integrity_check on a copy before it is stored or put in
place."""

import sqlite3
from urllib.parse import quote

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError


def _uri(path, **flags):
    """A file: URI for a path read from disk: the path is data, so every character SQLite's URI parser would read
    as syntax ('?', '#', '%') is percent-encoded."""
    query = "&".join("%s=%s" % item for item in sorted(flags.items()))
    return "file:%s?%s" % (quote(path, safe="/"), query)


def snapshot(path, copy, timeout):
    """Copy the database at `path` into the new file `copy` in one step of the online backup API: a read
    transaction on the source, so the copy is one consistent state of it, including what its WAL holds.

    The source is opened as any of its readers opens it (read-write, never creating it: mode=rw), not read-only: a
    read-only connection to a WAL database leaves -wal and -shm files behind it, which a read-write one, the last
    to close, removes as SQLite always does. This connection writes nothing of its own."""
    try:
        source = sqlite3.connect(_uri(path, mode="rw"), uri=True, timeout=timeout)
    except sqlite3.Error as error:
        raise KeelError("cannot open the SQLite database %s: %s" % (path, error))
    try:
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()
    except sqlite3.Error as error:
        raise KeelError("copying the SQLite database %s by the online backup API failed: %s (a writer that holds "
                        "its lock for longer than %gs makes this fail: run the backup when it is idle)"
                        % (path, error, timeout))
    finally:
        source.close()


def integrity_check(path, what):
    """PRAGMA integrity_check on a private copy (opened immutable: no lock, no -wal or -shm beside it).
    Raises IntegrityError with SQLite's first findings unless it says ok."""
    try:
        connection = sqlite3.connect(_uri(path, immutable=1), uri=True)
        try:
            rows = [row[0] for row in connection.execute("PRAGMA integrity_check(20)")]
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise IntegrityError("%s is not a sound SQLite database: %s" % (what, error))
    if rows != ["ok"]:
        raise IntegrityError("%s fails PRAGMA integrity_check: %s" % (what, "; ".join(str(row) for row in rows[:5])))
