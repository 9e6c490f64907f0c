"""keel.ops.container_state on the session's Podman engine, against containers of the test's own (the shared fleet is
left alone): four ways per state, state=healthy restarting only what is down, and an unhealthy container failing
the task by name."""

import uuid

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest
from ansible_run import run_four_ways, run_module
from conftest import unavailable


@pytest.fixture
def engine(containers):
    if not containers.get("available"):
        unavailable("containers: %s" % containers.get("reason"))
    client = stack_tool.import_docker().DockerClient(base_url=containers["docker_host"])
    label = "keel-test-%s" % uuid.uuid4().hex[:8]
    made = []

    def create(suffix, healthcheck=None):
        config = {"Image": containers["images"]["v1"], "Env": ["APP_PORT=%d" % stack_tool.free_port()],
                  "Labels": {"keel.test": label}, "HostConfig": {"NetworkMode": "host", "IpcMode": "private"}}
        if healthcheck:
            config["Healthcheck"] = healthcheck
        name = "%s-%s" % (label, suffix)
        client.api.create_container_from_config(config, name)
        client.api.start(name)
        made.append(name)
        return name

    try:
        yield client, containers["docker_host"], label, create
    finally:
        for name in made:
            client.api.remove_container(name, force=True)
        client.close()


def status(client, name):
    return client.containers.get(name).status


def test_stopped_and_started_four_ways(engine):
    client, docker_host, label, create = engine
    names = [create("web"), create("worker")]
    args = {"docker_host": docker_host, "labels": {"keel.test": label}, "state": "stopped", "stop_timeout": 2}
    check, real, check_again, again = run_four_ways("container_state", args)
    assert check["changed"] is True and check["msg"] == "would stop %s, stop %s" % tuple(names)
    assert [c["after"]["running"] for c in check["containers"]] == [True, True]
    assert real["changed"] is True and [c["action"] for c in real["containers"]] == ["stop", "stop"]
    assert [c["after"]["running"] for c in real["containers"]] == [False, False]
    for rerun in (check_again, again):
        assert rerun["changed"] is False and rerun["msg"] == "2 containers already stopped"
    assert [status(client, name) for name in names] == ["exited", "exited"]

    args = {"docker_host": docker_host, "names": [names[1], names[0]], "state": "started"}
    started = run_module("container_state", args)
    assert started["changed"] is True and started["msg"] == "started %s, started %s" % (names[1], names[0])
    assert [status(client, name) for name in names] == ["running", "running"]


def test_healthy_starts_what_is_down_and_fails_on_what_stays_unhealthy(engine):
    client, docker_host, _label, create = engine
    up, down = create("up"), create("down")
    client.api.stop(down, timeout=1)
    args = {"docker_host": docker_host, "names": [up, down], "state": "healthy"}
    healed = run_module("container_state", args)
    assert healed["changed"] is True and [c["action"] for c in healed["containers"]] == [None, "start"]
    assert healed["containers"][1]["before"]["status"] == "exited" and status(client, down) == "running"
    assert run_module("container_state", args)["changed"] is False

    sick = create("sick", healthcheck={"Test": ["CMD", "false"], "Interval": 1000000000, "Retries": 1})
    failed = run_module("container_state", dict(args, names=[sick, up], wait_timeout=20))
    assert failed.returncode == 1 and failed["failed"] is True
    assert failed["msg"].startswith("container %s was " % sick), failed["msg"]
    assert "but did not become healthy: " in failed["msg"] and "unhealthy" in failed["msg"], failed["msg"]
    assert "after" not in failed["containers"][1], "the container after the failing one is left alone"


def test_a_missing_container_or_an_empty_selection_is_refused(engine):
    _client, docker_host, label, _create = engine
    missing = run_module("container_state", {"docker_host": docker_host, "names": [label + "-nope"], "state": "started"})
    assert missing.returncode == 1 and "no container named %s-nope" % label in missing["msg"]
    empty = run_module("container_state", {"docker_host": docker_host, "labels": {"keel.test": label}, "state": "started"})
    assert empty.returncode == 1 and "no container carries the labels" in empty["msg"]
    none = run_module("container_state", {"docker_host": docker_host, "names": [], "state": "started"})
    assert none.returncode == 1 and "at least one container name" in none["msg"]


def test_container_info_reads_state_and_output_and_names_what_is_down(engine):
    client, docker_host, label, create = engine
    up, down = create("up"), create("down")
    client.api.stop(down, timeout=1)
    found = run_module("container_info", {"docker_host": docker_host, "labels": {"keel.test": label}, "log_lines": 5})
    assert found.returncode == 0 and found["changed"] is False, found.get("msg")
    assert [c["name"] for c in found["containers"]] == sorted([up, down]) and found["unhealthy"] == [down]
    by_name = dict((c["name"], c) for c in found["containers"])
    assert by_name[up]["state"]["running"] is True and by_name[down]["state"]["status"] == "exited"
    assert by_name[up]["image"] and isinstance(by_name[up]["logs"], list) and len(by_name[up]["logs"]) <= 5
