import os
import random
import signal
import socket
import threading
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import (
    ConfigError,
    DependencyError,
    IntegrityError,
    KeelError,
    RedisError,
)
from ansible_collections.keel.ops.plugins.module_utils._redis import bgsave as redis_bgsave
from ansible_collections.keel.ops.plugins.module_utils._redis import connection as redis_connection
from ansible_collections.keel.ops.plugins.module_utils._redis import hooks as redis_hooks
from ansible_collections.keel.ops.plugins.module_utils._redis import keys as redis_keys
from ansible_collections.keel.ops.plugins.module_utils._redis import rdb as redis_rdb
from ansible_collections.keel.ops.plugins.module_utils._redis import replication as redis_replication
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp
from ansible_collections.keel.ops.plugins.module_utils._redis import restore as redis_restore
from ansible_collections.keel.ops.plugins.module_utils._redis import server as redis_server
from ansible_collections.keel.ops.plugins.module_utils._redis import snapshot as redis_snapshot


class FakeServer:
    """The far end of a socketpair: sends scripted bytes in random pieces from a thread, records what it got."""

    def __init__(self, pieces, seed=7):
        self.ours, self.theirs = socket.socketpair()
        self.pieces = pieces
        self.random = random.Random(seed)
        self.thread = threading.Thread(target=self._send)
        self.thread.start()

    def _send(self):
        data = b"".join(self.pieces)
        while data:
            cut = self.random.randint(1, 70000)
            self.theirs.sendall(data[:cut])
            data = data[cut:]
        self.theirs.shutdown(socket.SHUT_WR)

    def connection(self):
        server = self

        class Connection:
            timeout = 5

            @staticmethod
            def describe():
                return "fake redis"

            @staticmethod
            def open_resp():
                return redis_resp.RespConnection(server.ours, "fake redis")

        return Connection()

    def close(self):
        self.thread.join()
        self.theirs.close()


def read_all(reader):
    return b"".join(iter(lambda: reader.read(redis_resp.CHUNK), b""))


HANDSHAKE = [b"+OK\r\n", b"-ERR Unrecognized REPLCONF option: rdb-only\r\n", b"+FULLRESYNC 8de1 1234\r\n", b"\n\n\n"]


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


@pytest.mark.parametrize("data", [b"$abc\r\n", b":12x\r\n", b"*z\r\n", b"$5\r\nab"])
def test_malformed_replies_are_errors_not_crashes(data):
    server = FakeServer([data])
    resp = redis_resp.RespConnection(server.ours, "fake")
    with pytest.raises(RedisError, match="fake (sent a malformed reply|closed the connection)"):
        resp.replies(1)
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


@pytest.mark.parametrize("data, expected", [
    (b"\x05", (5, 1)),
    (b"\x41\x02", (258, 2)),
    (b"\x80\x00\x01\x00\x00", (65536, 5)),
    (b"\x81" + (2 ** 40).to_bytes(8, "big"), (2 ** 40, 9)),
    (b"\x41", None),
    (b"\x80\x00", None),
    (b"\xc0\x01", False),
])
def test_rdb_lengths(data, expected):
    assert redis_rdb.read_length(data, 0) == expected


def test_resizedb_records_are_found_across_chunk_boundaries():
    noise = bytes(b for b in os.urandom(5000) if b != 0xFE)
    stream = noise + b"\xfe\x03\xfb\x41\x00\x07" + noise + b"\xfe\x41\x2c\xfb\x05\x80\x00\x00\x00\x02" + noise
    for size in (1, 3, 7, 1000, len(stream)):
        scanner = redis_rdb.ResizeDbScanner()
        for start in range(0, len(stream), size):
            scanner.feed(stream[start:start + size])
        assert scanner.records == {len(noise) + 2: (256, 7), 2 * len(noise) + 6 + 3: (5, 2)}


OK_REPORT = """[offset 0] Checking RDB file /dev/stdin
[offset 27] AUX FIELD redis-ver = '7.0.15'
[offset 68] AUX FIELD used-mem = '1018328'
[offset 82] Selecting DB ID 0
[offset 108] Selecting DB ID 3
[offset 258] Checksum OK
[offset 258] \\o/ RDB looks OK! \\o/
[info] 11 keys read
[info] 1 expires
[info] 0 already expired
"""

