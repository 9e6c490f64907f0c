import os
import re
import stat

import pytest

from ansible_collections.keel.ops.plugins.module_utils._postgres import catalog as pg_catalog
from ansible_collections.keel.ops.plugins.module_utils._postgres import conninfo as pg_conninfo
from ansible_collections.keel.ops.plugins.module_utils._postgres import tools as pg_tools


def test_pg_dump_argv_streams_custom_format_uncompressed():
    argv = pg_tools.pg_dump_argv("/bin/pg_dump", "shop", snapshot="0003-1", schemas=["sales"], exclude_tables=["audit.*"])
    assert argv == ["/bin/pg_dump", "--no-password", "--format=custom", "--compress=0", "--snapshot=0003-1",
                    "--schema=sales", "--exclude-table=audit.*", "--dbname=dbname='shop'"]


def test_pg_restore_argv_is_all_or_nothing_and_exits_on_error():
    argv = pg_tools.pg_restore_argv("/bin/pg_restore", "target", no_owner=True, role="app", tables=["invoices"])
    assert "--single-transaction" in argv and "--exit-on-error" in argv
    assert argv[-3:] == ["--no-privileges", "--role=app", "--table=invoices"] or "--role=app" in argv
    assert "--dbname=dbname='target'" in argv


def test_no_password_anywhere_in_argv():
    conn = pg_conninfo.Connection(host="db", port=5433, user="backup", password="p:w\\d")
    argv = pg_tools.pg_dump_argv("pg_dump", "shop") + pg_tools.pg_dumpall_globals_argv("pg_dumpall", superuser=False)
    assert not [arg for arg in argv if "p:w" in arg]
    assert conn.describe() == "db:5433/postgres"


def test_child_env_uses_a_private_passfile(tmp_path):
    conn = pg_conninfo.Connection(host="db", port=5433, user="backup", password="p:w\\d")
    env = conn.child_env(str(tmp_path))
    assert "PGPASSWORD" not in env and env["PGDATABASE"] == "postgres" and env["PGHOST"] == "db"
    mode = stat.S_IMODE(os.stat(env["PGPASSFILE"]).st_mode)
    assert mode == 0o600
    with open(env["PGPASSFILE"]) as handle:
        assert handle.read() == "db:5433:*:backup:p\\:w\\\\d\n"


def test_patterns_follow_psql_rules():
    assert pg_catalog.pattern_regex("sales*").match("sales_2026")
    assert pg_catalog.pattern_regex("Sales").match("sales")  # unquoted names fold to lower case
    assert not pg_catalog.pattern_regex('"Sales"').match("sales")
    assert pg_catalog.pattern_regex("a?c").match("abc") and not pg_catalog.pattern_regex("a?c").match("abbc")


def test_table_selection():
    filters = {"schemas": ["sales"], "exclude_tables": ["sales.tmp_*"]}
    assert pg_catalog._table_selected("sales", "orders", filters)
    assert not pg_catalog._table_selected("sales", "tmp_x", filters)
    assert not pg_catalog._table_selected("audit", "log", filters)
    assert pg_catalog._table_selected("audit", "log", {"tables": ["log"]})


def test_compare_statistics_names_each_difference():
    expected = {"tables": {"a.x": 10, "a.y": 5}, "large_objects": 2}
    actual = {"tables": {"a.x": 9}, "large_objects": 2}
    assert pg_catalog.compare_statistics(expected, actual) == ["table a.x has 9 rows, the backup recorded 10",
                                                       "table a.y is missing"]
    assert pg_catalog.compare_statistics(expected, actual, tables=["a.y"]) == ["table a.y is missing"]
    assert pg_catalog.compare_statistics(expected, dict(actual, tables={"a.x": 10, "a.y": 5})) == []


def test_dbname_is_passed_as_a_quoted_conninfo_value():
    assert pg_conninfo.dbname_arg("shop") == "--dbname=dbname='shop'"
    assert pg_conninfo.dbname_arg("host=evil port=1") == "--dbname=dbname='host=evil port=1'"
    assert pg_conninfo.dbname_arg("it's a \\ name") == "--dbname=dbname='it\\'s a \\\\ name'"


def test_passfile_lines_name_this_server_and_user_only():
    assert pg_conninfo.passfile_lines("db.example", 5433, "backup", "p:w\\d") == ["db.example:5433:*:backup:p\\:w\\\\d"]
    assert pg_conninfo.passfile_lines(None, 5432, None, "pw") == ["localhost:5432:*:*:pw"]
    assert pg_conninfo.passfile_lines("/run/postgresql", 5432, "u", "pw") == [
        "/run/postgresql:5432:*:u:pw", "localhost:5432:*:u:pw"]


@pytest.mark.parametrize("name", ["../../etc", "a/b", "host=x port=1", ".hidden", "tab\tname", "ü", "x-" + "0" * 16])
def test_odd_database_names_become_flat_slugs_with_a_hash(name):
    stem = pg_tools.artifact_stem(name)
    assert "/" not in stem and not stem.startswith(".") and re.match(r"^[A-Za-z0-9_-]*-[0-9a-f]{16}$", stem)
    assert pg_tools.artifact_stem(name) != pg_tools.artifact_stem(name + "x")
    assert pg_tools.local_name(name, ".dir").startswith("db-") and "/" not in pg_tools.local_name(name, ".dir")


@pytest.mark.parametrize("name", ["shop", "my-app", "app.v2", "Sales_2024"])
def test_plain_database_names_stay_readable(name):
    assert pg_tools.artifact_stem(name) == name
