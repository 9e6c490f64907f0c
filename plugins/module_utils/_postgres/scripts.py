# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: connection settings, client tools and their versions, argv for pg_dump/pg_dumpall/pg_restore,
and the queries a backup records and a restore is checked against.

Passwords never reach a command line: child processes get PGPASSFILE pointing at a 0600 file in a private
temporary directory, and psycopg2 gets them in memory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import hashlib
import os
import re
import shutil
import subprocess
import time

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, KeelError

try:
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql
except ImportError:
    psycopg2 = None

TOOLS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")
SYSTEM_DATABASES = ("postgres", "template0", "template1")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
_SLUG_SUFFIX = re.compile(r"-[0-9a-f]{16}$")  # what artifact_stem() appends; a plain name may not end like it


class PostgresError(KeelError):
    """A PostgreSQL server or client tool refused or failed."""


def require_psycopg2():
    if psycopg2 is None:
        raise DependencyError("pg_backup needs the Python library 'psycopg2' where the module runs "
                              "(pip install psycopg2-binary)")


class Connection:
    """Where and as whom to connect; `database` is overridden per call where needed."""

    def __init__(self, host=None, port=5432, user=None, password=None, database="postgres", ssl_mode=None,
                 ca_cert=None):
        self.host, self.port, self.user, self.password = host, port, user, password
        self.database, self.ssl_mode, self.ca_cert = database, ssl_mode, ca_cert

    def describe(self, database=None):
        return "%s:%s/%s" % (self.host or "local socket", self.port, database or self.database)

    def connect(self, database=None, autocommit=True):
        require_psycopg2()
        params = dict(host=self.host, port=self.port, user=self.user, password=self.password,
                      dbname=database or self.database, sslmode=self.ssl_mode, sslrootcert=self.ca_cert,
                      application_name="keel.ops.pg_backup", connect_timeout=15)
        try:
            conn = psycopg2.connect(**dict((k, v) for k, v in params.items() if v is not None))
        except psycopg2.Error as error:
            raise PostgresError("cannot connect to PostgreSQL at %s: %s"
                                % (self.describe(database), first_line(error)))
        conn.autocommit = autocommit
        return conn

    def child_env(self, workdir):
        """Environment for libpq tools: connection in PG* variables, the password in a 0600 PGPASSFILE whose
        only line names this host, port and user. The database goes on the command line as dbname_arg()."""
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith("PG"))
        env.update(PGAPPNAME="keel.ops.pg_backup", PGCONNECT_TIMEOUT="15", PGPORT=str(self.port),
                   PGDATABASE=self.database)
        for name, value in (("PGHOST", self.host), ("PGUSER", self.user), ("PGSSLMODE", self.ssl_mode),
                            ("PGSSLROOTCERT", self.ca_cert)):
            if value:
                env[name] = value
        if self.password is not None:
            lines = passfile_lines(self.host, self.port, self.user, self.password)
            env["PGPASSFILE"] = write_passfile(workdir, lines)
        return env


def dbname_arg(database):
    """--dbname for a libpq tool that can never be read as a connection string.

    libpq parses a --dbname holding '=' (or a postgresql:// URI) as conninfo, so a database named
    "host=elsewhere port=5432" would send pg_dump, and our password, to another server. Given as the quoted value
    of a dbname keyword instead, libpq takes it literally (a value inside a conninfo string is never expanded)."""
    return "--dbname=dbname='%s'" % database.replace("\\", "\\\\").replace("'", "\\'")


def _passfile_escape(value):
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile_lines(host, port, user, password):
    """The PGPASSFILE lines that hand the password to this server only: its host (a unix socket directory
    matches as itself, or as 'localhost' when it is libpq's default one) and port, any database, this user."""
    hosts = ["localhost"] if not host else [host, "localhost"] if host.startswith("/") else [host]
    user_field = _passfile_escape(user) if user else "*"
    return ["%s:%d:*:%s:%s" % (_passfile_escape(name), int(port), user_field, _passfile_escape(password))
            for name in hosts]


