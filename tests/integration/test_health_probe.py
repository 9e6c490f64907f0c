"""keel.ops.health_probe against the real embedded stack and a misbehaving HTTP server on loopback."""

import datetime
import json
import os
import socket
import ssl
import threading
import time

import pytest
from ansible_run import run_four_ways, run_module
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_fixture import start_server


@pytest.fixture(scope="module")
def web():
    server = start_server()
    yield server
    server.shutdown()


def pg_check(pg, **extra):
    check = dict(name="postgres", kind="postgres", host=pg["host"], port=pg["port"], user=pg["user"],
                 password=pg["password"], database=pg["database"])
    check.update(extra)
    return check


def redis_check(server, **extra):
    check = dict(name="redis", kind="redis", host=server["host"], port=server["port"],
                 password=server["password"])
    check.update(extra)
    return check


def assert_no_secret(run, *secrets):
    for secret in secrets:
        assert secret not in run.stdout and secret not in run.stderr


def test_healthy_stack_is_healthy_four_ways(stack, postgres, redis_server, web):
    checks = [pg_check(postgres), redis_check(redis_server),
              dict(name="web", kind="http", url=web.url("/ok"), jmespath="status", expect="ok"),
              dict(name="pg-port", kind="tcp", host=postgres["host"], port=postgres["port"]),
              dict(name="host", kind="system", thresholds={"disk": {"warning": 99, "critical": 99.9},
                                                           "memory": {"warning": 99, "critical": 99.9}})]
    containers = stack.get("containers") or {}
    for instance in containers.get("instances", []) if containers.get("available") else []:
        checks.append(dict(name=instance["name"], kind="http", url=instance["health_url"],
                           jmespath="version", expect="v1"))
    runs = run_four_ways("health_probe", {"checks": checks})
    for run in runs:
        assert run.returncode == 0, run.get("msg")
        assert run["changed"] is False
        assert run["status"] == "healthy", run["summary"]
        assert run["counts"]["healthy"] == len(checks)
        assert_no_secret(run, postgres["password"], redis_server["password"])
    result = runs[1]
    pg = result["by_name"]["postgres"]
    assert pg["metrics"]["query_time"]["unit"] == "ms" and pg["metrics"]["query_time"]["value"] >= 0
    assert 0 < pg["metrics"]["connections_used"]["value"] < 100
    assert pg["metrics"]["replication_lag"]["value"] is None  # a primary has no lag to report
    assert pg["metrics"]["database_size"]["value"] > 1000000
    assert pg["details"]["server_version"].startswith(postgres["version"].split(".")[0])
    cache = result["by_name"]["redis"]
    assert cache["details"]["rdb_last_bgsave_status"] == "ok"
    assert cache["metrics"]["connected_clients"]["value"] >= 1
    assert result["by_name"]["host"]["metrics"]["disk:/"]["unit"] == "%"


def test_stopped_redis_is_critical_and_named(private_redis):
    private_redis.stop()
    run = run_module("health_probe", {"checks": [redis_check(private_redis.facts, name="sessions-cache"),
                                                 dict(name="host", kind="system")]})
    assert run.returncode == 1 and run["failed"] is True
    assert run["status"] == "critical"
    assert run["failing"] == ["sessions-cache"]
    assert run["msg"].startswith("critical: 1 of 2 checks not healthy: sessions-cache (redis) critical: "
                                 "cannot reach redis:")
    assert "\n" not in run["msg"] and "Traceback" not in run.stderr
    assert_no_secret(run, private_redis.facts["password"])


def test_wrong_redis_password_is_reported_as_such(redis_server):
    run = run_module("health_probe", {"checks": [redis_check(redis_server, password="not-the-password")]})
    assert run["status"] == "critical"
    assert "authentication failed" in run["by_name"]["redis"]["message"] or \
        "invalid" in run["by_name"]["redis"]["message"].lower()
    assert_no_secret(run, "not-the-password")


def test_http_500_is_critical(web):
    run = run_module("health_probe", {"checks": [dict(name="api", kind="http", url=web.url("/error"))]})
    assert run.returncode == 1
    assert run["by_name"]["api"]["status"] == "critical"
    assert run["by_name"]["api"]["details"]["status_code"] == 500
    assert run["msg"] == "critical: 1 of 1 checks not healthy: api (http) critical: HTTP 500, expected 200"


def test_jmespath_mismatch_names_expected_and_actual(web):
    run = run_module("health_probe", {"checks": [dict(name="api", kind="http", url=web.url("/degraded"),
                                                      jmespath="status", expect="ok")]})
    assert run["status"] == "critical"
    assert "jmespath 'status' is \"degraded\", expected \"ok\"" in run["msg"]
    assert run["by_name"]["api"]["details"]["jmespath_value"] == "degraded"


def test_body_regex_and_non_json_body(web):
    run = run_module("health_probe", {"fail_on": "never", "checks": [
        dict(name="ok", kind="http", url=web.url("/text"), body_regex="nominal$"),
        dict(name="nomatch", kind="http", url=web.url("/text"), body_regex="^degraded"),
        dict(name="notjson", kind="http", url=web.url("/text"), jmespath="status", expect="ok")]})
    assert run.returncode == 0
    assert run["by_name"]["ok"]["status"] == "healthy"
    assert run["by_name"]["nomatch"]["message"] == "body does not match regex '^degraded'"
    assert run["by_name"]["notjson"]["message"].startswith("body is not JSON")


