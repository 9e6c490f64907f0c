"""The embedded stack (tools/stack.py) really serves what its facts say."""

import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def admin_command(stats_socket, command):
    """One command over HAProxy's runtime API (unix socket); returns the whole answer."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(stats_socket)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def listening_addresses(port):
    """Local addresses with a LISTEN socket on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


LOOPBACK_HEX = "0100007F"  # 127.0.0.1 as /proc/net/tcp prints it


def docker_client(containers):
    return stack_tool.import_docker().DockerClient(base_url=containers["docker_host"], version="auto", timeout=60)


# --------------------------------------------------------------------------- #
# PostgreSQL
# --------------------------------------------------------------------------- #


def pg_connect(postgres, password=None, dbname=None):
    import psycopg2

    return psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"],
                            password=postgres["password"] if password is None else password,
                            dbname=dbname or postgres["database"], connect_timeout=5)


def test_postgres_answers_with_the_recorded_password(postgres):
    with pg_connect(postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT version(), current_user, current_database(), current_setting('listen_addresses')")
        version, user, database, listen = cur.fetchone()
    major = postgres["version"].split(".")[0]
    assert version.startswith(f"PostgreSQL {major}")
    assert (user, database, listen) == ("keel", "keel", "127.0.0.1")


def test_postgres_refuses_a_wrong_password(postgres):
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pg_connect(postgres, password="not-the-password")


def test_postgres_client_tools_in_bin_dir_work(postgres, tmp_path):
    bin_dir = Path(postgres["bin_dir"])
    for tool in ("pg_dump", "pg_restore", "psql", "pg_basebackup"):
        assert (bin_dir / tool).exists(), tool
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{postgres['host']}:{postgres['port']}:*:{postgres['user']}:{postgres['password']}\n")
    passfile.chmod(0o600)
    env = dict(os.environ, PGPASSFILE=str(passfile))
    out = subprocess.run(
        [str(bin_dir / "psql"), "-h", postgres["host"], "-p", str(postgres["port"]), "-U", postgres["user"],
         "-d", postgres["database"], "-w", "-At", "-c", "SHOW server_version"],
        env=env, capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip().startswith(postgres["version"])


# --------------------------------------------------------------------------- #
# Redis
# --------------------------------------------------------------------------- #


def test_redis_ping_needs_the_password(redis_server):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with redis.Redis(host=redis_server["host"], port=redis_server["port"],
                     password=redis_server["password"], socket_timeout=5) as client:
        assert client.ping() is True
        assert client.info("server")["redis_version"] == redis_server["version"]
    # retry disabled: redis-py's default retries an auth failure with backoff for seconds.
    no_retry = Retry(NoBackoff(), 0)
    with redis.Redis(host=redis_server["host"], port=redis_server["port"], socket_timeout=5,
                     retry=no_retry) as anonymous:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()


def test_redis_version_is_the_embedded_one_by_default(redis_server):
    if os.environ.get("KEEL_REDIS_SERVER"):
        pytest.skip("KEEL_REDIS_SERVER names another redis-server")
    assert redis_server["version"].startswith("6.2.")


def test_private_redis_stops_and_starts_on_the_same_port(private_redis):
    import redis

    port, password = private_redis["port"], private_redis["password"]
    private_redis.stop()
    assert not stack_tool.port_answers(port), "stopped redis still accepts connections"
    facts = private_redis.start()
    assert (facts["port"], facts["password"]) == (port, password)
    with redis.Redis(host=facts["host"], port=port, password=password, socket_timeout=5) as client:
        assert client.ping() is True


# --------------------------------------------------------------------------- #
# S3
# --------------------------------------------------------------------------- #


def test_s3_bucket_exists_and_round_trips(s3):
    client = stack_tool.S3.client(s3)
    client.head_bucket(Bucket=s3["bucket"])
    key = f"test-stack/{os.getpid()}-{time.time_ns()}"
    client.put_object(Bucket=s3["bucket"], Key=key, Body=b"\x00keel\xff" * 1000)
    try:
        body = client.get_object(Bucket=s3["bucket"], Key=key)["Body"].read()
        assert body == b"\x00keel\xff" * 1000
    finally:
        client.delete_object(Bucket=s3["bucket"], Key=key)


# --------------------------------------------------------------------------- #
# Containers and HAProxy
# --------------------------------------------------------------------------- #


def test_each_instance_answers_health_with_its_image_version(containers):
    client = docker_client(containers)
    assert containers["instances"], "the fleet is empty"
    for instance in containers["instances"]:
        container = client.containers.get(instance["name"])
        assert container.labels.get("keel.stack") == "1" and container.labels.get("app") == "keel-app"
        # A fresh stack runs v1; other tests may have rolled an instance to another image since.
        version = container.image.tags[0].rsplit(":", 1)[1] if container.image.tags else "v1"
        status, body = http_get(instance["health_url"])
        assert status == 200, instance
        assert json.loads(body) == {"status": "ok", "version": version}
        assert instance["health_url"] == f"http://127.0.0.1:{instance['port']}/health"


def test_fresh_fleet_runs_v1(containers):
    versions = {json.loads(http_get(i["health_url"])[1])["version"] for i in containers["instances"]}
    assert versions <= {"v1", "v2"}
    assert containers["images"] == {"v1": "localhost/keel-app:v1", "v2": "localhost/keel-app:v2",
                                    "broken": "localhost/keel-app:broken"}


@pytest.mark.parametrize("variant, status, body", [
    ("v2", 200, {"status": "ok", "version": "v2"}),
    ("broken", 500, {"status": "error", "version": "broken"}),
])
def test_other_images_serve_their_health_and_stop_promptly(containers, variant, status, body):
    client = docker_client(containers)
    port = stack_tool.free_port()
    name = f"keel-test-{variant}-{os.getpid()}"
    # Recreate the way a rolling update does: the running instance's whole environment
    # (image defaults included) onto the new image; the new image must still win.
    source = client.containers.get(containers["instances"][0]["name"])
    environment = [e for e in source.attrs["Config"]["Env"] if not e.startswith("APP_PORT=")]
    container = client.containers.run(
        containers["images"][variant], name=name, detach=True, network_mode="host", ipc_mode="private",
        environment=environment + [f"APP_PORT={port}"], labels={"keel.stack": "1", "app": "keel-test"})
    try:
        deadline = time.monotonic() + 20
        while not stack_tool.port_answers(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = http_get(f"http://127.0.0.1:{port}/health")
        assert (answer[0], json.loads(answer[1])) == (status, body)
        began = time.monotonic()
        container.stop(timeout=10)
        # The entrypoint forwards SIGTERM; without that, stop would wait the full timeout.
        assert time.monotonic() - began < 5
    finally:
        container.remove(force=True)


def test_haproxy_frontend_returns_200(stack, containers):
    status, body = http_get(stack["haproxy"]["frontend_url"])
    assert status == 200
    assert b"keel-app" in body


def test_haproxy_admin_socket_lists_the_servers(stack, containers):
    haproxy = stack["haproxy"]
    mode = stat.S_IMODE(os.stat(haproxy["stats_socket"]).st_mode)
    assert mode == 0o600
    answer = admin_command(haproxy["stats_socket"], f"show servers state {haproxy['backend']}")
    rows = [line.split() for line in answer.splitlines() if line and not line.startswith("#")]
    listed = {row[3]: int(row[18]) for row in rows[1:]}  # srv_name -> srv_port
    assert listed == {i["name"]: i["port"] for i in containers["instances"]}
    assert haproxy["servers"] == [i["name"] for i in containers["instances"]]


# --------------------------------------------------------------------------- #
# The stack as a whole
# --------------------------------------------------------------------------- #


def test_facts_file_is_private(stack_control):
    assert stat.S_IMODE(os.stat(stack_control.facts_path).st_mode) == 0o600


def test_every_port_listens_on_loopback_only(stack):
    ports = [stack[name]["port"] for name in ("postgres", "redis") if name in stack]
    if "s3" in stack:
        ports.append(int(stack["s3"]["endpoint_url"].rsplit(":", 1)[1]))
    if stack.get("containers", {}).get("available"):
        ports += [i["port"] for i in stack["containers"]["instances"]]
        ports.append(int(stack["haproxy"]["frontend_url"].rstrip("/").rsplit(":", 1)[1]))
    assert ports
    for port in ports:
        assert listening_addresses(port) == {LOOPBACK_HEX}, port


def test_no_secret_appears_on_any_command_line(stack):
    secrets = [stack[name][key] for name, key in (("postgres", "password"), ("redis", "password"),
                                                  ("s3", "secret_key")) if name in stack]
    assert secrets
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        for secret in secrets:
            assert secret not in cmdline, f"a secret is on the command line of pid {proc.name}"


def test_start_again_reuses_the_running_services(stack_control, stack):
    before = stack_control.facts()  # not `stack`: other tests may have restarted a service since
    began = time.monotonic()
    again = stack_control.start()
    assert time.monotonic() - began < 15
    for name in ("postgres", "redis", "s3", "haproxy"):
        if name in stack:
            assert again[name]["pid"] == before[name]["pid"], name
            assert again[name].get("password") == stack[name].get("password")


def test_cli_status_reports_the_facts(stack_control):
    cli = [sys.executable, str(REPO_ROOT / "tools" / "stack.py")]
    state = ["--state-dir", str(stack_control.state_dir)]
    out = subprocess.run(cli + ["status", "--json"] + state,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == stack_control.facts()
    human = subprocess.run(cli + ["status"] + state,
                           capture_output=True, text=True, timeout=60, check=False)
    assert human.returncode == 0, human.stdout + human.stderr
    assert "postgres" in human.stdout and "running" in human.stdout


def test_unknown_service_names_are_refused(tmp_path):
    with pytest.raises(stack_tool.StackError, match="unknown service 'mysql'"):
        stack_tool.Stack(tmp_path / "s").start(services=["mysql"])


def test_the_installer_brings_every_system_tool_the_stack_names():
    installer = (stack_tool.REPO_ROOT / "tools" / "install-system-packages").read_text()
    listed = re.search(r"^packages=\((.*)\)$", installer, re.M).group(1).split()
    assert sorted(set(stack_tool.SYSTEM_TOOLS.values()) - set(listed)) == []
