# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report pg_maintenance returns for one database, from what pg_stats read and a few more queries: dead-tuple
ratios, bloat estimates, unused indexes, the largest tables, sessions (pg_activity_info's reading), the top queries
of pg_stat_statements when the extension is there, connections against max_connections, and the database's size.
Growth since the last run is the maintenance role's to compute, from its report history."""

from ansible_collections.keel.ops.plugins.module_utils._errors import first_line
from ansible_collections.keel.ops.plugins.module_utils._postgres.catalog import translated

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    psycopg2 = sql = None

TOP_QUERY_FIELDS = ("user", "calls", "total_ms", "mean_ms", "rows", "query")


def _pick(item, keys):
    return dict((key, item[key]) for key in keys)


def dead_tuples(tables, top):
    keys = ("schema", "table", "live_tuples", "dead_tuples", "dead_ratio", "last_vacuum", "last_analyze")
    return [_pick(table, keys) for table in tables if table["dead_tuples"]][:top]


def bloated(items, name_key, top):
    keys = ("schema", name_key, "bytes" if name_key == "name" else "table_bytes", "bloat_bytes", "bloat_ratio")
    ranked = sorted((item for item in items if item["bloat_bytes"]), key=lambda item: -item["bloat_bytes"])
    return [_pick(item, keys) for item in ranked][:top]


def unused_indexes(indexes):
    """Valid indexes never scanned since the statistics were reset, other than unique, primary-key and constraint
    indexes (those do their work on every write, scanned or not)."""
    keys = ("schema", "name", "table", "bytes", "scans")
    kept_anyway = ("unique", "primary", "backs_constraint")
    return [_pick(index, keys) for index in indexes
            if index["valid"] and not index["scans"] and not any(index[key] for key in kept_anyway)]


def largest(tables, top):
    keys = ("schema", "table", "total_bytes", "table_bytes", "live_tuples")
    return [_pick(table, keys) for table in sorted(tables, key=lambda table: -(table["total_bytes"] or 0))][:top]


@translated("read the database size")
def database_size(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT current_database(), pg_database_size(current_database()), "
                    "(SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())")
        name, size, reset = cur.fetchone()
    return {"database": name, "bytes": size, "stats_since": reset.isoformat() if reset else None}


def top_queries(conn, server_major, top, query_length=200, with_query=True):
    """pg_stat_statements' most expensive queries in this database by total time; (None, why) when it is not
    installed here, or not loaded through shared_preload_libraries."""
    timing = ("total_exec_time", "mean_exec_time") if server_major >= 13 else ("total_time", "mean_time")
    query = sql.SQL("SELECT r.rolname, s.calls, round(s.{}::numeric, 3)::float8, round(s.{}::numeric, 3)::float8, "
                    "s.rows, left(s.query, %(length)s) FROM {} s LEFT JOIN pg_roles r ON r.oid = s.userid "
                    "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY 3 DESC LIMIT %(top)s")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                        "WHERE e.extname = 'pg_stat_statements'")
            found = cur.fetchone()
            if not found:
                return None, "the pg_stat_statements extension is not installed in this database"
            view = sql.Identifier(found[0], "pg_stat_statements")
            cur.execute(query.format(sql.Identifier(timing[0]), sql.Identifier(timing[1]), view),
                        {"length": max(int(query_length), 0), "top": top})
            rows = [dict(zip(TOP_QUERY_FIELDS, row)) for row in cur.fetchall()]
    except psycopg2.Error as error:
        if conn.closed:
            raise
        return None, first_line(error)
    for row in rows:
        if not with_query:
            row.pop("query")
    return rows, None


def report(conn, tables, indexes, server_major, sessions, top=10, query_length=200, with_query=True):
    """Everything above as one dict."""
    queries, why_not = top_queries(conn, server_major, top, query_length, with_query)
    return {"size": database_size(conn), "dead_tuples": dead_tuples(tables, top),
            "table_bloat": bloated(tables, "table", top), "index_bloat": bloated(indexes, "name", top),
            "unused_indexes": unused_indexes(indexes), "largest_tables": largest(tables, top),
            "top_queries": queries, "top_queries_unavailable": why_not, "connections": sessions["connections"],
            "long_running": sessions["long_running"], "idle_in_transaction": sessions["idle_in_transaction"],
            "blocked": sessions["blocked"]}
