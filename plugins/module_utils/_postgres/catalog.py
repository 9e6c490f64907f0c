# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Queries a backup records and a restore is checked against: server facts, the databases, snapshots shared
with pg_dump, exact row counts per table, and creating and dropping databases. Every psycopg2 error becomes a
PostgresError saying what was being done."""

import functools
import re

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, PostgresError, first_line

try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    psycopg2 = None


def translated(what):
    """Turn a psycopg2 error raised by a query function into a PostgresError saying what was being done."""
    def wrap(function):
        @functools.wraps(function)
        def call(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except psycopg2.Error as error:
                raise PostgresError("cannot %s: %s" % (what, first_line(error)))
        return call
    return wrap


@translated("read the server's version")
def server_info(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
                    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")
        version, number, superuser = cur.fetchone()
    return {"version": version, "major": number // 10000, "superuser": bool(superuser)}


@translated("list the databases")
def list_databases(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")
        return [row[0] for row in cur.fetchall()]


@translated("look the database up")
def database_exists(conn, name):
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


_USER_OBJECTS_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND n.nspname NOT LIKE 'pg_temp%%'
"""


@translated("look into the target database")
def user_object_count(conn):
    """Tables, views, sequences... outside the system schemas: 0 means the database is empty."""
    with conn.cursor() as cur:
        cur.execute(_USER_OBJECTS_SQL)
        return cur.fetchone()[0]


@translated("export a snapshot for the dump")
def export_snapshot(conn):
    """Open a repeatable-read transaction and export its snapshot, so pg_dump and our row counts see the same
    data. The caller keeps `conn` open (and idle in that transaction) until pg_dump has started."""
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SELECT pg_export_snapshot()")
        return cur.fetchone()[0]


@translated("import the dump's snapshot")
def import_snapshot(conn, snapshot, lock_timeout=None, statement_timeout=None):
    """Join the dump's snapshot. The timeouts (seconds) keep a count from waiting forever behind a lock that a
    migration holds or queues for, while the backup holds the repository lock."""
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
        # Counting runs beside pg_dump and only has to finish before it: no parallel workers to compete with it.
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        for setting, seconds in (("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)):
            if seconds:
                cur.execute("SELECT set_config(%s, %s, true)", (setting, "%dms" % int(seconds * 1000)))


_TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


def pattern_regex(pattern):
    """A psql-style name pattern (* and ?, case-folded unless quoted) as an anchored regex."""
    quoted = pattern.startswith('"') and pattern.endswith('"')
    text = pattern.strip('"') if quoted else pattern.lower()
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
    return re.compile("^%s$" % body)


def _matches(name, patterns):
    return any(pattern_regex(pattern).match(name) for pattern in patterns)


def _table_selected(schema, table, filters):
    qualified = "%s.%s" % (schema, table)
    if filters.get("schemas") and not _matches(schema, filters["schemas"]):
        return False
    if _matches(schema, filters.get("exclude_schemas") or ()):
        return False
    if filters.get("tables") and not any(_matches(qualified if "." in p else table, [p]) for p in filters["tables"]):
        return False
    return not any(_matches(qualified if "." in p else table, [p]) for p in filters.get("exclude_tables") or ())


@translated("count the rows of every table")
def table_statistics(conn, filters=None):
    """Exact row count per table ('schema.table' -> rows) as seen by the connection's transaction, plus the
    number of large objects: what a restore must reproduce."""
    filters = filters or {}
    with conn.cursor() as cur:
        cur.execute(_TABLES_SQL)
        tables = [(schema, table) for schema, table in cur.fetchall() if _table_selected(schema, table, filters)]
        counts = {}
        for schema, table in tables:
            cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
            counts["%s.%s" % (schema, table)] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
        large_objects = cur.fetchone()[0]
        cur.execute("SELECT pg_database_size(current_database()), pg_encoding_to_char(encoding), datcollate, "
                    "datctype FROM pg_database WHERE datname = current_database()")
        size, encoding, collate, ctype = cur.fetchone()
    return {"tables": counts, "large_objects": large_objects, "size": size, "encoding": encoding,
            "collate": collate, "ctype": ctype}


def compare_statistics(expected, actual, tables=None):
    """Differences between what the manifest recorded and what a restored database holds, as sentences."""
    problems = []
    wanted = tables if tables is not None else sorted(expected["tables"])
    for table in wanted:
        if table not in actual["tables"]:
            problems.append("table %s is missing" % table)
        elif actual["tables"][table] != expected["tables"][table]:
            problems.append("table %s has %d rows, the backup recorded %d"
                            % (table, actual["tables"][table], expected["tables"][table]))
    if tables is None and actual["large_objects"] != expected["large_objects"]:
        problems.append("%d large objects, the backup recorded %d"
                        % (actual["large_objects"], expected["large_objects"]))
    return problems


_BTREE_INDEXES_SQL = """
SELECT c.oid, n.nspname, c.relname
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 2, 3"""


@translated("run amcheck")
def check_indexes(conn):
    """amcheck's bt_index_check with heapallindexed on every user B-tree index of the connection's database (a
    scratch copy: the extension is created in it). Returns how many were checked, or None when the server has no
    amcheck; a corrupt index raises a PostgresError naming it."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'")
        if cur.fetchone() is None:
            return None
        cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        cur.execute(_BTREE_INDEXES_SQL)
        indexes = cur.fetchall()
        for oid, schema, name in indexes:
            try:
                cur.execute("SELECT bt_index_check(%s::oid::regclass, true)", (oid,))
            except psycopg2.Error as error:
                raise PostgresError("amcheck: index %s.%s of the restored copy is corrupt: %s"
                                    % (schema, name, first_line(error)))
    return len(indexes)


def create_database(conn, name, owner=None, encoding=None, collate=None, ctype=None):
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    if owner:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    for keyword, value in (("ENCODING", encoding), ("LC_COLLATE", collate), ("LC_CTYPE", ctype)):
        if value:
            statement += sql.SQL(" %s {}" % keyword).format(sql.Literal(value))
    _execute(conn, statement, "create database %s" % name)


def drop_database(conn, name):
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    _execute(conn, statement, "drop database %s" % name)


def _execute(conn, statement, what):
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    except psycopg2.Error as error:
        raise PostgresError("cannot %s: %s" % (what, first_line(error)))


def validate_identifier(value, option):
    if not value or "\x00" in value or len(value) > 63:
        raise ConfigError("%s must be a PostgreSQL name of 1 to 63 characters, got %r" % (option, value))
    return value
