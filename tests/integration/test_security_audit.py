"""The security audit against purpose-built bad servers: a PostgreSQL with a `trust` line in pg_hba.conf, a Redis
that answers without a password with protected mode off, a certificate about to expire with a weak key, and a
repository of unencrypted, never verified backups; the playbook fails on them at the chosen severity, writes the
report, changes nothing, and summarises the audit trail."""

import datetime
import json
import os
import socket
import ssl
import threading
import uuid

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest
import redis
from ansible_run import local_inventory, run_module, run_playbook
from conftest import unavailable
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pg_fixtures import conn_args, connect

PLAYBOOK = "playbooks/security_audit.yml"


@pytest.fixture
def trusting_postgres(postgres):
    """The stack's server with a trust line for a role nobody uses, appended (earlier lines still match first) and
    removed afterwards."""
    admin = connect(postgres)
    with admin.cursor() as cur:
        cur.execute("SHOW hba_file")
        path = cur.fetchone()[0]
    with open(path) as handle:
        original = handle.read()
    with open(path, "a") as handle:
        handle.write("\nhost all keel_audit_nobody 10.11.12.13/32 trust\n")
    with admin.cursor() as cur:
        cur.execute("SELECT pg_reload_conf()")
    try:
        yield postgres
    finally:
        with open(path, "w") as handle:
            handle.write(original)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
        admin.close()


@pytest.fixture
def open_redis(private_redis):
    """A Redis that answers anyone: no password, protected mode off."""
    client = redis.Redis(host=private_redis["host"], port=private_redis["port"], password=private_redis["password"])
    client.config_set("protected-mode", "no")
    client.config_set("requirepass", "")
    return private_redis


def weak_certificate(tmp_path, days_left=3, with_key=False):
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"weak.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=300))
            .not_valid_after(now + datetime.timedelta(days=days_left)).sign(key, hashes.SHA256()))
    path = tmp_path / "weak.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not with_key:
        return str(path)
    key_path = tmp_path / "weak.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(path), str(key_path)


