"""The client tools' argv, and the names a database gets on disk and in a repository."""

import re

import pytest
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


@pytest.mark.parametrize("name", ["../../etc", "a/b", "host=x port=1", ".hidden", "tab\tname", "ü", "x-" + "0" * 16])
def test_odd_database_names_become_flat_slugs_with_a_hash(name):
    stem = pg_tools.artifact_stem(name)
    assert "/" not in stem and not stem.startswith(".") and re.match(r"^[A-Za-z0-9_-]*-[0-9a-f]{16}$", stem)
    assert pg_tools.artifact_stem(name) != pg_tools.artifact_stem(name + "x")
    assert pg_tools.local_name(name, ".dir").startswith("db-") and "/" not in pg_tools.local_name(name, ".dir")


@pytest.mark.parametrize("name", ["shop", "my-app", "app.v2", "Sales_2024"])
def test_plain_database_names_stay_readable(name):
    assert pg_tools.artifact_stem(name) == name
