"""An RDB over the replication protocol: both payload forms, keep-alives, refusals and truncation."""

import os
import socket
import threading
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis import replication as redis_replication
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp

from .fakes import HANDSHAKE, FakeServer, read_all


def test_replication_stream_with_a_length_stops_at_the_payload():
    payload = os.urandom(3 * redis_resp.CHUNK + 17)
    server = FakeServer(HANDSHAKE + [b"$%d\r\n" % len(payload), payload, b"*1\r\n$4\r\nPING\r\n"])
    stream = redis_replication.ReplicationRdb(server.connection(), timeout=30)
    assert (stream.replid, stream.offset, stream.mark) == ("8de1", 1234, None)
    assert read_all(stream) == payload
    server.close()


def test_diskless_stream_ends_exactly_before_its_mark_wherever_reads_split():
    mark = b"a" * 20 + b"0123456789abcdef0123"
    payload = os.urandom(2 * redis_resp.CHUNK) + mark[:39]  # the payload may even end like most of the mark
    server = FakeServer(HANDSHAKE + [b"$EOF:" + mark + b"\r\n", payload, mark, b"\r\n*1\r\n$4\r\nPING\r\n"])
    stream = redis_replication.ReplicationRdb(server.connection(), timeout=30)
    assert stream.mark == mark and read_all(stream) == payload
    server.close()


class KeepAlives:
    """The far end of a socketpair: the handshake, then a keep-alive newline every 10 ms until we hang up."""

    def __init__(self):
        self.ours, self.theirs = socket.socketpair()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self):
        self.theirs.sendall(b"".join(HANDSHAKE))
        try:
            while True:
                self.theirs.sendall(b"\n")
                time.sleep(0.01)
        except OSError:
            pass

    def connection(self):
        return FakeServer.connection(self)


def test_keepalives_do_not_hold_the_replication_stream_past_its_deadline():
    master = KeepAlives()
    outcome = []

    def open_stream():
        try:
            redis_replication.ReplicationRdb(master.connection(), timeout=0.3)
        except RedisError as error:
            outcome.append(str(error))

    reader = threading.Thread(target=open_stream, daemon=True)
    reader.start()
    reader.join(20)
    assert outcome == ["fake redis did not send its RDB within 0.3s; raise timeout"]
    master.theirs.close()


@pytest.mark.parametrize("pieces, message", [
    ([b"+OK\r\n", b"+OK\r\n", b"+FULLRESYNC\r\n"], "answered PSYNC with a malformed"),
    (HANDSHAKE + [b"$12x\r\n"], "where an RDB was expected"),
])
def test_malformed_replication_answers_are_errors(pieces, message):
    server = FakeServer(pieces)
    with pytest.raises(RedisError, match=message):
        redis_replication.ReplicationRdb(server.connection(), timeout=30)
    server.close()


def test_replication_refused_says_what_to_grant():
    refusal = b"-NOPERM this user has no permissions to run the 'psync' command\r\n"
    server = FakeServer([b"+OK\r\n", b"+OK\r\n", refusal])
    with pytest.raises(RedisError, match=r"refused replication .*NOPERM.*grant the user \+psync \+replconf"):
        redis_replication.ReplicationRdb(server.connection(), timeout=30)
    server.close()


def test_truncated_replication_stream_is_an_error():
    server = FakeServer(HANDSHAKE + [b"$100\r\n", b"x" * 60])
    stream = redis_replication.ReplicationRdb(server.connection(), timeout=30)
    with pytest.raises(RedisError, match="40 bytes before the end of the RDB"):
        read_all(stream)
    server.close()
