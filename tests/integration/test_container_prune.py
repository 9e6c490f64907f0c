"""keel.ops.container_prune on the session's Podman engine, scoped to the test's own label (the shared fleet is left
alone): a stopped container is pruned and a protected one kept, a running one is never a candidate, one stopped
too recently waits, and dangling images go unless protected."""

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
    label = "keel-prune-%s" % uuid.uuid4().hex[:8]
    made = {"containers": [], "images": []}

    def container(suffix, labels=None, running=False):
        config = {"Image": containers["images"]["v1"], "Env": ["APP_PORT=%d" % stack_tool.free_port()],
                  "Labels": dict({"keel.test": label}, **(labels or {})),
                  "HostConfig": {"NetworkMode": "host", "IpcMode": "private"}}
        name = "%s-%s" % (label, suffix)
        client.api.create_container_from_config(config, name)
        made["containers"].append(name)
        client.api.start(name)
        if not running:
            client.api.stop(name, timeout=2)
        return name

    def dangling(source, protect=False):
        changes = ["LABEL keel.test=%s" % label] + (["LABEL keel.ops.protect=true"] if protect else [])
        image = client.api.commit(source, changes=changes)["Id"]
        made["images"].append(image)
        return image.split(":", 1)[-1]

    try:
        yield client, containers["docker_host"], label, container, dangling
    finally:
        for name in made["containers"]:
            try:
                client.api.remove_container(name, force=True)
            except Exception:  # pylint: disable=broad-except  # pruned by the test, as it should be
                pass
        for image in made["images"]:
            try:
                client.api.remove_image(image, force=True)
            except Exception:  # pylint: disable=broad-except
                pass
        client.close()


def names(client, label):
    return sorted(c.name for c in client.containers.list(all=True, filters={"label": "keel.test=%s" % label}))


def test_a_stopped_container_is_pruned_and_a_protected_one_kept_four_ways(engine):
    client, docker_host, label, container, _dangling = engine
    stopped, kept, running = container("stopped"), container("kept", {"keel.ops.protect": "yes"}), \
        container("running", running=True)
    args = {"docker_host": docker_host, "labels": {"keel.test": label}, "older_than_hours": 0, "images": False}
    check = run_module("container_prune", args, check_mode=True)
    assert check["changed"] and [r["name"] for r in check["removed"]] == [stopped]
    assert names(client, label) == sorted([stopped, kept, running])
    real, check_again, again = run_four_ways("container_prune", args)[1:]
    assert real["changed"] and [r["name"] for r in real["removed"]] == [stopped] and not real["skipped"]
    assert [(k["name"], "protection label" in k["reason"]) for k in real["kept"]] == [(kept, True)]
    assert names(client, label) == sorted([kept, running])
    assert not check_again["changed"] and not again["changed"] and not again["removed"]
    assert client.containers.get(running).status == "running"


def test_a_container_stopped_moments_ago_waits_until_it_is_old_enough(engine):
    client, docker_host, label, container, _dangling = engine
    recent = container("recent")
    result = run_module("container_prune", {"docker_host": docker_host, "labels": {"keel.test": label}})
    assert not result["changed"] and not result["removed"]
    [kept] = result["kept"]
    assert kept["name"] == recent and "less than 24" in kept["reason"]
    assert names(client, label) == [recent]


def test_dangling_images_are_pruned_unless_protected_or_in_use(engine):
    client, docker_host, label, container, dangling = engine
    source = container("source")
    loose, guarded = dangling(source), dangling(source, protect=True)
    args = {"docker_host": docker_host, "labels": {"keel.test": label}, "containers": False}
    result = run_module("container_prune", args)
    assert result["changed"], result.get("msg")
    assert [r["id"] for r in result["removed"]] == [loose] and result["reclaimed"] >= 0
    assert [k["id"] for k in result["kept"]] == [guarded]
    scope = {"dangling": True, "label": "keel.test=%s" % label}
    left = [i.id.split(":", 1)[-1] for i in client.images.list(all=True, filters=scope)]
    assert left == [guarded]
