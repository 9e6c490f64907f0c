"""redis_snapshot's options, source names, and the key counts of an RDB checked against its manifest."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError, RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp
from ansible_collections.keel.ops.plugins.module_utils._redis import snapshot as redis_snapshot

from .fakes import PARAMS


@pytest.mark.parametrize("extra, name", [
    ({}, "localhost-6379"),
    ({"login_host": "fe80::1", "login_port": 6380}, "fe80__1-6380"),
    ({"login_unix_socket": "/run/redis/redis-server.sock"}, "local-redis-server"),
    ({"source": "cache-eu"}, "cache-eu"),
])
def test_source_names(extra, name):
    assert redis_snapshot.RedisSnapshotConfig.from_params(dict(PARAMS, **extra)).source_name() == name


@pytest.mark.parametrize("extra, message", [
    ({"state": "restored", "restore_method": "file"}, "name how, with stop_command and start_command"),
    ({"login_user": "backup"}, "give its password in login_password"),
    ({"timeout": 0}, "timeout must be a number of seconds above 0"),
])
def test_bad_options_are_refused_precisely(extra, message):
    with pytest.raises(ConfigError, match=message):
        redis_snapshot.RedisSnapshotConfig.from_params(dict(PARAMS, **extra))


STATS = {"keys": 12, "expires": 3, "databases": {"0": {"keys": 10, "expires": 3}, "4": {"keys": 2, "expires": 0}}}


def test_counts_must_match_exactly_unless_a_master_loaded_them():
    redis_snapshot.check_counts(STATS, {"0": {"keys": 10, "expires": 3}, "4": {"keys": 2, "expires": 0}}, "x")
    with pytest.raises(IntegrityError, match=r"db0 holds 9 keys \(2 with a TTL\), the snapshot 10 \(3\)"):
        redis_snapshot.check_counts(STATS, {"0": {"keys": 9, "expires": 2}, "4": {"keys": 2, "expires": 0}}, "x")
    redis_snapshot.check_counts(STATS, {"0": {"keys": 9, "expires": 2}, "4": {"keys": 2, "expires": 0}}, "x", loaded=True)
    with pytest.raises(IntegrityError, match="db4 holds 1 keys"):
        redis_snapshot.check_counts(STATS, {"0": {"keys": 10, "expires": 3}, "4": {"keys": 1, "expires": 0}}, "x",
                                    loaded=True)
    redis_snapshot.check_counts(dict(STATS, databases=None), {"2": {"keys": 12, "expires": 3}}, "x")


def test_os_errors_that_nothing_caught_become_messages_naming_the_path():
    @redis_snapshot.failures_reported("restoring a Redis snapshot")  # pylint: disable=protected-access
    def broken():
        raise PermissionError(13, "Permission denied", "/var/lib/redis/dump.rdb")

    with pytest.raises(KeelError, match="restoring a Redis snapshot failed: Permission denied: "
                                        "/var/lib/redis/dump.rdb; check that path"):
        broken()
    with pytest.raises(RedisError, match="reading x failed: 'utf-8' codec can't decode .*; check it"):
        with redis_resp.failing_as("reading x", "check it"):
            b"\xff".decode("utf-8")
