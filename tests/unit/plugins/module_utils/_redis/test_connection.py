"""Redis versions, INFO and its keyspace, and what an error reply asks of the user."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._redis import connection as redis_connection
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp


def test_versions():
    assert redis_connection.parse_version("7.0.15") == (7, 0, 15) and redis_connection.parse_version("8.2") == (8, 2, 0)
    assert [redis_connection.rdb_version_of(v) for v in ("3.0.7", "5.0.1", "6.2.14", "7.0.15", "7.2.4", "7.4.1", "8.0.2")] == \
        [6, 9, 9, 10, 11, 12, 12]


def test_info_and_its_keyspace():
    info = redis_connection.parse_info(b"# Server\r\nredis_version:7.0.15\r\nexecutable:/usr/bin/redis-server\r\n\r\n"
                                       b"# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=5\r\ndb12:keys=1,expires=0,avg_ttl=0\r\n")
    assert info["redis_version"] == "7.0.15" and info["executable"] == "/usr/bin/redis-server"
    assert redis_connection.keyspace(info) == {"0": {"keys": 3, "expires": 1}, "12": {"keys": 1, "expires": 0}}


@pytest.mark.parametrize("reply, expected", [
    ("NOAUTH Authentication required.", "refused reading INFO (NOAUTH Authentication required.): set login_password"),
    ("NOPERM this user has no permissions to run the 'bgsave' command", "grant the user that command"),
    ("ERR Background save already in progress", "failed while reading INFO: ERR Background save already"),
])
def test_error_replies_say_what_to_do(reply, expected):
    assert expected in redis_connection.refusal("redis at h:1", "reading INFO", redis_resp.ReplyError(reply))