@pytest.fixture
def weak_tls_server(tmp_path):
    """A real TLS server on loopback presenting the weak certificate to every client, until the test ends."""
    cert, key = weak_certificate(tmp_path, with_key=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL:@SECLEVEL=0")  # OpenSSL refuses to serve a 1024-bit key at its default level
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                client, _address = listener.accept()
            except socket.timeout:
                continue
            try:
                with context.wrap_socket(client, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_served_certificate_is_read_unverified_and_its_weak_key_and_expiry_reported(weak_tls_server):
    found = run_module("tls_security_info", {"endpoints": [{"host": "127.0.0.1", "port": weak_tls_server}]})
    assert found.returncode == 0, found.get("msg")
    checks = by_check(found["findings"])
    assert checks["tls.expiry"][0]["target"] == "127.0.0.1:%d" % weak_tls_server
    assert checks["tls.expiry"][0]["severity"] == "high" and "tls.weak_key" in checks
    closed = run_module("tls_security_info", {"endpoints": [{"host": "127.0.0.1", "port": 1}], "timeout": 2})
    assert by_check(closed["findings"])["tls.unreachable"][0]["severity"] == "medium"


def by_check(findings):
    found = {}
    for item in findings:
        found.setdefault(item["check"], []).append(item)
    return found


def test_the_modules_flag_a_trust_line_and_a_redis_without_auth(trusting_postgres, open_redis, tmp_path):
    pg = run_module("pg_security_info", conn_args(trusting_postgres))
    assert pg.returncode == 0 and pg["changed"] is False, pg.get("msg")
    checks = by_check(pg["findings"])
    [trust] = [f for f in checks["postgres.hba_trust"] if "10.11.12.13" in f["title"]]
    assert trust["severity"] == "critical" and "scram-sha-256" in trust["fix"]
    assert "postgres.ssl" in checks and trusting_postgres["password"] not in pg.stdout
    cache = run_module("redis_security_info", dict(login_host=open_redis["host"], login_port=open_redis["port"]))
    assert cache.returncode == 0, cache.get("msg")
    checks = by_check(cache["findings"])
    assert checks["redis.no_auth"][0]["severity"] == "critical"
    assert checks["redis.protected_mode"][0]["severity"] == "high"
    assert "FLUSHALL" in checks["redis.dangerous_commands"][0]["detail"]["commands"] and "redis.tls" in checks
    tls = run_module("tls_security_info", {"paths": [weak_certificate(tmp_path)]})
    checks = by_check(tls["findings"])
    assert checks["tls.expiry"][0]["severity"] == "high" and "1024-bit RSA" in checks["tls.weak_key"][0]["title"]


def test_a_well_kept_redis_has_no_auth_finding(private_redis):
    found = run_module("redis_security_info", dict(login_host=private_redis["host"], login_port=private_redis["port"],
                                                   login_password=private_redis["password"]))
    assert found.returncode == 0 and "redis.no_auth" not in by_check(found["findings"]), found.get("msg")
    assert private_redis["password"] not in found.stdout


def test_the_playbook_fails_at_the_chosen_severity_writes_the_report_and_summarises_the_trail(
        trusting_postgres, open_redis, tmp_path):
    repo = str(tmp_path / "repo")
    database = "keel_audit_%s" % uuid.uuid4().hex[:8]
    admin = connect(trusting_postgres)
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % database)
    try:
        taken = run_module("pg_backup", dict(conn_args(trusting_postgres), repository=repo, database=database,
                                             audit_actor="bob"))
        assert taken.returncode == 0, taken.get("msg")
        failed = run_module("pg_backup", dict(conn_args(trusting_postgres), repository=repo, database="nope_%s" % database,
                                              audit_actor="bob"))
        assert failed["failed"]
        before = sorted(os.listdir(repo))
        values = dict(
            security_audit_hosts="all", security_audit_report_dir=str(tmp_path / "reports"),
            security_audit_postgres_enabled=True, security_audit_postgres_login_host=trusting_postgres["host"],
            security_audit_postgres_login_port=trusting_postgres["port"],
            security_audit_postgres_login_user=trusting_postgres["user"],
            security_audit_postgres_login_password=trusting_postgres["password"],
            security_audit_redis_enabled=True, security_audit_redis_login_host=open_redis["host"],
            security_audit_redis_login_port=open_redis["port"],
            security_audit_tls_paths=[weak_certificate(tmp_path)],
            security_audit_repositories=[{"repository": repo}])
        run = run_playbook(PLAYBOOK, local_inventory(tmp_path), dict(values, security_audit_fail_on="critical"))
        assert run.returncode != 0 and "findings at critical or above" in run.stdout, run.stdout[-3000:]
        assert trusting_postgres["password"] not in run.stdout
        [report_file] = [f for f in os.listdir(str(tmp_path / "reports" / "db1")) if f.endswith(".json")]
        report = json.loads((tmp_path / "reports" / "db1" / report_file).read_text())
        checks = by_check(report["findings"])
        assert report["result"] == "failed" and report["counts"]["critical"] >= 2
        assert report["findings"][0]["severity"] == "critical"
        assert {"backups.unencrypted", "backups.unverified", "backups.local_only", "audit.failed_changes"} <= set(checks)
        trail = report["audit_trail"]
        assert trail["by_actor"] == {"bob": 2} and trail["by_result"] == {"changed": 1, "failed": 1}
        assert sorted(os.listdir(repo)) == before
        passing = run_playbook(PLAYBOOK, local_inventory(tmp_path), dict(
            values, security_audit_fail_on="never", security_audit_report_dir=""))
        assert passing.returncode == 0, passing.stdout[-3000:]
    finally:
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % database)
        admin.close()


def test_container_findings_on_the_engine_name_the_root_host_network_container(containers):
    if not containers.get("available"):
        unavailable("containers: %s" % containers.get("reason"))
    client = stack_tool.import_docker().DockerClient(base_url=containers["docker_host"])
    label = "keel-audit-%s" % uuid.uuid4().hex[:8]
    name = "%s-app" % label
    client.api.create_container_from_config({
        "Image": containers["images"]["v1"], "Env": ["APP_PORT=%d" % stack_tool.free_port()], "Labels": {"keel.test": label},
        "HostConfig": {"NetworkMode": "host", "IpcMode": "private"}}, name)
    client.api.start(name)
    try:
        found = run_module("container_security_info", {"docker_host": containers["docker_host"],
                                                       "labels": {"keel.test": label}, "max_image_age_days": -1})
        assert found.returncode == 0 and found["containers"] == 1, found.get("msg")
        checks = by_check(found["findings"])
        assert checks["containers.root"][0]["target"] == "container %s" % name
        assert checks["containers.host_network"][0]["severity"] == "medium"
        assert "containers.privileged" not in checks and "containers.host_pid" not in checks
        assert checks["containers.old_image"][0]["detail"]["age_days"] >= 0
    finally:
        client.api.remove_container(name, force=True)
        client.close()
