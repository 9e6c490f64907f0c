# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where and as whom to connect to PostgreSQL, for psycopg2 and for the client tools.

Passwords never reach a command line: child processes get PGPASSFILE pointing at a 0600 file in a private
temporary directory whose only lines name this server's host, port and user, and psycopg2 gets them in memory.
A database name goes to the tools as the quoted value of a dbname keyword, never as a connection string.
"""

import os

from ansible_collections.keel.ops.plugins.module_utils._errors import DependencyError, PostgresError, first_line

try:
    import psycopg2
except ImportError:
    psycopg2 = None


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

    @classmethod
    def from_params(cls, params):
        """The connection the options of _argspecs.POSTGRES name."""
        return cls(host=params.get("login_host") or params.get("login_unix_socket"),
                   port=params.get("login_port") or 5432, user=params.get("login_user"),
                   password=params.get("login_password"), database=params.get("maintenance_db") or "postgres",
                   ssl_mode=params.get("ssl_mode"), ca_cert=params.get("ca_cert"))

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
