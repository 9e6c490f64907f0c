# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What PostgreSQL's statistics say about one database's tables and indexes, for pg_maintenance: dead tuples,
sizes, and a bloat estimate from the planner's statistics, the way the well-known check_postgres / ioguix queries
estimate it: the pages the live rows would need at the relation's fillfactor, against the pages it has.

The estimate needs no extension (pgstattuple reads every page; this reads the catalog) and is only an estimate:
a relation never analyzed, or an index on an expression, has none (None)."""

import math

from ansible_collections.keel.ops.plugins.module_utils._postgres.catalog import translated

# User relations only: system catalogs and TOAST tables are the server's business.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

# The size functions open the relation and so queue behind an exclusive lock: a relation someone holds (or waits
# for) exclusively gets its size from the catalog instead, as of its last VACUUM or ANALYZE.
_HELD = ("WITH held AS (SELECT DISTINCT relation FROM pg_locks "
         "WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND database = "
         "(SELECT oid FROM pg_database WHERE datname = current_database()))\n")

_TABLES_SQL = _HELD + """
SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, c.relpages, c.reltuples,
       CASE WHEN l.locked THEN c.relpages::bigint * current_setting('block_size')::int ELSE pg_table_size(c.oid) END,
       CASE WHEN l.locked THEN NULL ELSE pg_total_relation_size(c.oid) END, w.width,
       coalesce((SELECT substring(o FROM 'fillfactor=(\\d+)')::int FROM unnest(c.reloptions) o
                 WHERE o LIKE 'fillfactor=%'), 100),
       greatest(s.last_vacuum, s.last_autovacuum), greatest(s.last_analyze, s.last_autoanalyze)
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
CROSS JOIN LATERAL (SELECT {oid} IN (SELECT relation FROM held) AS locked) l
LEFT JOIN (SELECT schemaname, tablename, sum((1 - null_frac) * avg_width) AS width
           FROM pg_stats GROUP BY 1, 2) w ON w.schemaname = s.schemaname AND w.tablename = s.relname
WHERE c.relkind IN ('r', 'm')
ORDER BY s.n_dead_tup DESC, s.schemaname, s.relname""".format(oid="c.oid")

_INDEXES_SQL = _HELD + """
SELECT n.nspname, ic.relname, tc.relname, am.amname, i.indisvalid, i.indisunique, i.indisprimary,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype = 'x') AS exclusion,
       CASE WHEN l.locked THEN ic.relpages::bigint * current_setting('block_size')::int
            ELSE pg_relation_size(i.indexrelid) END, ic.reltuples,
       coalesce(s.idx_scan, 0),
       (SELECT sum((1 - st.null_frac) * st.avg_width) FROM unnest(i.indkey) k(attnum)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = tc.relname AND st.attname = a.attname)
       AS width,
       0 = ANY (i.indkey::int2[]) AS has_expression,
       coalesce((SELECT substring(o FROM 'fillfactor=(\\d+)')::int FROM unnest(ic.reloptions) o
                 WHERE o LIKE 'fillfactor=%%'), 90)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
