"""keel.ops.health_probe against the real embedded stack and a misbehaving HTTP server on loopback."""

import datetime
import json
import os
import socket
import ssl
import threading
import time

from urllib.parse import unquote

import pytest
from ansible_run import run_four_ways, run_module
from conftest import unavailable
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_fixture import Handler, start_server
from http_fixture import TestServer as LoopbackServer
from redis_fixtures import BINARIES, redis_factory  # noqa: F401 pylint: disable=unused-import
# tls_files: a CA and a certificate for 127.0.0.1
from test_redis_snapshot import tls_files  # noqa: F401 pylint: disable=unused-import


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


class Trickle:
    """An HTTP server on loopback that promises a large body and sends it one byte a second for as long as the
    client stays: no single read ever waits long enough for a socket timeout."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d/health" % self.listener.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
                while not self.stopped.wait(1.0):
                    conn.sendall(b".")
            except OSError:
                return  # the client went away

    def close(self):
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def trickle():
    server = Trickle()
    yield server
    server.close()


@pytest.fixture
def unanswered_port():
    """A port whose connects never complete: a listener that never accepts, its backlog already full."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _attempt in range(8):
            filler = socket.socket()
            filler.settimeout(0.5)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except (socket.timeout, TimeoutError):
                break
        else:
            pytest.fail("the listener's backlog never filled: connects to it would not hang")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_slow_drip_body_ends_at_the_deadline_and_the_module_exits(trickle):
    started = time.monotonic()
    run = run_module("health_probe", {"checks": [dict(name="drip", kind="http", url=trickle.url, timeout=600)],
                                      "deadline": 2, "fail_on": "never"}, timeout=40)
    assert time.monotonic() - started < 20, "the module outlived its 2 s deadline"
    assert run["by_name"]["drip"]["status"] == "unknown"
    assert run["by_name"]["drip"]["message"] == "did not finish within the 2s deadline"


def test_a_slow_drip_body_is_cut_at_the_checks_own_timeout(trickle):
    started = time.monotonic()
    run = run_module("health_probe", {"checks": [dict(name="drip", kind="http", url=trickle.url, timeout=2)],
                                      "fail_on": "never"}, timeout=40)
    assert time.monotonic() - started < 20, "the check outlived its 2 s timeout"
    assert run["by_name"]["drip"]["status"] == "critical"
    assert run["by_name"]["drip"]["message"].startswith("no complete response within 2s")


def test_connects_that_never_complete_do_not_outlive_the_deadline(unanswered_port):
    checks = [dict(name="port-%d" % i, kind="tcp", host="127.0.0.1", port=unanswered_port, timeout=3)
              for i in range(15)]
    started = time.monotonic()
    run = run_module("health_probe", {"checks": checks, "concurrency": 1, "deadline": 2, "fail_on": "never"},
                     timeout=120)
    # One at a time, the 15 connects would take 30 s or more; the answer is due after 2.
    assert time.monotonic() - started < 20, "queued checks kept the module alive after its deadline"
    assert run["counts"]["unknown"] == 15


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


# --- redirects --------------------------------------------------------------------------------------

class RedirectingHandler(Handler):
    """/to?<url>: a 302 to that URL; /headers: the credentials the request carried, as JSON."""

    def do_GET(self):
        path, _sep, query = self.path.partition("?")
        if path == "/to":
            self.send_response(302)
            self.send_header("Location", unquote(query))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/headers":
            with self.server.lock:
                self.server.hits[path] = self.server.hits.get(path, 0) + 1
            self._send(200, {"authorization": self.headers.get("Authorization"),
                             "api_key": self.headers.get("X-Api-Key"), "trace": self.headers.get("X-Trace")})
        else:
            super().do_GET()


def redirecting_server(tls_context=None):
    server = LoopbackServer()
    server.RequestHandlerClass = RedirectingHandler
    if tls_context:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def origins():
    """Two HTTP servers on loopback: two origins (same host, different ports)."""
    servers = [redirecting_server(), redirecting_server()]
    yield servers
    for server in servers:
        server.shutdown()


CREDENTIALS = {"Authorization": "Bearer red1rect-secret", "X-Api-Key": "k3y-secret", "X-Trace": "t1"}
SEEN = "[authorization, api_key, trace]"