BAD_REPORT = """[offset 0] Checking RDB file /dev/stdin
[offset 82] Selecting DB ID 0
--- RDB ERROR DETECTED ---
[offset 115] RDB CRC error
[additional info] While doing: check-sum
[info] 3 keys read
[info] 0 expires
[info] 0 already expired
"""


def test_check_report_parsing():
    report = redis_rdb.parse_check_report(OK_REPORT)
    assert report["ok"] and report["checksum"] == "ok" and report["aux"]["redis-ver"] == "7.0.15"
    assert report["databases_at"] == [(82, 0), (108, 3)] and (report["keys"], report["expires"]) == (11, 1)
    bad = redis_rdb.parse_check_report(BAD_REPORT)
    assert not bad["ok"] and bad["errors"] == ["at byte 115: RDB CRC error", "While doing: check-sum"]


class FakeChecker:
    binary = redis_server.Binary("/usr/bin/redis-check-rdb", (7, 0, 15))

    def __init__(self, report):
        self.report = redis_rdb.parse_check_report(report)
        self.fed = b""

    def write(self, data):
        self.fed += data

    def finish(self):
        return self.report


def inspect(report, stream):
    inspector = redis_rdb.RdbInspector(FakeChecker(report))
    for start in range(0, len(stream), 5):
        inspector.feed(stream[start:start + 5])
    return inspector.finish()


def rdb_with(db0, db3):
    """An RDB-like stream whose SELECTDB+RESIZEDB records sit where OK_REPORT says (offsets 82 and 108), and a
    look-alike elsewhere that must be ignored."""
    return (b"REDIS0010" + b"\x00" * 71 + b"\xfe\x00\xfb" + db0 + b"." * 21 + b"\xfe\x03\xfb" + db3
            + b"\xfe\x00\xfb\x63\x63" + b"." * 200)


def test_per_database_counts_come_from_the_resizedb_records_check_rdb_points_at():
    stats = inspect(OK_REPORT, rdb_with(b"\x08\x01", b"\x03\x00"))
    assert stats["databases"] == {"0": {"keys": 8, "expires": 1}, "3": {"keys": 3, "expires": 0}}
    assert (stats["rdb_version"], stats["redis_version"], stats["used_memory"]) == (10, "7.0.15", 1018328)
    assert stats["checksum"] == "ok" and "7.0.15" in stats["checked_by"]


def test_per_database_counts_are_dropped_when_they_do_not_add_up():
    stream = rdb_with(b"\x09\x01", b"\x03\x00")
    assert inspect(OK_REPORT, stream)["databases"] is None  # 9 + 3 keys, but check-rdb read 11
    one_db = OK_REPORT.replace("[offset 108] Selecting DB ID 3\n", "")
    assert inspect(one_db, stream)["databases"] == {"0": {"keys": 11, "expires": 1}}


def test_a_stream_that_is_no_rdb_is_refused():
    with pytest.raises(IntegrityError, match="does not start like an RDB"):
        inspect(OK_REPORT, b"<html>" + b"." * 300)


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


def fake_binary(tmp_path, version):
    path = tmp_path / ("redis-%s" % version)
    path.write_text("#!/bin/sh\necho 'Redis server v=%s sha=00000000:0 malloc=libc bits=64'\n" % version)
    path.chmod(0o755)
    return str(path)


def test_find_binary_picks_one_that_reads_and_writes_the_right_rdb_versions(tmp_path):
    old, new = fake_binary(tmp_path, "6.2.14"), fake_binary(tmp_path, "7.0.15")
    assert redis_server.find_binary(None, [old, new], min_rdb=10).version == (7, 0, 15)
    assert redis_server.find_binary(None, [new, old], min_rdb=9, max_rdb=9).version == (6, 2, 14)
    with pytest.raises(DependencyError, match=r"reading RDB version 11 .*redis-6.2.14 \(6.2.14\)"):
        redis_server.find_binary(old, [], min_rdb=11)


