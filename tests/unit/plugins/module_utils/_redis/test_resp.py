"""RESP: commands, replies split anywhere, and malformed replies."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp

from .fakes import FakeServer


def test_encode_is_resp_arrays_of_bulk_strings():
    assert redis_resp.encode("SET", b"k\x00", 15) == b"*3\r\n$3\r\nSET\r\n$2\r\nk\x00\r\n$2\r\n15\r\n"


def test_replies_of_every_kind_split_anywhere():
    server = FakeServer([b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n-BUSYKEY Target key name already exists.\r\n",
                         b"*2\r\n$1\r\n0\r\n*1\r\n$3\r\nkey\r\n", b"$%d\r\n%s\r\n" % (300000, b"v" * 300000)])
    resp = redis_resp.RespConnection(server.ours, "fake")
    replies = resp.replies(7)
    server.close()
    assert replies[:4] == ["OK", 42, b"hello", None]
    assert isinstance(replies[4], redis_resp.ReplyError) and replies[4].startswith("BUSYKEY")
    assert replies[5] == [b"0", [b"key"]] and replies[6] == b"v" * 300000


@pytest.mark.parametrize("data", [b"$abc\r\n", b":12x\r\n", b"*z\r\n", b"$5\r\nab"])
def test_malformed_replies_are_errors_not_crashes(data):
    server = FakeServer([data])
    resp = redis_resp.RespConnection(server.ours, "fake")
    with pytest.raises(RedisError, match="fake (sent a malformed reply|closed the connection)"):
        resp.replies(1)
    server.close()
