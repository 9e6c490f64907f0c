"""pg_backup's options as the module hands them over, and the names a backup's source gets."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, PostgresError
from ansible_collections.keel.ops.plugins.module_utils._postgres import logical
from ansible_collections.keel.ops.plugins.modules.pg_backup import ARGUMENT_SPEC

DEFAULTS = dict((name, spec.get("default")) for name, spec in ARGUMENT_SPEC.items())


def config(**params):
    return logical.PgBackupConfig.from_params(dict(DEFAULTS, **dict({"repository": "/srv/backups"}, **params)))


def test_defaults_make_a_single_stream_custom_format_backup_with_a_lock_timeout():
    made = config(database="shop", login_host="db1", login_password="pw")
    assert made.jobs == 1 and made.lock_wait_timeout == 120 and made.statement_timeout == 0
    assert made.connection.host == "db1" and made.connection.port == 5432 and made.connection.database == "postgres"
    assert not made.encrypted and made.compression_level == 1


@pytest.mark.parametrize("params, message", [
    ({"jobs": 0}, "jobs must be at least 1, got 0"),
    ({"lock_wait_timeout": -1}, "lock_wait_timeout must be a number of seconds, 0 for no limit"),
    ({"jobs": 2, "encryption_recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]},
     "jobs > 1 makes pg_dump write a directory of plaintext files"),
    ({"repository": "s3://bucket/x", "s3_region": "no such region"}, "is not a region name"),
])
def test_contradictory_options_are_refused_before_anything_is_reached(params, message):
    with pytest.raises(ConfigError, match=message):
        config(**params)


@pytest.mark.parametrize("params, source", [
    ({"database": "shop", "login_host": "db1", "login_port": 5433}, "db1-5433-shop"),
    ({"database": "shop", "login_unix_socket": "/run/postgresql"}, "local-5432-shop"),
    ({"database": "../x", "login_host": "db1"}, "db1-5432-x-"),
    ({"scope": "cluster", "login_host": "db1"}, "db1-5432-cluster"),
    ({"database": "shop", "source": "orders-prod"}, "orders-prod"),
])
def test_source_names(params, source):
    made = config(**params)
    assert made.source_name(params.get("database")).startswith(source)


def test_a_dump_that_gave_up_on_a_lock_says_so_and_what_to_do():
    made = config(database="shop", lock_wait_timeout=2)
    explained = logical._explained_lock_wait(  # pylint: disable=protected-access
        PostgresError("pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\n"
                      "pg_dump: detail: Query was: LOCK TABLE public.t IN ACCESS SHARE MODE"), made, "shop")
    assert str(explained).startswith("waited lock_wait_timeout (2s) for a table lock in shop")
    other = PostgresError("pg_dump: error: connection lost")
    assert logical._explained_lock_wait(other, made, "shop") is other  # pylint: disable=protected-access