def test_redirects_stay_within_the_origin_by_default(origins):
    here, there = origins
    before = there.hits.get("/headers", 0)
    run = run_module("health_probe", {"fail_on": "never", "checks": [
        dict(name="same", kind="http", url=here.url("/to?/headers"), headers=CREDENTIALS, jmespath="trace",
             expect="t1"),
        dict(name="cross", kind="http", url=here.url("/to?" + there.url("/headers")), headers=CREDENTIALS)]})
    same, cross = run["by_name"]["same"], run["by_name"]["cross"]
    assert same["status"] == "healthy", same["message"]
    assert same["details"]["redirected_to"] == here.url("/headers")
    assert cross["status"] == "critical"
    assert cross["message"] == ("HTTP 302, expected 200; redirect to %s not followed: it leaves the origin and "
                                "follow_redirects is same_origin" % there.url("/headers"))
    assert there.hits.get("/headers", 0) == before, "the other origin was asked"


def test_safe_redirects_leave_the_origin_without_the_credentials(origins):
    here, there = origins
    run = run_module("health_probe", {"checks": [
        dict(name="same", kind="http", url=here.url("/to?/headers"), headers=CREDENTIALS, follow_redirects="safe",
             jmespath=SEEN, expect=["Bearer red1rect-secret", "k3y-secret", "t1"]),
        dict(name="cross", kind="http", url=here.url("/to?" + there.url("/headers")), headers=CREDENTIALS,
             follow_redirects="safe", jmespath=SEEN, expect=[None, None, "t1"])]})
    assert run["status"] == "healthy", run["summary"]
    assert run["by_name"]["cross"]["details"]["redirected_to"] == there.url("/headers")


@pytest.mark.parametrize("follow_redirects", ["safe", True])
def test_https_is_never_redirected_to_http(tmp_path, origins, follow_redirects):
    cert_pem, key_pem = _certificate(30)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    secure = redirecting_server(context)
    try:
        https = secure.url("/to?%s").replace("http://", "https://")
        run = run_module("health_probe", {"fail_on": "never", "checks": [
            dict(name="down", kind="http", url=https % origins[1].url("/ok"), validate_certs=False,
                 follow_redirects=follow_redirects),
            dict(name="up", kind="http", url=https % "/ok", validate_certs=False,
                 follow_redirects=follow_redirects)]})
    finally:
        secure.shutdown()
    assert run["by_name"]["down"]["status"] == "critical"
    assert run["by_name"]["down"]["message"].endswith("not followed: it would downgrade https to http")
    assert run["by_name"]["up"]["status"] == "healthy", run["by_name"]["up"]["message"]


# --- secrets ----------------------------------------------------------------------------------------

def test_credentials_in_urls_and_bodies_reach_no_output(web):
    port = web.server_address[1]
    secrets = ("pa55-w0rd-x", "t0ken-abc123", "k3y-zzz999", "b0dy-s3cret-1")
    checks = [
        dict(kind="http", url="http://monitor:pa55-w0rd-x@127.0.0.1:%d/ok?token=t0ken-abc123&verbose=1" % port),
        dict(name="down", kind="http", url="http://monitor:pa55-w0rd-x@127.0.0.1:%d/?api_key=k3y-zzz999"
             % closed_port()),
        dict(name="login", kind="http", method="POST", url=web.url("/login"),
             body={"user": "probe", "password": "b0dy-s3cret-1"})]
    run = run_module("health_probe", {"checks": checks, "fail_on": "never"})
    for secret in secrets:
        assert secret not in run.stdout + run.stderr, secret
    name = "http http://monitor:***@127.0.0.1:%d/ok?token=***&verbose=1" % port
    assert [c["name"] for c in run["checks"]] == [name, "down", "login"]
    assert run["by_name"][name]["status"] == "healthy" and run["by_name"][name]["target"] == name[5:]
    assert run["by_name"]["down"]["message"].startswith("cannot reach http://monitor:***@127.0.0.1:")
    assert run["by_name"]["login"]["status"] == "healthy"
    assert b"b0dy-s3cret-1" in web.posts[-1]["body"], "the body was not sent as given"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_over_tls_verifies_the_certificate_and_its_host_name(redis_factory, tls_files):  # noqa: F811
    binary = BINARIES["7.0"]()
    if not binary:
        unavailable("Debian's redis-server (built with TLS) is not installed")
    server = redis_factory(binary, tls=tls_files)  # its certificate names 127.0.0.1 only
    tls = dict(kind="redis", port=server.port, password=server.password, tls=True, ca_cert=tls_files["ca"])
    run = run_module("health_probe", {"fail_on": "never", "checks": [
        dict(tls, name="by-address", host="127.0.0.1"),
        dict(tls, name="by-other-name", host="localhost"),
        dict(tls, name="unverified", host="localhost", validate_certs=False)]})
    assert run["by_name"]["by-address"]["status"] == "healthy", run["by_name"]["by-address"]["message"]
    assert run["by_name"]["by-other-name"]["status"] == "critical"
    assert "mismatch" in run["by_name"]["by-other-name"]["message"].lower()
    assert run["by_name"]["unverified"]["status"] == "healthy"
