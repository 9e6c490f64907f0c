"""Connection settings for the client tools: database names as quoted conninfo values, a passfile that names
this server only."""

import os
import stat

from ansible_collections.keel.ops.plugins.module_utils._postgres import conninfo as pg_conninfo


def test_child_env_uses_a_private_passfile(tmp_path):
    conn = pg_conninfo.Connection(host="db", port=5433, user="backup", password="p:w\\d")
    env = conn.child_env(str(tmp_path))
    assert "PGPASSWORD" not in env and env["PGDATABASE"] == "postgres" and env["PGHOST"] == "db"
    mode = stat.S_IMODE(os.stat(env["PGPASSFILE"]).st_mode)
    assert mode == 0o600
    with open(env["PGPASSFILE"]) as handle:
        assert handle.read() == "db:5433:*:backup:p\\:w\\\\d\n"


def test_dbname_is_passed_as_a_quoted_conninfo_value():
    assert pg_conninfo.dbname_arg("shop") == "--dbname=dbname='shop'"
    assert pg_conninfo.dbname_arg("host=evil port=1") == "--dbname=dbname='host=evil port=1'"
    assert pg_conninfo.dbname_arg("it's a \\ name") == "--dbname=dbname='it\\'s a \\\\ name'"


def test_passfile_lines_name_this_server_and_user_only():
    assert pg_conninfo.passfile_lines("db.example", 5433, "backup", "p:w\\d") == ["db.example:5433:*:backup:p\\:w\\\\d"]
    assert pg_conninfo.passfile_lines(None, 5432, None, "pw") == ["localhost:5432:*:*:pw"]
    assert pg_conninfo.passfile_lines("/run/postgresql", 5432, "u", "pw") == [
        "/run/postgresql:5432:*:u:pw", "localhost:5432:*:u:pw"]
