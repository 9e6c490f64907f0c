"""playbooks/incident_response.yml on one local host: the app container is down; first response backs up the
database while it answers, captures the state, restarts the container, finds the app healthy again, notifies, and
writes the timeline. When restarting cannot help, the play fails naming the check."""

import json
import uuid

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest
from ansible_run import local_inventory, run_module, run_playbook
from conftest import unavailable
from http_fixture import start_server
from pg_fixtures import create_database

PLAYBOOK = "playbooks/incident_response.yml"


@pytest.fixture
def app(containers):
    if not containers.get("available"):
        unavailable("containers: %s" % containers.get("reason"))
    client = stack_tool.import_docker().DockerClient(base_url=containers["docker_host"])
    name, port = "keel-incident-%s" % uuid.uuid4().hex[:8], stack_tool.free_port()
    client.api.create_container_from_config({
        "Image": containers["images"]["v1"], "Env": ["APP_PORT=%d" % port],
        "HostConfig": {"NetworkMode": "host", "IpcMode": "private"}}, name)
    try:
        yield client, containers["docker_host"], name, port
    finally:
        client.api.remove_container(name, force=True)
        client.close()


def _vars(tmp_path, docker_host, name, port, postgres, private_redis, database, **extra):
    values = dict(
        incident_response_hosts="all", incident_response_id="INC-1",
        incident_response_dir=str(tmp_path / "incidents"),
        incident_response_checks=[{"name": "app", "kind": "http", "url": "http://127.0.0.1:%d/health" % port}],
        incident_response_containers=[name], incident_response_docker_host=docker_host,
        incident_response_postgres_enabled=True, incident_response_postgres_login_host=postgres["host"],
        incident_response_postgres_login_port=postgres["port"], incident_response_postgres_login_user=postgres["user"],
        incident_response_postgres_login_password=postgres["password"],
        incident_response_postgres_bin_dir=postgres["bin_dir"], incident_response_postgres_databases=[database],
        incident_response_backup_repository=str(tmp_path / "repo"),
        incident_response_redis_enabled=True, incident_response_redis_login_host=private_redis["host"],
        incident_response_redis_login_port=private_redis["port"],
        incident_response_redis_login_password=private_redis["password"])
    values.update(extra)
    return values


def test_first_response_restarts_the_stopped_app_and_keeps_a_timeline(tmp_path, app, postgres, private_redis):
    client, docker_host, name, port = app
    database = "ir_%s" % uuid.uuid4().hex[:8]
    create_database(postgres, database, customers=10, orders=20)
    assert client.containers.get(name).status in ("created", "exited")
    web = start_server()
    try:
        run = run_playbook(PLAYBOOK, local_inventory(tmp_path, "app1"), _vars(
            tmp_path, docker_host, name, port, postgres, private_redis, database,
            incident_response_notify_webhook_url=web.url("/hooks/incident")))
    finally:
        web.shutdown()
    assert run.returncode == 0, run.stdout[-5000:]
    assert client.containers.get(name).status == "running"
    folder = tmp_path / "incidents" / "INC-1"
    timeline = json.loads((folder / "timeline.json").read_text())
    assert timeline["status"] == "stabilised" and timeline["failing"] == []
    assert [e["step"] for e in timeline["events"]] == ["assess", "emergency backup", "capture", "stabilise", "reassess"]
    assert timeline["events"][0]["result"] == "critical" and timeline["events"][3]["detail"] == "started %s" % name
    assert (folder / "timeline.md").read_text().startswith("# Incident INC-1 on app1: STABILISED")
    assert json.loads((folder / "containers.json").read_text())["unhealthy"] == [name]
    assert json.loads((folder / "redis-info.json").read_text())["version"] == private_redis["version"]
    assert "connections" in json.loads((folder / "postgres-activity.json").read_text())
    assert (folder.stat().st_mode & 0o777) == 0o700
    backups = run_module("pg_backup_info", {"repository": str(tmp_path / "repo"), "labels": {"incident": "INC-1"}})
    assert backups["count"] == 1 and backups["backups"][0]["source"]["database"] == database
    [posted] = [json.loads(post["body"]) for post in web.posts]
    assert "stabilised" in json.dumps(posted) and postgres["password"] not in json.dumps(posted)


def test_first_response_fails_naming_the_check_when_restarting_cannot_help(tmp_path, app, postgres, private_redis):
    _client, docker_host, name, port = app
    wrong_port = stack_tool.free_port()  # nothing will ever answer there
    run = run_playbook(PLAYBOOK, local_inventory(tmp_path, "app1"), _vars(
        tmp_path, docker_host, name, port, postgres, private_redis, "unused",
        incident_response_checks=[{"name": "app", "kind": "http", "url": "http://127.0.0.1:%d/health" % wrong_port}],
        incident_response_postgres_enabled=False, incident_response_redis_enabled=False))
    assert run.returncode != 0
    assert "app1: STILL UNHEALTHY after first response: app" in run.stdout, run.stdout[-3000:]
    timeline = json.loads((tmp_path / "incidents" / "INC-1" / "timeline.json").read_text())
    assert timeline["status"] == "unhealthy" and timeline["events"][1] == dict(
        timeline["events"][1], step="emergency backup", result="skipped")
