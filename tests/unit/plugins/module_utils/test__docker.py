"""Opening a Docker API client: TLS options, the SDK's absence, one /_ping to a tiny local engine, and an engine
that cannot be reached."""

import http.server
import socket
import threading

import pytest

from ansible_collections.keel.ops.plugins.module_utils import _docker
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, EngineError


class PingHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /_ping with the status and headers the server holds; anything else is a 404."""

    def do_GET(self):
        self.server.paths.append(self.path)
        status, headers = (self.server.status, self.server.headers) if self.path == "/_ping" else (404, {})
        self.send_response(status)
        for name, value in dict(headers, **{"Content-Length": "2"}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def engine():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PingHandler)
    server.paths, server.headers, server.status = [], {}, 200
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def host_of(server):
    return "tcp://127.0.0.1:%d" % server.server_address[1]


@pytest.fixture
def pem_files(tmp_path):
    paths = [tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem")]
    for path in paths:
        path.write_text("-----BEGIN CERTIFICATE-----\n")
    return [str(path) for path in paths]


def test_client_cert_and_key_go_together_and_no_option_means_no_tls(pem_files):
    ca, _cert, key = pem_files
    assert _docker.tls_config(validate_certs=False) is None
    with pytest.raises(ConfigError, match="client_cert and client_key go together"):
        _docker.tls_config(ca_cert=ca, client_key=key)


def test_tls_options_verify_against_the_ca_unless_told_not_to(pem_files):
    ca, cert, key = pem_files
    pinned = _docker.tls_config(ca, cert, key)
    assert pinned.cert == (cert, key) and pinned.ca_cert == ca and pinned.verify == ca
    unverified = _docker.tls_config(ca, cert, key, validate_certs=False)
    assert unverified.verify is False
    system_cas = _docker.tls_config(client_cert=cert, client_key=key)
    assert system_cas.verify is True and system_cas.ca_cert is None


def test_a_missing_ca_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^ca_cert: .*missing-ca\.pem is not a file on the host that runs"):
        _docker.tls_config(ca_cert=str(tmp_path / "missing-ca.pem"))


def test_without_the_sdk_the_message_says_what_needs_it_and_how_to_install_it(monkeypatch, pem_files):
    monkeypatch.setattr(_docker, "HAS_DOCKER", False)
    with pytest.raises(DependencyError, match=r"^Redis's container hook needs the Docker SDK for Python on the host "
                                              r"that runs the module \(pip install 'docker>=7'\)"):
        _docker.require_docker("Redis's container hook")
    with pytest.raises(DependencyError, match="^this task needs the Docker SDK"):
        _docker.open_client("unix:///var/run/docker.sock")
    with pytest.raises(DependencyError, match="^the rolling update needs the Docker SDK"):
        _docker.tls_config(ca_cert=pem_files[0])
    assert _docker.tls_config() is None  # no TLS asked for: nothing to need


def test_one_ping_negotiates_the_api_version_of_a_docker_engine(engine):
    engine.headers = {"Api-Version": "1.43", "Server": "Docker/24.0.7 (linux)"}
    client, podman = _docker.open_client(host_of(engine), timeout=10)
    try:
        assert podman is False and client.api._version == "1.43"
        assert engine.paths == ["/_ping"]  # never /version
    finally:
        client.close()


@pytest.mark.parametrize("headers", [{"Api-Version": "1.41", "Libpod-Api-Version": "4.9.3"},
                                     {"Api-Version": "1.41", "Server": "Libpod/4.9.3 (linux)"}])
def test_podman_is_told_apart_by_its_ping_headers(engine, headers):
    engine.headers = headers
    client, podman = _docker.open_client(host_of(engine), timeout=10)
    client.close()
    assert podman is True and client.api._version == "1.41"


def test_an_engine_that_cannot_be_reached_is_named_with_what_to_check():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        docker_host = "tcp://127.0.0.1:%d" % sock.getsockname()[1]
        with pytest.raises(EngineError) as caught:
            _docker.open_client(docker_host, timeout=10)
    message = str(caught.value)
    assert message.startswith("cannot reach the container engine at %s: " % docker_host)
    assert message.endswith("; check docker_host and that the Docker daemon or 'podman system service' runs there")
    assert "\n" not in message and "Traceback" not in message


def test_a_missing_socket_and_a_ping_that_fails_are_engine_errors(engine, tmp_path):
    with pytest.raises(EngineError, match="^cannot reach the container engine at unix://%s/docker.sock: " % tmp_path):
        _docker.open_client("unix://%s/docker.sock" % tmp_path, timeout=10)
    engine.status = 500
    with pytest.raises(EngineError, match="^cannot reach the container engine at %s: 500 Server Error"
                                          % host_of(engine)):
        _docker.open_client(host_of(engine), timeout=10)
