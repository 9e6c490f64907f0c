# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The work pg_maintenance does on one database: VACUUM (ANALYZE) table by table, most dead tuples first, FULL only
where named; REINDEX INDEX CONCURRENTLY index by index, never a whole database (the runbooks' REINDEX DATABASE locks
every table). Plan first (what qualifies and why), then apply.

Every statement runs outside a transaction under a lock timeout, so one busy table is skipped and reported instead
of stalling the window; an interrupted concurrent reindex leaves an invalid <index>_ccnew behind, which the next
statement here drops. Invalid indexes found beforehand are reported, never rebuilt: a REINDEX would make a failed
unique index valid only if its duplicates were gone, and the leftovers of someone else's reindex are theirs to
judge (the cleanup statement is in the report)."""

import re
import time

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, first_line
from ansible_collections.keel.ops.plugins.module_utils._maintenance.pg_stats import qualified

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    psycopg2 = sql = None

LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")
CONCURRENT_REINDEX_SINCE = 12


def split_name(name):
    """("schema", "table") of "schema.table", split at the first dot; a bare name is in public."""
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else ("public", name)


def _named(items, names, what, name_key):
    """The items `names` names; a name that matches none is a mistake worth stopping for."""
    wanted = set("%s.%s" % split_name(name) for name in names)
    unknown = sorted(wanted - set(qualified(item, name_key) for item in items))
    if unknown:
        raise ConfigError("no %s %s in this database; name them as schema.name" % (what, ", ".join(unknown)))
    return wanted


def vacuum_plan(tables, min_dead_tuples, full=()):
    """Tables to VACUUM (ANALYZE), most dead tuples first: those with at least `min_dead_tuples`, and those named in
    `full` (VACUUM FULL rewrites the table under an exclusive lock, so it is only ever asked for by name)."""
    full = _named(tables, full, "table", "table")
    plan = []
    for table in tables:
        name = qualified(table)
        if table["dead_tuples"] >= min_dead_tuples or name in full:
            plan.append({"schema": table["schema"], "table": table["table"], "full": name in full,
                         "dead_tuples": table["dead_tuples"], "dead_ratio": table["dead_ratio"]})
    return sorted(plan, key=lambda item: -item["dead_tuples"])


def _quoted(name):
    return '"%s"' % name.replace('"', '""')


def invalid_indexes(indexes):
    """Invalid indexes with what they are: a failed CREATE INDEX CONCURRENTLY, or the leftover of an interrupted
    REINDEX CONCURRENTLY; and the statement that removes one."""
    return [{"schema": index["schema"], "name": index["name"], "table": index["table"], "bytes": index["bytes"],
             "leftover": bool(LEFTOVER.search(index["name"])),
             "cleanup": "DROP INDEX CONCURRENTLY %s.%s;" % (_quoted(index["schema"]), _quoted(index["name"]))}
            for index in indexes if not index["valid"]]


def _cannot_rebuild(index, server_major):
    if not index["valid"]:
        return "invalid index: reported, not rebuilt (drop it, or fix its cause and create it again)"
    if server_major < CONCURRENT_REINDEX_SINCE:
        return "PostgreSQL %d has no REINDEX CONCURRENTLY and a plain REINDEX would lock the table" % server_major
    if index["exclusion"]:
        return "an exclusion constraint's index cannot be rebuilt concurrently"
    return None


def reindex_plan(indexes, server_major, names=(), min_bloat=0.3, min_bytes=1 << 20):
    """(plan, skipped): the indexes to rebuild - those named, or else B-trees whose estimated bloat is at least
    `min_bloat` of at least `min_bytes` - and the ones that qualified but cannot be rebuilt, with why."""
    named = _named(indexes, names, "index", "name") if names else None
    plan, skipped = [], []
    for index in indexes:
        if named is not None:
            wanted = qualified(index, "name") in named
        else:
            wanted = (index["bloat_ratio"] or 0) >= min_bloat and index["bytes"] >= min_bytes
        if not wanted and (named is not None or index["valid"]):
            continue
        reason = _cannot_rebuild(index, server_major)
        entry = {"schema": index["schema"], "name": index["name"], "table": index["table"], "bytes": index["bytes"],
                 "bloat_ratio": index["bloat_ratio"]}
        if reason:
            skipped.append(dict(entry, step="reindex", reason=reason))
        else:
            plan.append(entry)
    return plan, skipped


class Worker:
    """Runs planned steps on an autocommit connection under a lock timeout; a step that cannot get its lock, or
    fails, is skipped with the server's reason and the rest go on."""

    def __init__(self, conn, lock_timeout):
        self.conn = conn
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('lock_timeout', %s, false)", ("%dms" % int(lock_timeout * 1000),))

    def _run(self, statement, params=None):
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def _one(self, query, params):
        rows = self._run(query, params)
        return rows[0][0] if rows else None

    def vacuum(self, item):
        options = sql.SQL("FULL, ANALYZE" if item["full"] else "ANALYZE")
        statement = sql.SQL("VACUUM ({}) {}").format(options, sql.Identifier(item["schema"], item["table"]))
        started = time.time()
        failure = self._attempt(statement)
        if failure:
            return dict(item, step="vacuum", reason=failure), False
        after = self._one("SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s",
                          (item["schema"], item["table"]))
        return dict(item, dead_tuples_after=after, seconds=round(time.time() - started, 3)), True

    def reindex(self, item, existing=()):
        statement = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(item["schema"], item["name"]))
        started = time.time()
        failure = self._attempt(statement)
        if failure:
            dropped = self._drop_own_leftovers(item, set(existing))
            return dict(item, step="reindex", reason=failure, dropped_leftovers=dropped), False
        after = self._one("SELECT pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = %s AND c.relname = %s", (item["schema"], item["name"]))
        return dict(item, bytes_after=after, seconds=round(time.time() - started, 3)), True

    def _attempt(self, statement):
        """None when `statement` ran; the server's reason when it did not. A lost connection ends the run."""
        try:
            self._run(statement)
        except psycopg2.Error as error:
            if self.conn.closed:
                raise
            return first_line(error)
        return None

    def _drop_own_leftovers(self, item, existing):
        """The invalid <index>_ccnew a failed REINDEX CONCURRENTLY of `item` left: ours (it was not among the
        `existing` indexes before), so removed now."""
        rows = self._run("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class t ON t.oid = i.indrelid "
                         "WHERE n.nspname = %s AND t.relname = %s AND NOT i.indisvalid",
                         (item["schema"], item["table"]))
        dropped = []
        for (name,) in rows or []:
            ours = name not in existing and name.startswith(item["name"][:40]) and "_ccnew" in name
            if ours and self._attempt(self._drop_statement(item["schema"], name)) is None:
                dropped.append(name)
        return dropped

    @staticmethod
    def _drop_statement(schema, name):
        return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(name))

    def drop_leftover(self, leftover):
        """Drop a leftover of an earlier interrupted reindex, when asked to; (entry, done)."""
        failure = self._attempt(self._drop_statement(leftover["schema"], leftover["name"]))
        return (dict(leftover, step="drop_leftover", reason=failure), False) if failure else (leftover, True)
