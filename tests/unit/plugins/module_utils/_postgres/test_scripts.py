"""Globals scripts read from a repository: every psql meta-command is found as psql would find it, and all but
the \\restrict/\\unrestrict pair pg_dumpall writes are refused."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import PostgresError
from ansible_collections.keel.ops.plugins.module_utils._postgres import scripts

PG_DUMPALL_GLOBALS = """--
-- PostgreSQL database cluster dump
--

\\restrict e36pUbruPRji1hlCo9tUyjVkfTJyAhdT2ZDYo0nZRazgGw8h3e5D7vUcOg0pnbQ

SET default_transaction_read_only = off;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2lnbg==';
COMMENT ON ROLE app IS 'backslashes \\ and a ''quote'' stay literal';

\\unrestrict e36pUbruPRji1hlCo9tUyjVkfTJyAhdT2ZDYo0nZRazgGw8h3e5D7vUcOg0pnbQ
"""


def test_what_pg_dumpall_writes_passes():
    assert [text for _line, text in scripts.meta_commands(PG_DUMPALL_GLOBALS)] == [
        "\\restrict e36pUbruPRji1hlCo9tUyjVkfTJyAhdT2ZDYo0nZRazgGw8h3e5D7vUcOg0pnbQ",
        "\\unrestrict e36pUbruPRji1hlCo9tUyjVkfTJyAhdT2ZDYo0nZRazgGw8h3e5D7vUcOg0pnbQ"]
    scripts.check_globals_script(PG_DUMPALL_GLOBALS, "globals.sql")


@pytest.mark.parametrize("hidden", [
    "'\\! no'",                 # a standard string: the backslash is data
    "E'it\\'s \\! no'",         # an escape string with an escaped quote
    "$$ \\! no $$",             # dollar quoting
    "$body$ \\! no $body$",
    '"we\\ird"',                # a quoted identifier
    "/* \\! no /* nested */ still no */",
    "-- \\! no",
])
def test_backslashes_inside_literals_and_comments_are_no_meta_commands(hidden):
    assert scripts.meta_commands("SELECT %s;\n" % hidden) == []


@pytest.mark.parametrize("script, command", [
    ("SELECT 1; \\! id\n", "\\! id"),
    ("CREATE ROLE x;\n\\connect other host=elsewhere\n", "\\connect other host=elsewhere"),
    ("\\o /etc/cron.d/x\n", "\\o /etc/cron.d/x"),
    ("SELECT 'a''b'; \\copy t to program 'sh'\n", "\\copy t to program 'sh'"),
    ("SELECT fee'x' ;\n\\! id\n", "\\! id"),  # "fee'" is no E'' string: the quote closes on the same line
])
def test_any_other_meta_command_is_refused_with_its_line(script, command):
    found = scripts.meta_commands(script)
    assert found and found[-1][1] == command
    with pytest.raises(PostgresError, match=r"line %d holds the psql meta-command" % found[-1][0]):
        scripts.check_globals_script(script, "the globals")


def test_switching_standard_conforming_strings_off_is_refused():
    with pytest.raises(PostgresError, match="standard_conforming_strings off"):
        # under it, psql would read 'a\' b' as one string where this check sees a string and more
        scripts.check_globals_script("SET standard_conforming_strings TO 'off';\nSELECT 1;\n", "globals")
