# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replacing a live database without dropping it first: the staging name a restore is built under, the
advisory lock that keeps two restores of one target apart, and the swap by renaming both in one transaction."""

import hashlib
import time

from ansible_collections.keel.ops.plugins.module_utils._errors import PostgresError, first_line
from ansible_collections.keel.ops.plugins.module_utils._postgres.catalog import translated

try:
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql
except ImportError:
    psycopg2 = None


SWAP_ATTEMPTS = 5


def _name_hash(name):
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]


def staging_name(target):
    """Where a restore that replaces `target` is built; fixed per target, so a killed run's leftover is found."""
    return "keel_restore_%s" % _name_hash(target)


def replaced_name(target):
    """What `target` is renamed to by the swap, until the new one has taken its place and it can be dropped."""
    return "keel_replaced_%s" % _name_hash(target)


def restore_lock_key(target):
    """The advisory lock that keeps two restores from building the same target at once."""
    return int.from_bytes(hashlib.sha256(b"keel.ops restore " + target.encode("utf-8")).digest()[:8], "big",
                          signed=True)


@translated("take the restore lock of the target database")
def try_restore_lock(conn, target):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (restore_lock_key(target),))
        return cur.fetchone()[0]


@translated("read the owner of the target database")
def database_owner(conn, name):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
        row = cur.fetchone()
    return row[0] if row else None


def swap_in(conn, staging, target, wait=1.0):
    """Put `staging` in the place of `target` in one transaction (both renames or neither), after ending the
    sessions on `target`; returns the name the previous `target` now has. Sessions that reconnect in between
    make a rename fail: retried a few times."""
    old = replaced_name(target)
    statements = [
        (sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> "
                 "pg_backend_pid()").format(sql.Literal(target)), None),
        (sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(target), sql.Identifier(old)), None),
        (sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(target)), None),
    ]
    conn.autocommit = False
    try:
        for attempt in range(SWAP_ATTEMPTS):
            try:
                with conn.cursor() as cur:
                    for statement, args in statements:
                        cur.execute(statement, args)
                conn.commit()
                return old
            except psycopg2.errors.ObjectInUse as error:
                conn.rollback()
                if attempt == SWAP_ATTEMPTS - 1:
                    raise PostgresError("cannot swap the restored database in: %s kept getting new sessions (%s); "
                                        "the restored copy is %s and %s is untouched. Stop its clients and run "
                                        "the restore again" % (target, first_line(error), staging, target))
                time.sleep(wait)
            except psycopg2.Error as error:
                conn.rollback()
                raise PostgresError("cannot swap the restored database %s in for %s: %s; %s is untouched"
                                    % (staging, target, first_line(error), target))
    finally:
        conn.autocommit = True