def write_passfile(workdir, lines):
    path = os.path.join(workdir, "pgpass")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def local_name(database, suffix):
    """A file name under the work dir for a database, derived from a hash, so that no name can climb out of it."""
    return "db-%s%s" % (hashlib.sha256(database.encode("utf-8")).hexdigest()[:16], suffix)


def artifact_stem(database):
    """The repository file name of a database's dump: the name itself when it is plain, otherwise a readable
    slug plus a hash, so that '/', '..' or control characters in a name never shape a storage key."""
    if _PLAIN_NAME.match(database) and not _SLUG_SUFFIX.search(database):
        return database
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", database).strip("_")[:40]
    return "%s-%s" % (slug or "db", hashlib.sha256(database.encode("utf-8")).hexdigest()[:16])


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


# --- client tools -----------------------------------------------------------------------------------

def find_tools(bin_dir=None):
    """Absolute paths of the client tools, from bin_dir or PATH."""
    tools = {}
    for name in TOOLS:
        path = os.path.join(bin_dir, name) if bin_dir else shutil.which(name)
        if not path or not os.access(path, os.X_OK):
            where = "in %s" % bin_dir if bin_dir else "on PATH"
            raise DependencyError("%s was not found %s: install the PostgreSQL client tools (e.g. the "
                                  "postgresql-client package) or set bin_dir to the directory that holds them"
                                  % (name, where))
        tools[name] = path
    return tools


def tool_version(path):
    """'pg_dump (PostgreSQL) 18.1' -> (18, '18.1')."""
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.search(r"(\d+)(?:\.(\d+))?", output)
    if not match:
        raise DependencyError("cannot tell the version of %s from %r" % (path, output))
    return int(match.group(1)), match.group(0)


def check_client_version(tool_path, server_major, server_version):
    """pg_dump refuses servers newer than itself; say so before starting, with the fix."""
    major, version = tool_version(tool_path)
    if major < server_major:
        raise DependencyError(
            "%s is version %s but the server runs PostgreSQL %s: the client tools must be the server's major "
            "version or newer. Install postgresql-client-%d and set bin_dir (e.g. /usr/lib/postgresql/%d/bin)"
            % (os.path.basename(tool_path), version, server_version, server_major, server_major))
    return version


# --- argv ---------------------------------------------------------------------------------------------

def pg_dump_argv(tool, database, snapshot=None, schemas=(), exclude_schemas=(), tables=(), exclude_tables=(),
                 jobs=1, directory=None, lock_wait_timeout=None):
    """pg_dump in custom format without its own compression (the pipeline compresses, on other cores), or
    directory format with jobs > 1. lock_wait_timeout (seconds) makes it fail instead of waiting forever for a
    table lock that another session holds."""
    argv = [tool, "--no-password", "--format=directory" if jobs > 1 else "--format=custom", "--compress=0"]
    if jobs > 1:
        argv += ["--jobs=%d" % jobs, "--file=%s" % directory]
    if snapshot:
        argv.append("--snapshot=%s" % snapshot)
    if lock_wait_timeout:
        argv.append("--lock-wait-timeout=%dms" % int(lock_wait_timeout * 1000))
    for flag, values in (("--schema", schemas), ("--exclude-schema", exclude_schemas), ("--table", tables),
                         ("--exclude-table", exclude_tables)):
        argv += ["%s=%s" % (flag, value) for value in values]
    return argv + [dbname_arg(database)]


def pg_dumpall_globals_argv(tool, superuser=True):
    argv = [tool, "--no-password", "--globals-only"]
    if not superuser:
        # Without superuser, role passwords cannot be read; the rest of the globals still can.
        argv.append("--no-role-passwords")
    return argv


