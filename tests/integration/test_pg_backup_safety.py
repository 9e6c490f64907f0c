"""pg_backup where a database, a repository or a lock could be turned against it: names read as connection
strings, forged repository content, lost locks, retention racing a restore, a restore that fails half-way."""

import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import boto3
import psycopg2
import pytest
import zstandard
from ansible_run import run_module, start_module
# big_db is a fixture: imported to be used by name in test signatures
from pg_fixtures import (  # noqa: F401 pylint: disable=unused-import
    SLOW,
    backup,
    big_db,
    conn_args,
    connect,
    create_database,
    database_exists,
    fingerprints,
    restore,
    s3_args,
)


class PasswordTrap:
    """A loopback listener that speaks just enough of the PostgreSQL protocol to ask a client for its password
    in clear text, and keeps whatever it is given."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client = self.sock.accept()[0]
            except OSError:
                return
            self.connections += 1
            with client:
                client.settimeout(5)
                try:
                    self._handshake(client)
                except (OSError, struct.error):
                    pass

    def _handshake(self, client):
        length, code = struct.unpack("!II", client.recv(8))
        if code == 80877103:  # SSLRequest: say no, then the real startup packet follows
            client.sendall(b"N")
            length, code = struct.unpack("!II", client.recv(8))
        client.recv(length - 8)
        client.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        header = client.recv(5)
        if header[:1] == b"p":
            self.received.append(client.recv(struct.unpack("!I", header[1:5])[0] - 4).rstrip(b"\0").decode())
        client.sendall(b"E" + struct.pack("!I", 4 + 9) + b"SFATAL\0\0\0\0")

    def close(self):
        self.sock.close()


@pytest.fixture
def trap():
    listener = PasswordTrap()
    yield listener
    listener.close()


def _drop(pg, *names):
    conn = connect(pg)
    with conn.cursor() as cur:
        for name in names:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name.replace('"', '""'))
    conn.close()


def _create_named(pg, name):
    conn = connect(pg)
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % name.replace('"', '""'))
    conn.close()
    conn = connect(pg, name)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        cur.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50) g")
    conn.close()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_database_name_is_never_read_as_a_connection_string(postgres, trap, tmp_path, jobs):
    planted = "host=127.0.0.1 port=%d dbname=%s" % (trap.port, postgres["database"])
    climbing = "../../../tmp/keel-escape-%s" % uuid.uuid4().hex[:6]
    try:
        for name in (planted, climbing):
            _create_named(postgres, name)
        for name in (planted, climbing):
            taken = backup(postgres, str(tmp_path / "repo"), name, jobs=jobs)
            assert taken.returncode == 0, taken.get("msg")
            assert taken["statistics"][name]["tables"] == {"public.t": 50}
            assert "/" not in taken["artifacts"][0]["name"] and ".." not in taken["artifacts"][0]["name"]
            done = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=str(tmp_path / "repo"),
                                                database=name, target_database=name + "_r"))
            assert done.returncode == 0, done.get("msg")
        assert trap.connections == 0 and trap.received == []
    finally:
        _drop(postgres, planted, climbing, planted + "_r", climbing + "_r")


def test_a_cluster_backup_never_hands_the_password_to_another_server(postgres, trap, tmp_path):
    planted = "host=127.0.0.1 port=%d dbname=%s" % (trap.port, postgres["database"])
    try:
        _create_named(postgres, planted)
        taken = run_module("pg_backup", dict(conn_args(postgres), repository=str(tmp_path / "repo"), scope="cluster",
                                             source="cluster"))
        assert taken.returncode == 0, taken.get("msg")
        assert planted in [a.get("database") for a in taken["artifacts"]]
        assert trap.connections == 0 and postgres["password"] not in trap.received
    finally:
        _drop(postgres, planted)


# --------------------------------------------------------------------------- #
# Locks and retention.
# --------------------------------------------------------------------------- #


def _lock_object(s3, prefix):
    client = boto3.client("s3", endpoint_url=s3["endpoint_url"], region_name=s3["region"],
                          aws_access_key_id=s3["access_key"], aws_secret_access_key=s3["secret_key"])
    return client, "%s/postgres/%s/.lock" % (prefix, "lockrace")


def test_a_backup_that_lost_its_s3_lock_while_paused_commits_nothing(postgres, s3, big_db, tmp_path):
    """The run is paused mid-backup (SIGSTOP: a stuck host, a long GC), another run takes the lock over, the paused
    run wakes up before its heartbeat notices. It must not commit a manifest, nor report success."""
    prefix = uuid.uuid4().hex
    args = dict(conn_args(postgres), **s3_args(s3), repository="s3://%s/%s" % (s3["bucket"], prefix), database=big_db,
                source="lockrace", **SLOW)
    client, lock_key = _lock_object(s3, prefix)
    proc = start_module("pg_backup", args, tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not client.list_multipart_uploads(Bucket=s3["bucket"],
                                                                            Prefix=prefix).get("Uploads"):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        intruder = {"host": "other-host", "pid": 1, "since": "2026-12-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z",
                    "token": "feedface"}
        client.put_object(Bucket=s3["bucket"], Key=lock_key, Body=json.dumps(intruder).encode())
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    out, _err = proc.communicate(timeout=600)
    result = json.loads(out)
    assert result.get("failed") and "taken over by another run" in result["msg"], result.get("msg")
    listed = client.list_objects_v2(Bucket=s3["bucket"], Prefix=prefix).get("Contents", [])
    assert [o["Key"] for o in listed if o["Key"].endswith("manifest.json")] == []
    assert json.loads(client.get_object(Bucket=s3["bucket"], Key=lock_key)["Body"].read())["host"] == "other-host"


def test_retention_keeps_the_backup_just_taken_when_another_writer_runs_ahead(postgres, tmp_path):
    name = "ahead_%s" % uuid.uuid4().hex[:6]
    repo = str(tmp_path / "repo")
    _create_named(postgres, name)
    try:
        first = backup(postgres, repo, name)
        folder = os.path.dirname(os.path.dirname(first["location"] + "/x"))
        future = "20991231T235959000Z-ffffff"
        shutil.copytree(first["location"], os.path.join(folder, future))
        with open(os.path.join(folder, future, "manifest.json")) as handle:
            manifest = json.load(handle)
        with open(os.path.join(folder, future, "manifest.json"), "w") as handle:
            json.dump(dict(manifest, id=future), handle)
        taken = backup(postgres, repo, name, keep_last=1)
        assert taken.returncode == 0, taken.get("msg")
        assert taken["backup_id"] in taken["retention"]["kept"]
        listed = [b["backup_id"] for b in run_module("pg_backup_info", {"repository": repo})["backups"]]
        assert taken["backup_id"] in listed and future in listed and first["backup_id"] not in listed
    finally:
        _drop(postgres, name)


def test_a_dump_waiting_on_a_lock_fails_at_lock_wait_timeout_instead_of_hanging(postgres, tmp_path):
    name = "locked_%s" % uuid.uuid4().hex[:6]
    _create_named(postgres, name)
    holder = connect(postgres, name)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # a migration in progress
        taken = run_module("pg_backup", dict(conn_args(postgres), repository=str(tmp_path / "repo"), database=name,
                                             lock_wait_timeout=2), timeout=120)
        assert taken.returncode == 1
        assert "waited lock_wait_timeout (2s) for a table lock in %s" % name in taken["msg"], taken["msg"]
        assert run_module("pg_backup_info", {"repository": str(tmp_path / "repo")})["count"] == 0
    finally:
        holder.rollback()
        holder.close()
        _drop(postgres, name)


# --------------------------------------------------------------------------- #
# Replacing a live database.
# --------------------------------------------------------------------------- #


def _grant_to_a_role_that_will_be_gone(pg, database):
    conn = connect(pg, database)
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS keel_gone_role")
        cur.execute("CREATE ROLE keel_gone_role NOLOGIN")
        cur.execute("GRANT SELECT ON sales.orders TO keel_gone_role")
    conn.close()


def _drop_role(pg, database):
    conn = connect(pg, database)
    with conn.cursor() as cur:
        cur.execute("REVOKE ALL ON sales.orders FROM keel_gone_role")
        cur.execute("DROP ROLE keel_gone_role")
    conn.close()


def test_a_failing_replace_leaves_the_live_database_as_it_was(postgres, tmp_path):
    """pg_restore fails on a GRANT to a role that no longer exists: the live database must keep its data."""
    name = "live_%s" % uuid.uuid4().hex[:6]
    repo = str(tmp_path / "repo")
    create_database(postgres, name)
    try:
        _grant_to_a_role_that_will_be_gone(postgres, name)
        taken = backup(postgres, repo, name)
        assert taken.returncode == 0, taken.get("msg")
        _drop_role(postgres, name)
        before = fingerprints(postgres, name)
        done = restore(postgres, repo, name, name, replace=True)
        assert done.returncode == 1
        assert "keel_gone_role" in done["msg"] and "%s was not touched" % name in done["msg"]
        assert fingerprints(postgres, name) == before
        assert not database_exists(postgres, pg_restore_staging(name))
    finally:
        _drop(postgres, name)


def pg_restore_staging(target):
    return "keel_restore_%s" % hashlib.sha256(target.encode()).hexdigest()[:16]


def test_replace_swaps_in_a_checked_copy_and_keeps_the_owner(postgres, dbname_for_replace, tmp_path):
    name, owner = dbname_for_replace
    repo = str(tmp_path / "repo")
    taken = backup(postgres, repo, name)
    assert taken.returncode == 0, taken.get("msg")
    expected = fingerprints(postgres, name)
    conn = connect(postgres, name)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM sales.orders WHERE id % 2 = 0")  # the incident the restore repairs
    conn.close()
    session = connect(postgres, name)  # an application session, ended by the swap
    done = restore(postgres, repo, name, name, replace=True)
    assert done.returncode == 0, done.get("msg")
    assert done["plan"]["staging_database"] == pg_restore_staging(name)
    assert fingerprints(postgres, name) == expected
    assert session.closed or _session_ended(session)
    admin = connect(postgres)
    with admin.cursor() as cur:
        cur.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,))
        assert cur.fetchone()[0] == owner
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'keel_re%%'")
        assert cur.fetchone()[0] == 0
    admin.close()


def _session_ended(conn):
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except psycopg2.Error:
        return True
    return False


@pytest.fixture
def dbname_for_replace(postgres):
    name = "swap_%s" % uuid.uuid4().hex[:6]
    create_database(postgres, name)
    admin = connect(postgres)
    with admin.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS keel_app_owner")
        cur.execute("CREATE ROLE keel_app_owner NOLOGIN")
        cur.execute('ALTER DATABASE "%s" OWNER TO keel_app_owner' % name)
    admin.close()
    yield name, "keel_app_owner"
    _drop(postgres, name)


def test_a_restore_killed_mid_way_leaves_the_target_and_the_next_run_repairs(postgres, big_db, tmp_path):
    repo = str(tmp_path / "repo")
    taken = backup(postgres, repo, big_db, compression="none")
    assert taken.returncode == 0, taken.get("msg")
    before = fingerprints(postgres, big_db)
    args = dict(conn_args(postgres), state="restored", repository=repo, database=big_db, target_database=big_db,
                replace=True)
    proc = start_module("pg_backup", args, tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not database_exists(postgres, pg_restore_staging(big_db)):
        time.sleep(0.05)
    time.sleep(0.5)  # well into the restore
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert fingerprints(postgres, big_db) == before
    again = run_module("pg_backup", args)
    assert again.returncode == 0, again.get("msg")
    assert "dropped %s" % pg_restore_staging(big_db) in json.dumps(again.get("warnings"))
    assert fingerprints(postgres, big_db) == before


# --------------------------------------------------------------------------- #
# Forged repository content.
# --------------------------------------------------------------------------- #


def _forge_globals(backup_dir, script):
    """Replace a backup's globals artifact (zstd) by `script` and fix the manifest's checksums, as anyone who can
    write the repository could."""
    manifest_path = os.path.join(backup_dir, "manifest.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    artifact = next(a for a in manifest["artifacts"] if a["kind"] == "globals")
    data = zstandard.ZstdCompressor().compress(script.encode())
    with open(os.path.join(backup_dir, artifact["name"]), "wb") as handle:
        handle.write(data)
    artifact.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)


def test_a_forged_globals_script_is_refused_before_psql_sees_it(postgres, tmp_path):
    repo = str(tmp_path / "repo")
    marker = tmp_path / "pwned"
    taken = run_module("pg_backup", dict(conn_args(postgres), repository=repo, scope="globals", source="globals"))
    assert taken.returncode == 0, taken.get("msg")
    _forge_globals(taken["location"], "CREATE ROLE keel_forged;\n\\! touch %s\n" % marker)
    done = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=repo, scope="globals",
                                        source="globals", restore_globals=True))
    assert done.returncode == 1 and "meta-command '\\\\! touch" in done["msg"] and "tampered" in done["msg"]
    assert not marker.exists()
    conn = connect(postgres)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'keel_forged'")
        assert cur.fetchone() is None
    conn.close()


def test_signed_backups_restore_and_a_tampered_manifest_is_refused(postgres, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp_path / "signing.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    name = "signed_%s" % uuid.uuid4().hex[:6]
    repo = str(tmp_path / "repo")
    _create_named(postgres, name)
    try:
        taken = backup(postgres, repo, name, signing_key_file=str(private))
        assert taken.returncode == 0, taken.get("msg")
        assert os.path.exists(os.path.join(taken["location"], "manifest.json.sig"))
        done = restore(postgres, repo, name, name + "_ok", trusted_signing_keys=[public])
        assert done.returncode == 0, done.get("msg")
        with open(os.path.join(taken["location"], "manifest.json")) as handle:
            manifest = json.load(handle)
        manifest["statistics"][name]["tables"]["public.t"] = 0
        with open(os.path.join(taken["location"], "manifest.json"), "w") as handle:
            json.dump(manifest, handle)
        refused = restore(postgres, repo, name, name + "_forged", trusted_signing_keys=[public],
                          backup_id=taken["backup_id"])
        assert refused.returncode == 1 and "does not match its signature" in refused["msg"]
        assert not database_exists(postgres, name + "_forged")
    finally:
        _drop(postgres, name, name + "_ok")


def test_a_psql_that_stops_reading_the_globals_reports_its_own_error(postgres, tmp_path):
    repo = str(tmp_path / "repo")
    taken = run_module("pg_backup", dict(conn_args(postgres), repository=repo, scope="globals", source="globals"))
    assert taken.returncode == 0, taken.get("msg")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("pg_dump", "pg_dumpall", "pg_restore"):
        os.symlink(os.path.join(postgres["bin_dir"], name), tools / name)
    version = subprocess.run([os.path.join(postgres["bin_dir"], "psql"), "--version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    (tools / "psql").write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "%s"; exit 0; }\nexec 0<&-\n'
                                'echo "psql: error: out of file descriptors (from the test)" >&2\nsleep 0.3\nexit 2\n'
                                % version)
    (tools / "psql").chmod(0o755)
    done = run_module("pg_backup", dict(conn_args(postgres), bin_dir=str(tools), state="restored", repository=repo,
                                        scope="globals", source="globals", restore_globals=True))
    assert done.returncode == 1 and "out of file descriptors (from the test)" in done["msg"], done.get("msg")
    assert "Traceback" not in done.stdout + done.stderr and "this is a bug" not in done["msg"].lower()
