"""Replacing a database: the staging and replaced names, the restore lock key, and the swap's retries against a
stub connection (the swap itself runs on a real server in tests/integration/test_pg_backup_safety.py)."""

import re

import pytest
from psycopg2 import errors as pg_errors

from ansible_collections.keel.ops.plugins.module_utils._errors import PostgresError
from ansible_collections.keel.ops.plugins.module_utils._postgres import replace

TARGETS = ["app", "App", "app_", "x" * 63, "données clients", 'we"ird; DROP DATABASE app']


def test_staging_and_replaced_names_are_short_plain_identifiers_fixed_per_target():
    names = [(replace.staging_name(t), replace.replaced_name(t)) for t in TARGETS]
    for staging, replaced in names:
        for name in (staging, replaced):
            assert re.match(r"^[a-z_][a-z0-9_]*$", name) and len(name.encode()) <= 63  # PostgreSQL's NAMEDATALEN - 1
        assert staging != replaced
    assert len(set(names)) == len(TARGETS)
    assert names == [(replace.staging_name(t), replace.replaced_name(t)) for t in TARGETS]  # a rerun finds them


def test_the_restore_lock_key_is_a_stable_signed_bigint_per_target():
    keys = [replace.restore_lock_key(t) for t in TARGETS]
    assert all(-2 ** 63 <= key < 2 ** 63 for key in keys) and len(set(keys)) == len(TARGETS)
    assert keys == [replace.restore_lock_key(t) for t in TARGETS]
    assert any(key < 0 for key in keys + [replace.restore_lock_key("db%d" % n) for n in range(64)])


class StubConnection:
    """Fails the first `failures` transactions with the errors given; records commits and rollbacks."""

    def __init__(self, *failures):
        self.failures = list(failures)
        self.autocommit = True
        self.log = []

    def cursor(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def execute(self, statement, args=None):
        self.log.append("execute (autocommit=%s)" % self.autocommit)
        if self.failures:
            raise self.failures.pop(0)

    def commit(self):
        self.log.append("commit")

    def rollback(self):
        self.log.append("rollback")


def test_sessions_that_reconnect_during_the_swap_are_outlasted_by_a_retry():
    conn = StubConnection(pg_errors.ObjectInUse("database \"app\" is being accessed by other users"))
    assert replace.swap_in(conn, "keel_restore_x", "app", wait=0) == replace.replaced_name("app")
    assert conn.log == ["execute (autocommit=False)", "rollback"] + ["execute (autocommit=False)"] * 3 + ["commit"]
    assert conn.autocommit is True


def test_a_target_that_keeps_getting_sessions_is_left_untouched_with_advice():
    busy = [pg_errors.ObjectInUse("database \"app\" is being accessed by other users")] * replace.SWAP_ATTEMPTS
    conn = StubConnection(*busy)
    with pytest.raises(PostgresError) as caught:
        replace.swap_in(conn, "keel_restore_x", "app", wait=0)
    assert str(caught.value) == ("cannot swap the restored database in: app kept getting new sessions (database "
                                 "\"app\" is being accessed by other users); the restored copy is keel_restore_x and "
                                 "app is untouched. Stop its clients and run the restore again")
    assert conn.log.count("rollback") == replace.SWAP_ATTEMPTS and "commit" not in conn.log
    assert conn.autocommit is True


def test_any_other_database_error_ends_the_swap_at_once():
    conn = StubConnection(pg_errors.InsufficientPrivilege("must be owner of database app"))
    with pytest.raises(PostgresError, match="^cannot swap the restored database keel_restore_x in for app: must be "
                                            "owner of database app; app is untouched$"):
        replace.swap_in(conn, "keel_restore_x", "app", wait=0)
    assert conn.log == ["execute (autocommit=False)", "rollback"] and conn.autocommit is True