def pg_restore_argv(tool, database, no_owner=False, role=None, schemas=(), tables=(), jobs=1, path=None):
    """pg_restore reading stdin (one stream, one transaction) or, with a path, a file or directory on disk,
    which is what --jobs needs."""
    argv = [tool, "--no-password", "--exit-on-error", dbname_arg(database)]
    if jobs > 1:
        argv.append("--jobs=%d" % jobs)
    else:
        argv.append("--single-transaction")  # all or nothing: a failed restore leaves an empty database
    if no_owner:
        argv += ["--no-owner", "--no-privileges"]
    if role:
        argv.append("--role=%s" % role)
    argv += ["--schema=%s" % schema for schema in schemas]
    argv += ["--table=%s" % table for table in tables]
    return argv + ([path] if path else [])


# --- queries ----------------------------------------------------------------------------------------

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


# --- restoring beside the live database --------------------------------------------------------------

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


# --- psql scripts read from a repository ------------------------------------------------------------

# The only meta-commands pg_dumpall writes into globals: \restrict and \unrestrict (PostgreSQL 17.6, 16.10,
# 15.14, 14.19, 13.22 and later), each with a random alphanumeric key.
_ALLOWED_META = re.compile(r"\\(?:un)?restrict [A-Za-z0-9]+[ \t]*$")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def meta_commands(script):
    """(line, text) of every psql meta-command in `script`: a backslash outside literals, quoted identifiers,
    dollar quotes and comments, as psql's own lexer finds them."""
    found, i, line, size = [], 0, 1, len(script)
    while i < size:
        char = script[i]
        if char == "\n":
            line += 1
        if char == "\\":
            end = script.find("\n", i)
            end = size if end < 0 else end
            found.append((line, script[i:end]))
            i = end
            continue
        skip = _skip_quoted(script, i)
        if skip:
            line += script.count("\n", i, skip)
            i = skip
            continue
        i += 1
    return found


def _skip_quoted(script, i):
    """The index just past a literal, identifier, dollar quote or comment starting at i; 0 if none starts."""
    two = script[i:i + 2]
    if two == "--":
        end = script.find("\n", i)
        return len(script) if end < 0 else end
    if two == "/*":
        depth, j = 1, i + 2
        while j < len(script) and depth:
            depth += {"/*": 1, "*/": -1}.get(script[j:j + 2], 0)
            j += 2 if script[j:j + 2] in ("/*", "*/") else 1
        return j
    char = script[i]
    if char in "'\"":
        # E'...' strings take backslash escapes; the E must start a word (not end one, as in "fee'").
        escapes = char == "'" and i > 0 and script[i - 1] in "eE" and not script[max(i - 2, 0):i - 1].isalnum()
        j = i + 1
        while j < len(script):
            if escapes and script[j] == "\\":
                j += 2
                continue
            if script[j] == char:
                if script[j + 1:j + 2] == char:
                    j += 2
                    continue
                return j + 1
            j += 1
        return j
    if char == "$":
        tag = _DOLLAR_TAG.match(script, i)
        if tag and not (i > 0 and (script[i - 1].isalnum() or script[i - 1] == "_")):
            end = script.find(tag.group(0), tag.end())
            return len(script) if end < 0 else end + len(tag.group(0))
    return 0


def check_globals_script(script, where):
    """Refuse a globals script that holds any psql meta-command pg_dumpall does not write (\\! runs a shell on
    this host, \\connect goes elsewhere, \\o writes files), or that switches off standard_conforming_strings,
    under which psql would read its quotes differently from this check."""
    for line, text in meta_commands(script):
        if not _ALLOWED_META.match(text):
            raise PostgresError("%s line %d holds the psql meta-command %r, which pg_dumpall never writes: the backup "
                                "was tampered with; nothing was replayed" % (where, line, text[:40]))
    if re.search(r"standard_conforming_strings\s*(=|to)\s*'?off", script, re.I):
        raise PostgresError("%s switches standard_conforming_strings off, which pg_dumpall never does: the backup "
                            "was tampered with; nothing was replayed" % where)


def validate_identifier(value, option):
    if not value or "\x00" in value or len(value) > 63:
        raise ConfigError("%s must be a PostgreSQL name of 1 to 63 characters, got %r" % (option, value))
    return value
