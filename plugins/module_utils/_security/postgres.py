# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security findings of a PostgreSQL server, read from its catalog and settings: superusers, login roles without a
connection limit, password encryption that is not SCRAM (and passwords still stored as md5), `trust` lines in
pg_hba, ssl off, and CREATE on the public schema for everyone. Read-only; what the connecting role may not read
(pg_hba_file_rules and pg_authid need superuser or a grant) becomes an info finding saying so."""

from ansible_collections.keel.ops.plugins.module_utils._errors import first_line
from ansible_collections.keel.ops.plugins.module_utils._security.findings import finding

try:
    import psycopg2
except ImportError:
    psycopg2 = None

_ROLES_SQL = """
SELECT rolname, rolsuper, rolconnlimit, oid = 10 FROM pg_roles
WHERE rolcanlogin AND rolname !~ '^pg_' ORDER BY rolname"""
_HBA_SQL = """
SELECT line_number, type, database, user_name, address, auth_method FROM pg_hba_file_rules
WHERE auth_method = 'trust' ORDER BY line_number"""
_PUBLIC_CREATE_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
               WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')"""


def _quote(name):
    return '"%s"' % name.replace('"', '""')


def _query(conn, sql):
    """Rows of `sql`, or the server's reason when this role may not read it."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall(), None
    except psycopg2.Error as error:
        if conn.closed:
            raise
        return None, first_line(error)


BOOTSTRAP_FIX = "keep the bootstrap superuser for administration only: no application or automation logs in as it"


def role_findings(rows, where):
    found = []
    for name, superuser, limit, bootstrap in rows:
        if superuser:
            fix = BOOTSTRAP_FIX if bootstrap else (
                "ALTER ROLE %s NOSUPERUSER; grant pg_read_all_data, pg_maintain or ownership instead" % _quote(name))
            found.append(finding("postgres.superuser", "medium" if bootstrap else "high", "%s role %s" % (where, name),
                                 "login role %s is a superuser" % name, fix))
        if limit == -1 and not superuser:
            found.append(finding("postgres.connection_limit", "low", "%s role %s" % (where, name),
                                 "login role %s has no connection limit" % name,
                                 "ALTER ROLE %s CONNECTION LIMIT 50 (what it needs)" % _quote(name)))
    return found


def hba_findings(rows, where):
    found = []
    for line, kind, databases, users, address, _method in rows:
        local = kind == "local" or (address or "") in ("127.0.0.1", "::1", "localhost")
        found.append(finding("postgres.hba_trust", "high" if local else "critical", "%s pg_hba.conf line %s" % (where, line),
                             "pg_hba.conf line %s trusts %s to %s as %s without a password"
                             % (line, "local socket connections" if kind == "local" else "%s connections from %s"
                                % (kind, address or "anywhere"), ",".join(databases or []), ",".join(users or [])),
                             "replace trust with scram-sha-256 on line %s of pg_hba.conf, then SELECT pg_reload_conf()"
                             % line))
    return found


def audit(conn, where):
    """The findings of the server `conn` is connected to; `where` names it in each finding."""
    found = []
    roles, why = _query(conn, _ROLES_SQL)
    found += role_findings(roles or [], where)
    settings, _why = _query(conn, "SELECT current_setting('password_encryption'), current_setting('ssl')")
    encryption, ssl = settings[0] if settings else (None, None)
    if encryption and encryption != "scram-sha-256":
        found.append(finding("postgres.password_encryption", "high", where, "password_encryption is %s" % encryption,
                             "ALTER SYSTEM SET password_encryption = 'scram-sha-256'; reload, then set every "
                             "password again"))
    md5, why_md5 = _query(conn, "SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%' ORDER BY 1")
    for (name,) in md5 or []:
        found.append(finding("postgres.md5_password", "medium", "%s role %s" % (where, name),
                             "role %s still has an md5 password" % name,
                             "set its password again with password_encryption = 'scram-sha-256'"))
    if ssl == "off":
        found.append(finding("postgres.ssl", "medium", where, "ssl is off: connections travel in clear text",
                             "set ssl = on with ssl_cert_file and ssl_key_file, and hostssl lines in pg_hba.conf"))
    hba, why_hba = _query(conn, _HBA_SQL)
    found += hba_findings(hba or [], where)
    public, _why = _query(conn, _PUBLIC_CREATE_SQL)
    if public and public[0][0]:
        found.append(finding("postgres.public_create", "medium", "%s schema public" % where,
                             "everyone may CREATE in the public schema of the maintenance database",
                             "REVOKE CREATE ON SCHEMA public FROM PUBLIC (in every database)"))
    for what, reason in (("the roles", why), ("stored passwords", why_md5), ("pg_hba.conf", why_hba)):
        if reason:
            found.append(finding("postgres.unreadable", "info", where, "could not read %s: %s" % (what, reason),
                                 "audit as a superuser, or GRANT pg_read_all_settings and SELECT on the view"))
    return found