def test_restore_commands_keep_ttls():
    copier = redis_keys.KeyCopier(None, None, replace=True, absolute_ttl=True)
    assert copier.restore_command(b"k", -1, b"p", 1000) == redis_resp.encode("RESTORE", b"k", 0, b"p", "REPLACE")
    assert copier.restore_command(b"k", 500, b"p", 1000) == redis_resp.encode("RESTORE", b"k", 1500, b"p", "REPLACE",
                                                                      "ABSTTL")
    relative = redis_keys.KeyCopier(None, None, replace=False, absolute_ttl=False)
    assert relative.restore_command(b"k", 500, b"p\r\n", 1000) == redis_resp.encode("RESTORE", b"k", 500, b"p\r\n")


PARAMS = dict(login_host="localhost", login_port=6379, login_unix_socket=None, login_user=None, login_password=None,
              tls=False, validate_certs=True, ca_certs=None, client_cert_file=None, client_key_file=None,
              connect_timeout=10, repository="/srv/backups", source=None, compression="zstd",
              compression_level=None, timeout=60, state="present", restore_method="keys", before=None,
              stop_command=None, start_command=None, systemd_service=None, docker_container=None)


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


def test_systemd_hook_runs_systemctl():
    hook = redis_hooks.hook_from_params(dict(PARAMS, systemd_service="redis-server"))
    assert hook.argv == {"stop": ["systemctl", "stop", "redis-server"], "start": ["systemctl", "start", "redis-server"]}


def test_container_paths_are_found_through_the_longest_mount():
    hook = redis_hooks.DockerHook.__new__(redis_hooks.DockerHook)
    hook.name = "cache"
    hook.container = type("Container", (), {"attrs": {"Mounts": [
        {"Source": "/var/lib/docker/volumes/root/_data", "Destination": "/"},
        {"Source": "/srv/redis-data", "Destination": "/data"}]}})()
    assert hook.host_path("/data/dump.rdb") == "/srv/redis-data/dump.rdb"
    hook.container.attrs["Mounts"] = [{"Source": "/srv/x", "Destination": "/other"}]
    with pytest.raises(ConfigError, match="is not on a volume or bind mount"):
        hook.host_path("/data/dump.rdb")


def docker_hook(mounts):
    hook = redis_hooks.DockerHook.__new__(redis_hooks.DockerHook)
    hook.name = "cache"
    hook.container = type("Container", (), {"attrs": {"Mounts": mounts}})()
    return hook


def test_container_paths_cannot_leave_their_mount(tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    hook = docker_hook([{"Source": str(source), "Destination": "/data"}])
    assert hook.host_path("/data/./sub/../dump.rdb") == str(source / "dump.rdb")
    with pytest.raises(ConfigError, match="is not on a volume or bind mount"):
        hook.host_path("/data/../etc/shadow")
    with pytest.raises(ConfigError, match="not an absolute path"):
        hook.host_path("data/dump.rdb")
    os.symlink("/etc", str(source / "etc"))
    with pytest.raises(ConfigError, match=r"leads out of its mount .* to /etc/shadow: refused"):
        hook.host_path("/data/etc/shadow")


def test_a_signal_while_the_server_is_down_raises_once_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(redis_restore.Interrupted, match="interrupted by SIGTERM"):
        with redis_restore._signals_interrupt():  # pylint: disable=protected-access
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    with redis_restore._signals_interrupt():  # pylint: disable=protected-access
        with pytest.raises(redis_restore.Interrupted):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # the next one is ignored: the server is being started again
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is before


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


def test_an_rdb_on_disk_is_never_read_through_a_symlink(tmp_path):
    target = tmp_path / "secret"
    target.write_text("not an rdb")
    os.symlink(str(target), str(tmp_path / "dump.rdb"))
    with pytest.raises(RedisError, match="cannot read the RDB .*dump.rdb: Too many levels of symbolic links"):
        redis_bgsave.BgsaveRdb._open_file(str(tmp_path / "dump.rdb"))  # pylint: disable=protected-access
