"""playbooks/health_check.yml against the real embedded stack (demo inventory) and one-host fleets of its own."""

import copy
import json
import socket
import stat

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


# Every metric the demo's checks judge, for demo_health_thresholds (inventories/demo/group_vars/all.yml).
DEMO_METRICS = ("response_time", "ping_time", "query_time", "connections_used", "memory_used", "disk", "memory")

# What these tests control: limits no load can reach, and time enough, so that how busy the machine is (other
# suites, a slow disk) decides nothing. Whether each check works is what they assert, not how fast it answers.
UNHURRIED = {"demo_health_thresholds": dict((metric, {"warning": 1e9, "critical": 1e9}) for metric in DEMO_METRICS),
             "health_check_timeout": 60, "health_check_deadline": 300}


def test_every_demo_check_takes_its_limits_from_demo_health_thresholds(stack, postgres, redis_server, tmp_path):
    # A warning limit of 0 is reached by any measurement: every check that reads the variable warns.
    reached = dict((metric, {"warning": 0}) for metric in DEMO_METRICS)
    proc = run_playbook("playbooks/health_check.yml", "inventories/demo", env=stack_env(stack), extra_vars={
        "demo_health_thresholds": reached,
        "health_check_prometheus_textfile": str(tmp_path / "{{ inventory_hostname }}.prom")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    statuses = [line for path in tmp_path.glob("*.prom") for line in path.read_text().splitlines()
                if line.startswith("keel_health_status{")]
    assert len(statuses) >= 3  # postgres, disk, redis; the app and load balancer checks too with containers
    for line in statuses:
        assert line.endswith(" 1"), "not a warning, so not judged by demo_health_thresholds: " + line


def test_demo_fleet_is_healthy_with_webhook_and_textfile(stack, postgres, redis_server, web, tmp_path):
    textfile = str(tmp_path / "{{ inventory_hostname }}.prom")
    proc = run_playbook("playbooks/health_check.yml", "inventories/demo", env=stack_env(stack), extra_vars=dict(
        UNHURRIED, health_check_webhook_url=web.url("/hook"),
        health_check_webhook_headers={"Authorization": "Bearer s3cr3t-token"},
        health_check_prometheus_textfile=textfile))
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
                        extra_vars=dict(UNHURRIED, keel_stack=broken, health_check_hosts="db:cache"))
    assert proc.returncode != 0
    assert "overall: CRITICAL" in proc.stdout
    assert "redis (redis) critical: cannot reach redis" in proc.stdout
    assert "demo-db" in proc.stdout and "failed=0" in proc.stdout.split("PLAY RECAP")[1].split("demo-db")[1]
    assert redis_server["password"] not in proc.stdout + proc.stderr


SLACK_PATH = "/services/T0KEEL/B0KEEL/sl4ckS3cretT0ken"  # a Slack webhook's path is its secret


def fleet_of_one(tmp_path, checks):
    """An inventory of one host, this machine, with the given checks."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {"app": {"hosts": {"probe-1": {"health_check_checks": checks}}}}}}))
    return str(inventory)


def test_secrets_reach_neither_the_output_nor_the_webhook_nor_the_textfile(web, tmp_path):
    port = web.server_address[1]
    inventory = fleet_of_one(tmp_path, [
        {"kind": "http", "url": "http://monitor:pa55-w0rd-x@127.0.0.1:%d/ok?token=t0ken-abc123" % port}])
    textfile = tmp_path / "probe-1.prom"
    proc = run_playbook("playbooks/health_check.yml", inventory, env={"ANSIBLE_VERBOSITY": "1"}, extra_vars={
        "health_check_webhook_url": web.url(SLACK_PATH), "health_check_hosts": "app",
        "health_check_prometheus_textfile": str(tmp_path / "{{ inventory_hostname }}.prom")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    [post] = [post for post in web.posts if post["path"] == SLACK_PATH]
    prom = textfile.read_text()
    for secret in ("pa55-w0rd-x", "t0ken-abc123", "sl4ckS3cretT0ken"):
        assert secret not in proc.stdout + proc.stderr, secret
        assert secret not in post["body"].decode() and secret not in prom, secret
    assert 'check="http http://monitor:***@127.0.0.1:%d/ok?token=***"' % port in prom
    assert json.loads(post["body"])["status"] == "healthy"
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o640


def test_a_webhook_that_fails_is_named_by_its_origin_only(tmp_path):
    inventory = fleet_of_one(tmp_path, [{"kind": "tcp", "host": "127.0.0.1", "port": closed_port()}])
    proc = run_playbook("playbooks/health_check.yml", inventory, env={"ANSIBLE_VERBOSITY": "1"}, extra_vars={
        "health_check_webhook_url": "http://127.0.0.1:%d%s" % (closed_port(), SLACK_PATH),
        "health_check_hosts": "app", "health_check_fail_on": "never"})
    assert proc.returncode != 0
    assert "the webhook at http://127.0.0.1 did not take the results" in proc.stdout
    assert "sl4ckS3cretT0ken" not in proc.stdout + proc.stderr
