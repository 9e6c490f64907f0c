# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data retention for pg_maintenance: delete the rows of named tables older than N days, a batch at a time.

Each batch is its own short transaction (a single DELETE of a year of rows would hold its locks and bloat the WAL
in one go), with a pause between batches so replicas and autovacuum keep up. The cutoff is fixed once at the
start, so rows that age past it during the run wait for the next one and the run always ends. Table and column
names are checked against the catalog and quoted as identifiers; they are never SQL."""

import time

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._postgres.catalog import translated

try:
    from psycopg2 import sql
except ImportError:
    sql = None

TIME_TYPES = ("timestamp with time zone", "timestamp without time zone", "date")

_COLUMN_SQL = """
SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
      AND c.relkind IN ('r', 'p')"""


def rule(spec):
    """A retention rule with its defaults, or a ConfigError saying what is missing or wrong."""
    missing = [key for key in ("table", "column", "older_than_days") if spec.get(key) in (None, "")]
    if missing:
        raise ConfigError("a retention rule needs %s (got %s)" % (", ".join(missing), sorted(spec)))
    found = {"schema": spec.get("schema") or "public", "table": spec["table"], "column": spec["column"],
             "older_than_days": float(spec["older_than_days"]), "batch_size": int(spec.get("batch_size") or 5000),
             "pause": float(spec.get("pause", 0.5) or 0), "max_rows": spec.get("max_rows")}
    if found["older_than_days"] <= 0 or found["batch_size"] < 1 or found["pause"] < 0:
        raise ConfigError("retention of %s.%s: older_than_days must be above 0, batch_size at least 1 and pause "
                          "not negative" % (found["schema"], found["table"]))
    return found


def _identifiers(item):
    return sql.Identifier(item["schema"], item["table"]), sql.Identifier(item["column"])


@translated("check a retention rule against the catalog")
def check(conn, item):
    with conn.cursor() as cur:
        cur.execute(_COLUMN_SQL, (item["schema"], item["table"], item["column"]))
        row = cur.fetchone()
    where = "%s.%s.%s" % (item["schema"], item["table"], item["column"])
    if not row:
        raise ConfigError("retention: no table column %s in this database" % where)
    if row[0] not in TIME_TYPES:
        raise ConfigError("retention: %s is %s; it must be a timestamp or a date" % (where, row[0]))


@translated("publish the statistics of the retention deletes")
def publish_statistics(conn, server_major):
    """Make this session's deletes count in pg_stat_user_tables before the vacuum plan reads it. A backend keeps
    its counters to itself for up to a second, and counters flushed after VACUUM would be added back onto the
    zero it leaves. From PostgreSQL 15 the flush can be forced; it happens once the session is idle, after this."""
    if server_major >= 15:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")


@translated("apply a retention rule")
def apply(conn, item, check_mode=False, sleep=time.sleep):
    """Rows older than the rule's cutoff: counted in check mode, else deleted in batches. Returns the rule with
    `cutoff`, `matched` (check mode) or `deleted` and `batches`."""
    check(conn, item)
    table, column = _identifiers(item)
    with conn.cursor() as cur:
        cur.execute("SELECT now() - %s * interval '1 day'", (item["older_than_days"],))
        cutoff = cur.fetchone()[0]
        result = dict(item, cutoff=cutoff.isoformat(), deleted=0, batches=0)
        if check_mode:
            cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} < %s").format(table, column), (cutoff,))
            return dict(result, matched=cur.fetchone()[0])
        # ctid = ANY(ARRAY(...)) makes each batch a TID scan; the outer condition is checked again, so a row that
        # moved or changed between the two never goes unless it is old too.
        batch = sql.SQL("DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {c} < %(cutoff)s "
                        "LIMIT %(size)s)) AND {c} < %(cutoff)s").format(t=table, c=column)
        limit = item["max_rows"]
        while limit is None or result["deleted"] < limit:
            size = item["batch_size"] if limit is None else min(item["batch_size"], limit - result["deleted"])
            cur.execute(batch, {"cutoff": cutoff, "size": size})
            if cur.rowcount <= 0:
                break
            result["deleted"] += cur.rowcount
            result["batches"] += 1
            if cur.rowcount < size:
                break
            if item["pause"]:
                sleep(item["pause"])
    return result
