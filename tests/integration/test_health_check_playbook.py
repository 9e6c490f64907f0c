"""playbooks/health_check.yml with the demo inventory, against the real embedded stack."""

import copy
import json
import socket

import pytest
from ansible_run import run_playbook
from http_fixture import start_server


@pytest.fixture(scope="module")
def web():
    server = start_server()
    yield server
    server.shutdown()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(stack):
    return {"KEEL_STACK_DIR": stack["state_dir"]}


def test_demo_fleet_is_healthy_with_webhook_and_textfile(stack, postgres, redis_server, web, tmp_path):
    textfile = str(tmp_path / "{{ inventory_hostname }}.prom")
    proc = run_playbook("playbooks/health_check.yml", "inventories/demo", env=stack_env(stack), extra_vars={
        "health_check_webhook_url": web.url("/hook"),
        "health_check_webhook_headers": {"Authorization": "Bearer s3cr3t-token"},
        "health_check_prometheus_textfile": textfile})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "overall: HEALTHY" in proc.stdout
    for secret in (postgres["password"], redis_server["password"], "s3cr3t-token"):
        assert secret not in proc.stdout + proc.stderr
    table = proc.stdout[proc.stdout.index("HOST"):proc.stdout.index("overall: HEALTHY")]
    assert "demo-db" in table and "postgres" in table and "demo-cache" in table
    if stack.get("containers", {}).get("available"):
        assert "keel-app-1" in table and "haproxy-frontend" in table

    [post] = web.posts
    assert post["headers"]["Authorization"] == "Bearer s3cr3t-token"
    report = json.loads(post["body"])
    assert report["status"] == "healthy"
    assert report["text"].startswith("keel.ops health check: overall: HEALTHY")
    assert report["hosts"]["demo-db"]["checks"][0]["name"] == "postgres"

    prom = (tmp_path / "demo-cache.prom").read_text()
    assert 'keel_health_status{check="redis",host="demo-cache",kind="redis"} 0' in prom
    assert 'keel_health_overall_status{host="demo-cache"} 0' in prom


def test_a_down_service_fails_its_host_and_the_summary_names_it(stack, postgres, redis_server):
    broken = copy.deepcopy(stack)
    broken["redis"]["port"] = closed_port()
    proc = run_playbook("playbooks/health_check.yml", "inventories/demo", env=stack_env(stack),
                        extra_vars={"keel_stack": broken, "health_check_hosts": "db:cache"})
    assert proc.returncode != 0
    assert "overall: CRITICAL" in proc.stdout
    assert "redis (redis) critical: cannot reach redis" in proc.stdout
    assert "demo-db" in proc.stdout and "failed=0" in proc.stdout.split("PLAY RECAP")[1].split("demo-db")[1]
    assert redis_server["password"] not in proc.stdout + proc.stderr