def test_response_time_threshold_gives_warning(web):
    check = dict(name="slow", kind="http", url=web.url("/slow?0.3"),
                 thresholds={"response_time": {"warning": 200, "critical": 5000}})
    passed = run_module("health_probe", {"checks": [check]})
    assert passed.returncode == 0 and passed["status"] == "warning"
    assert passed["by_name"]["slow"]["metrics"]["response_time"]["value"] >= 300
    failed = run_module("health_probe", {"checks": [check], "fail_on": "warning"})
    assert failed.returncode == 1 and "response_time" in failed["msg"] and "at or above warning 200 ms" in failed["msg"]


def test_many_http_checks_run_concurrently(web):
    checks = [dict(name="slow-%d" % i, kind="http", url=web.url("/slow?0.5")) for i in range(40)]
    started = time.monotonic()
    run = run_module("health_probe", {"checks": checks, "concurrency": 40})
    elapsed = time.monotonic() - started
    assert run["counts"]["healthy"] == 40
    # 40 requests of 0.5 s take 20 s one after another; concurrently well under 4 s including startup.
    assert run["duration_ms"] < 3000, run["duration_ms"]
    assert elapsed < 6


def test_retries_until_healthy(web):
    run = run_module("health_probe", {"checks": [dict(name="boot", kind="http", url=web.url("/flaky"))],
                                      "retries": 5, "delay": 0.2})
    assert run.returncode == 0 and run["status"] == "healthy"
    assert run["attempts"] == 3 and run["by_name"]["boot"]["attempts"] == 3


def test_deadline_reports_unknown(web):
    run = run_module("health_probe", {"checks": [dict(name="stuck", kind="http", url=web.url("/slow?3"))],
                                      "deadline": 0.5, "fail_on": "never"})
    assert run["status"] == "unknown"
    assert run["by_name"]["stuck"]["message"] == "did not finish within the 0.5s deadline"
    assert run["duration_ms"] < 1500


def test_postgres_threshold_and_bad_password(postgres):
    run = run_module("health_probe", {"fail_on": "never", "checks": [
        pg_check(postgres, name="strict", thresholds={"connections_used": {"warning": 0.01, "critical": 99}}),
        pg_check(postgres, name="badpw", password="wrong-password-123")]})
    assert run["by_name"]["strict"]["status"] == "warning"
    assert "connections_used" in run["by_name"]["strict"]["message"]
    assert run["by_name"]["badpw"]["status"] == "critical"
    assert "password authentication failed" in run["by_name"]["badpw"]["message"]
    assert_no_secret(run, "wrong-password-123", postgres["password"])


def _certificate(days):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _tls_server(tmp_path, days):
    cert_pem, key_pem = _certificate(days)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_tls_certificate_expiry_from_server_and_file(tmp_path):
    listener = _tls_server(tmp_path, days=5)
    try:
        port = listener.getsockname()[1]
        run = run_module("health_probe", {"fail_on": "never", "checks": [
            dict(name="soon", kind="tls_cert", host="127.0.0.1", port=port),
            dict(name="verified", kind="tls_cert", host="127.0.0.1", port=port, validate_certs=True)]})
    finally:
        listener.close()
    soon = run["by_name"]["soon"]
    assert soon["status"] == "critical" and 4 < soon["metrics"]["days_remaining"]["value"] <= 5
    assert soon["message"].startswith("days_remaining 5 days is at or below critical 7 days") or \
        soon["message"].startswith("days_remaining 4.9 days is at or below critical 7 days")
    assert soon["details"]["subject"] == "CN=localhost"
    assert "does not verify" in run["by_name"]["verified"]["message"]  # self-signed

    cert_pem, _key = _certificate(60)
    (tmp_path / "long.pem").write_bytes(cert_pem)
    run = run_module("health_probe", {"checks": [dict(name="file", kind="tls_cert",
                                                      pem_file=str(tmp_path / "long.pem"))]})
    assert run["status"] == "healthy" and run["by_name"]["file"]["metrics"]["days_remaining"]["value"] > 59


@pytest.mark.parametrize("checks, message", [
    ([{"kind": "tcp", "host": "127.0.0.1", "port": 1, "url": "http://x"}],
     "checks[0]: option url does not apply to tcp checks; tcp checks accept host, port"),
    ([{"kind": "http", "url": "http://x", "thresholds": {"latency": {"warning": 1}}}],
     "checks[0]: thresholds for latency, but http checks measure only response_time"),
    ([{"kind": "http", "url": "http://x", "thresholds": {"response_time": {"warning": 900, "critical": 100}}}],
     "checks[0]: thresholds.response_time: warning (900) must come before critical (100)"),
    ([{"kind": "webpage", "url": "http://x"}], "value of kind must be one of"),
])
def test_bad_input_fails_precisely(checks, message):
    run = run_module("health_probe", {"checks": checks})
    assert run.returncode == 1 and message in run["msg"]
    assert "Traceback" not in run.stdout + run.stderr


def test_secrets_are_not_logged_in_invocation(postgres):
    run = run_module("health_probe", {"checks": [pg_check(postgres)]})
    assert postgres["password"] not in json.dumps(run.get("invocation", {}))
    assert os.environ.get("PGPASSWORD") is None