JOIN pg_am am ON am.oid = ic.relam
CROSS JOIN LATERAL (SELECT {oid} IN (SELECT relation FROM held) AS locked) l
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE ic.relkind = 'i' AND n.nspname NOT IN %(system)s AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 10 DESC, n.nspname, ic.relname""".format(oid="i.indexrelid")

TABLE_FIELDS = ("schema", "table", "live_tuples", "dead_tuples", "pages", "estimated_rows", "table_bytes",
                "total_bytes", "row_width", "fillfactor", "last_vacuum", "last_analyze")
INDEX_FIELDS = ("schema", "name", "table", "method", "valid", "unique", "primary", "backs_constraint", "exclusion",
                "bytes", "estimated_rows", "scans", "key_width", "has_expression", "fillfactor")

HEAP_TUPLE_HEADER = 24  # HeapTupleHeaderData, MAXALIGNed
INDEX_TUPLE_HEADER = 8  # IndexTupleData
LINE_POINTER = 4  # ItemIdData per tuple
PAGE_HEADER = 24  # PageHeaderData
BTREE_SPECIAL = 16  # BTPageOpaqueData


def _align(size, to=8):
    return int(math.ceil(size / float(to)) * to)


def expected_pages(rows, row_bytes, block_size, fillfactor, reserved):
    """Pages `rows` rows of `row_bytes` each would fill at `fillfactor` percent; None without statistics."""
    if rows is None or row_bytes is None or rows < 0:
        return None
    usable = (block_size - reserved) * fillfactor / 100.0
    per_page = max(int(usable // row_bytes), 1)
    return int(math.ceil(rows / float(per_page)))


def bloat(actual_bytes, expected, block_size):
    """Bytes and share of `actual_bytes` beyond the `expected` pages (never negative; None without an estimate)."""
    if expected is None or not actual_bytes:
        return None, None
    extra = max(actual_bytes - expected * block_size, 0)
    return extra, round(float(extra) / actual_bytes, 3)


def table_bloat(table, block_size):
    if table["row_width"] is None or table["estimated_rows"] is None or table["estimated_rows"] < 0:
        return None, None
    row = _align(HEAP_TUPLE_HEADER + float(table["row_width"])) + LINE_POINTER
    pages = expected_pages(table["estimated_rows"], row, block_size, table["fillfactor"], PAGE_HEADER)
    return bloat(table["table_bytes"], pages, block_size)


def index_bloat(index, block_size):
    """Only B-tree indexes on plain columns have a layout this estimate knows."""
    if index["method"] != "btree" or index["has_expression"] or index["key_width"] is None \
            or index["estimated_rows"] is None or index["estimated_rows"] < 0:
        return None, None
    entry = _align(INDEX_TUPLE_HEADER + float(index["key_width"])) + LINE_POINTER
    pages = expected_pages(index["estimated_rows"], entry, block_size, index["fillfactor"],
                           PAGE_HEADER + BTREE_SPECIAL)
    return bloat(index["bytes"], pages + 1, block_size)  # + the metapage


def dead_ratio(table):
    total = (table["live_tuples"] or 0) + (table["dead_tuples"] or 0)
    return round(float(table["dead_tuples"] or 0) / total, 3) if total else 0.0


def _iso(value):
    return value.isoformat() if value is not None else None


@translated("read the block size")
def block_size(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('block_size')::int")
        return cur.fetchone()[0]


@translated("read the table statistics")
def tables(conn, size_of_block):
    """Every user table with its dead tuples, sizes and bloat estimate, most dead tuples first."""
    with conn.cursor() as cur:
        cur.execute(_TABLES_SQL)
        found = [dict(zip(TABLE_FIELDS, row)) for row in cur.fetchall()]
    for table in found:
        table["row_width"] = float(table["row_width"]) if table["row_width"] is not None else None
        table["last_vacuum"], table["last_analyze"] = _iso(table["last_vacuum"]), _iso(table["last_analyze"])
        table["dead_ratio"] = dead_ratio(table)
        table["bloat_bytes"], table["bloat_ratio"] = table_bloat(table, size_of_block)
    return found


@translated("read the index statistics")
def indexes(conn, size_of_block):
    """Every user index with its validity, kind, size, scans and bloat estimate, largest first."""
    with conn.cursor() as cur:
        cur.execute(_INDEXES_SQL, {"system": SYSTEM_SCHEMAS})
        found = [dict(zip(INDEX_FIELDS, row)) for row in cur.fetchall()]
    for index in found:
        index["key_width"] = float(index["key_width"]) if index["key_width"] is not None else None
        index["bloat_bytes"], index["bloat_ratio"] = index_bloat(index, size_of_block)
    return found


def qualified(item, name_key="table"):
    return "%s.%s" % (item["schema"], item[name_key])
