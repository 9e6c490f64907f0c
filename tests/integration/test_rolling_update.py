"""keel.ops.rolling_update on a real Podman fleet behind a real HAProxy, under continuous HTTP load.

The tests run on a private stack (its own Podman service, fleet of 4 and HAProxy), never the session's: they
move the fleet to other images and break the load balancer's socket on purpose. Each test starts from the
fleet on v1 with every server in rotation.
"""

import collections
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import haproxy_admin
import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest
from ansible_run import ROOT, run_four_ways, run_module, run_playbook, start_module
from conftest import unavailable
from http_fixture import start_server

FLEET = 4
OLD_SUFFIX = "-keel-old"
RECORD_LABEL = "keel.ops.rolling_update.record"
ALL = ["keel-app-%d" % index for index in range(1, FLEET + 1)]


# --------------------------------------------------------------------------------------------------------
# The private fleet
# --------------------------------------------------------------------------------------------------------

class Fleet:
    def __init__(self, stack, facts):
        self.stack = stack
        self.facts = facts
        self.containers = facts["containers"]
        self.haproxy = facts["haproxy"]
        self.client = stack_tool.import_docker().DockerClient(base_url=self.containers["docker_host"],
                                                              version="auto", timeout=60)

    @property
    def instances(self):
        return self.containers["instances"]

    def admin(self, command):
        return haproxy_admin.admin(self.haproxy["stats_socket"], command)

    def server_states(self):
        """server -> (operational state, admin state): ('2', '0') is up and in rotation."""
        return haproxy_admin.server_states(self.haproxy["stats_socket"])

    def all_in_rotation(self):
        return set(self.server_states().values()) == {("2", "0")}

    def reset(self):
        """Fleet on v1, nothing else in the engine, every server ready and up."""
        for container in self.client.containers.list(all=True):
            container.remove(force=True)
        for volume in self.records():
            volume.remove(force=True)
        self.facts = self.stack.start(services=["containers"], fleet=FLEET)
        self.containers = self.facts["containers"]
        for instance in self.instances:
            self.admin("set server app/%s state ready" % instance["name"])
        wait_for(self.all_in_rotation, "every HAProxy server up")

    def container(self, name):
        return self.client.containers.get(name)

    def leftovers(self):
        return [c.name for c in self.client.containers.list(all=True) if c.name.endswith(OLD_SUFFIX)]

    def records(self):
        """The rollout records (volumes) in the engine."""
        return self.client.volumes.list(filters={"label": RECORD_LABEL})

    def names(self):
        return sorted(c.name for c in self.client.containers.list(all=True))

    def module_args(self, image, **extra):
        args = {
            "docker_host": self.containers["docker_host"],
            "labels": {"app": "keel-app", "keel.stack": "1"},
            "image": self.containers["images"][image],
            "health_checks": [{"name": "health", "kind": "http",
                               "url": "http://127.0.0.1:{env[APP_PORT]}/health", "jmespath": "status",
                               "expect": "ok"}],
            "health_interval": 0.25,
            "load_balancer": {"type": "haproxy", "socket": self.haproxy["stats_socket"], "backend": "app"},
        }
        args.update(extra)
        return args


def wait_for(condition, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def private_fleet():
    state_dir = tempfile.mkdtemp(prefix="kru-")
    os.chmod(state_dir, 0o755)
    stack = stack_tool.Stack(state_dir)
    try:
        try:
            facts = stack.start(services=["containers"], fleet=FLEET)
        except stack_tool.StackError as err:
            unavailable("containers: %s" % err)
        if not facts["containers"].get("available"):
            unavailable("containers: %s" % facts["containers"].get("reason"))
        yield Fleet(stack, facts)
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def fleet(private_fleet):
    private_fleet.reset()
    return private_fleet


# --------------------------------------------------------------------------------------------------------
# Load through HAProxy
# --------------------------------------------------------------------------------------------------------

class Load:
    """A bounded loop of requests to the HAProxy frontend from a thread, each on a new connection."""

    def __init__(self, url, max_requests=50000):
        self.url = url
        self.max_requests = max_requests
        self.versions = collections.Counter()
        self.failures = []
        self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set() and self.total < self.max_requests:
            self.total += 1
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    body = response.read().decode()
                found = re.search(r"version (\w+)", body)
                self.versions[found.group(1) if found else "?"] += 1
            except (urllib.error.URLError, OSError) as error:
                self.failures.append(repr(error))

    def __enter__(self):
        self._thread.start()
        time.sleep(0.2)  # requests flowing before the rollout starts
        return self

    def __exit__(self, *exc):
        time.sleep(0.2)
        self._stop.set()
        self._thread.join(10)


def health_version(instance):
    with urllib.request.urlopen(instance["health_url"], timeout=5) as response:
        return json.loads(response.read())["version"]


def configuration(container, image_labels):
    """What the rollout must keep: everything but the image, the labels that came from the image, and the
    hostname Podman generates from a new container's id (and puts in HOSTNAME)."""
    attrs = container.attrs
    config, host = attrs["Config"], attrs["HostConfig"]
    return {
        "env": sorted(entry for entry in config["Env"] if entry != "HOSTNAME=" + attrs["Id"][:12]),
        "labels": dict((k, v) for k, v in config["Labels"].items() if k not in image_labels),
        "cmd": config["Cmd"], "entrypoint": config["Entrypoint"], "user": config["User"],
        "workdir": config["WorkingDir"], "healthcheck": config.get("Healthcheck"),
        "stop_signal": config["StopSignal"],
        "binds": sorted(host["Binds"] or []),
        "mounts": sorted((m["Type"], m.get("Name"), m.get("Source") if m["Type"] == "bind" else None,
                          m["Destination"], m["RW"]) for m in attrs["Mounts"]),
        "ports": host["PortBindings"], "published": attrs["NetworkSettings"]["Ports"],
        "network_mode": host["NetworkMode"], "restart": host["RestartPolicy"], "tmpfs": host.get("Tmpfs"),
        "cap_add": host["CapAdd"], "extra_hosts": host["ExtraHosts"], "ulimits": host["Ulimits"],
    }


# --------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------

def test_rollout_under_load_drops_no_request_four_ways(fleet):
    image_labels = fleet.client.images.get(fleet.containers["images"]["v1"]).labels
    before = dict((i["name"], configuration(fleet.container(i["name"]), image_labels)) for i in fleet.instances)
    args = fleet.module_args("v2")

    plan = run_module("rolling_update", args, check_mode=True)
    assert plan.returncode == 0, plan.get("msg")
    assert plan["changed"] is True
    assert plan["plan"]["batches"] == [["keel-app-1"], ["keel-app-2"], ["keel-app-3"], ["keel-app-4"]]
    assert set(health_version(i) for i in fleet.instances) == {"v1"}, "check mode changed nothing"

    with Load(fleet.haproxy["frontend_url"]) as load:
        run = run_module("rolling_update", args)
    assert run.returncode == 0, run.get("msg")
    assert load.failures == [], "%d of %d requests failed: %s" % (len(load.failures), load.total, load.failures[:3])
    assert load.total >= 50 and load.versions["v1"] and load.versions["v2"], (load.total, load.versions)
    assert run["changed"] is True and run["updated"] == ["keel-app-1", "keel-app-2", "keel-app-3", "keel-app-4"]
    for item in run["instances"]:
        assert item["old_image"].endswith(":v1") and item["new_image"].endswith(":v2")
        assert set(item["timings"]) >= {"drain", "stop", "start", "healthy", "total"}
    assert run["duration"] > 0
    assert [health_version(i) for i in fleet.instances] == ["v2"] * FLEET
    assert fleet.all_in_rotation() and fleet.leftovers() == []

    image_labels = fleet.client.images.get(fleet.containers["images"]["v2"]).labels
    after = dict((i["name"], configuration(fleet.container(i["name"]), image_labels)) for i in fleet.instances)
    assert after == before

    _check, _run, check_again, again = run_four_ways("rolling_update", args)
    for rerun in (check_again, again):
        assert rerun.returncode == 0, rerun.get("msg")
        assert rerun["changed"] is False and rerun["updated"] == []
        assert rerun["plan"]["skipped"] == ["keel-app-1", "keel-app-2", "keel-app-3", "keel-app-4"]


def test_broken_image_rolls_the_first_batch_back_without_dropping_requests(fleet):
    ids = dict((i["name"], fleet.container(i["name"]).id) for i in fleet.instances)
    args = fleet.module_args("broken", health_timeout=3)
    with Load(fleet.haproxy["frontend_url"]) as load:
        run = run_module("rolling_update", args)
    assert run.returncode == 1 and run["failed"] is True
    assert load.failures == [], "%d of %d requests failed: %s" % (len(load.failures), load.total, load.failures[:3])
    message = run["msg"]
    assert message.startswith("rolling update to localhost/keel-app:broken stopped after batch 1 of 4")
    assert "keel-app-1: not healthy after" in message
    assert "health (http) critical: HTTP 500, expected 200" in message
    assert "it is back on its old container (localhost/keel-app:v1)" in message
    assert run["rolled_back"] == ["keel-app-1"] and run["not_started"] == ["keel-app-2", "keel-app-3", "keel-app-4"]
    assert dict((i["name"], fleet.container(i["name"]).id) for i in fleet.instances) == ids, "the old containers"
    assert [health_version(i) for i in fleet.instances] == ["v1"] * FLEET
    assert fleet.all_in_rotation() and fleet.leftovers() == []
    assert fleet.client.containers.list(all=True, filters={"status": "exited"}) == []


def test_configuration_is_identical_except_the_image(fleet):
    """A container with much more configuration than the fleet's: published ports (slirp4netns, so no
    iptables rules), a bind mount, a named and an anonymous volume, tmpfs, a healthcheck of its own..."""
    data = tempfile.mkdtemp(prefix="kru-data-")
    port = stack_tool.free_port()
    try:
        fleet.client.api.create_container_from_config({
            "Image": fleet.containers["images"]["v1"],
            "Env": ["APP_PORT=8080", "APP_HOST=0.0.0.0", "GREETING=hello world"],
            "Labels": {"app": "keel-cfg", "team": "payments"},
            "User": "nobody", "WorkingDir": "/tmp", "StopSignal": "SIGINT",
            "Entrypoint": ["/bin/sh", "-c", 'exec "$@"', "entry"], "Cmd": ["/bin/app"],
            "Volumes": {"/cache": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"],
                            "Interval": 30 * 10 ** 9, "Timeout": 2 * 10 ** 9, "Retries": 2},
            "HostConfig": {
                "NetworkMode": "slirp4netns", "IpcMode": "private",
                "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
                "Binds": ["%s:/data:ro" % data, "keel-cfg-state:/state"],
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Tmpfs": {"/run": "size=1m"}, "CapAdd": ["NET_ADMIN"], "ExtraHosts": ["db:10.0.0.1"],
            },
        }, "keel-cfg-1")
        container = fleet.container("keel-cfg-1")
        container.start()
        assert container.exec_run(["/bin/sh", "-c", "echo kept > /cache/marker"], user="root").exit_code == 0
        image_labels = fleet.client.images.get(fleet.containers["images"]["v1"]).labels
        before = configuration(fleet.container("keel-cfg-1"), image_labels)

        args = {"docker_host": fleet.containers["docker_host"], "names": ["keel-cfg-1"],
                "image": fleet.containers["images"]["v2"], "health_interval": 0.25,
                "health_checks": [{"kind": "http", "url": "http://127.0.0.1:{ports[8080/tcp]}/health",
                                   "jmespath": "version", "expect": "v2"}]}
        run = run_module("rolling_update", args)
        assert run.returncode == 0, run.get("msg")
        assert run["updated"] == ["keel-cfg-1"]

        updated = fleet.container("keel-cfg-1")
        assert updated.attrs["Config"]["Image"] == fleet.containers["images"]["v2"]
        assert updated.attrs["State"]["Health"]["Status"] == "healthy", "podman was asked to run the healthcheck"
        image_labels = fleet.client.images.get(fleet.containers["images"]["v2"]).labels
        assert configuration(updated, image_labels) == before
        assert updated.exec_run(["/bin/busybox", "cat", "/cache/marker"]).output == b"kept\n", "the anonymous volume carried over"
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=5) as response:
            assert json.loads(response.read())["version"] == "v2"
    finally:
        shutil.rmtree(data, ignore_errors=True)


class Forward(socketserver.StreamRequestHandler):
    def handle(self):
        proxy = self.server.proxy
        command = self.rfile.readline()
        if proxy.times and proxy.pattern.search(command.decode()):
            proxy.times -= 1
            proxy.broken.append(command.decode().strip())
            return  # closed without an answer, as a dying load balancer would
        with socket.socket(socket.AF_UNIX) as upstream:
            upstream.connect(proxy.target)
            upstream.sendall(command)
            for chunk in iter(lambda: upstream.recv(65536), b""):
                self.wfile.write(chunk)


class BreakingSocket:
    """A unix socket in front of HAProxy's runtime API that drops the connection for the first `times`
    commands matching `pattern`, and forwards everything else."""

    def __init__(self, target, path, pattern, times=1):
        self.target, self.path, self.pattern, self.times = target, path, re.compile(pattern), times
        self.broken = []
        self.server = socketserver.UnixStreamServer(path, Forward)
        self.server.proxy = self
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)


@pytest.mark.parametrize("pattern, rolled_back", [
    (r"set server app/keel-app-2 state ready", True),   # the new container is healthy, enabling it fails
    (r"set server app/keel-app-2 state drain", False),  # taking it out fails: its container is never touched
])
def test_load_balancer_socket_breaking_mid_rollout_leaves_every_instance_serving(fleet, pattern, rolled_back):
    old_id = fleet.container("keel-app-2").id
    path = os.path.join(os.path.dirname(fleet.haproxy["stats_socket"]), "breaking.sock")
    proxy = BreakingSocket(fleet.haproxy["stats_socket"], path, pattern)
    try:
        args = fleet.module_args("v2", load_balancer={"type": "haproxy", "socket": path, "backend": "app"})
        with Load(fleet.haproxy["frontend_url"]) as load:
            run = run_module("rolling_update", args)
    finally:
        proxy.close()
    assert proxy.broken, "the socket broke"
    assert run.returncode == 1
    assert load.failures == [], load.failures[:3]
    assert "keel-app-2: HAProxy runtime API at %s closed the connection without answering" % path in run["msg"]
    assert run["updated"] == ["keel-app-1"] and run["rolled_back"] == ["keel-app-2"]
    assert run["not_started"] == ["keel-app-3", "keel-app-4"]
    assert fleet.container("keel-app-2").id == old_id
    assert [health_version(i) for i in fleet.instances] == ["v2", "v1", "v1", "v1"]
    assert fleet.all_in_rotation() and fleet.leftovers() == []
    assert ("rollback" in run["instances"][1]["timings"]) is True
    assert ("stop" in run["instances"][1]["timings"]) is rolled_back


def shop_orders(postgres):
    import psycopg2

    conn = psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"],
                            password=postgres["password"], dbname="shop", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM orders")
            return cur.fetchone()[0]
    finally:
        conn.close()


def drop_orders(postgres):
    """What a bad release's migration might do."""
    import psycopg2

    conn = psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"],
                            password=postgres["password"], dbname="shop", connect_timeout=5)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id % 2 = 0")
    conn.close()


@pytest.fixture
def hook():
    """A webhook receiver on loopback."""
    server = start_server()
    yield server
    server.shutdown()
    server.server_close()


def test_playbooks_roll_out_with_a_backup_then_back_with_a_restore(fleet, hook):
    """playbooks/rolling_update.yml with the demo inventory to v2, after a pre-update backup of the demo
    database; then playbooks/rollback.yml back to the recorded images, restoring that backup first."""
    try:
        facts = fleet.stack.start(services=["postgres", "s3"])
    except stack_tool.StackError as err:
        unavailable("postgres and s3: %s" % err)
    env = {"KEEL_STACK_DIR": str(fleet.stack.state_dir)}
    data = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo_data.py"), "--rows", "3000"],
                          env=dict(os.environ, **env), capture_output=True, text=True, check=False)
    assert data.returncode == 0, data.stderr
    inventory = os.path.join(ROOT, "inventories", "demo")
    notify = {"rolling_update_webhook_url": hook.url("/deploys"),
              "rolling_update_webhook_headers": {"Authorization": "Bearer hook-s3cret"}}
    update = run_playbook(os.path.join(ROOT, "playbooks", "rolling_update.yml"), inventory,
                          dict(notify, rolling_update_image=fleet.containers["images"]["v2"], rolling_update_backup=True),
                          env=env)
    assert update.returncode == 0, update.stdout[-4000:] + update.stderr[-2000:]
    assert "hook-s3cret" not in update.stdout + update.stderr
    [posted] = [json.loads(post["body"]) for post in hook.posts]
    assert posted["status"] == "updated" and posted["host"] == "demo-app"
    assert posted["updated"] == ["keel-app-%d" % index for index in range(1, FLEET + 1)]
    assert [health_version(i) for i in fleet.instances] == ["v2"] * FLEET
    with open(os.path.join(str(fleet.stack.state_dir), "rolling_update", "demo-app.json")) as handle:
        record = json.load(handle)
    assert record["image"] == fleet.containers["images"]["v2"]
    assert record["previous_image"] == fleet.containers["images"]["v1"]
    assert [(b["host"], b["database"]) for b in record["backups"]] == [("demo-db", "shop")]

    drop_orders(facts["postgres"])
    assert shop_orders(facts["postgres"]) == 1500
    back = run_playbook(os.path.join(ROOT, "playbooks", "rollback.yml"), inventory,
                        dict(notify, rolling_update_restore_database=True), env=env)
    assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-2000:]
    assert [json.loads(post["body"])["image"] for post in hook.posts][1:] == [fleet.containers["images"]["v1"]]
    assert shop_orders(facts["postgres"]) == 3000, "the pre-update backup was restored"
    assert [health_version(i) for i in fleet.instances] == ["v1"] * FLEET
    assert fleet.all_in_rotation() and fleet.leftovers() == []


def test_a_terminated_rollout_restores_the_instance_in_progress(fleet):
    """SIGTERM to the module (a cancelled or timed-out task) while the first container is being replaced."""
    import psutil

    def terminate_mid_rollout():
        wait_for(lambda: fleet.leftovers() == ["keel-app-1" + OLD_SUFFIX], "the first container renamed aside")
        for child in psutil.Process().children(recursive=True):
            if any(part.endswith("rolling_update.py") for part in child.cmdline()):
                child.terminate()

    killer = threading.Thread(target=terminate_mid_rollout, daemon=True)
    killer.start()
    with Load(fleet.haproxy["frontend_url"]) as load:
        run = run_module("rolling_update", fleet.module_args("broken", health_timeout=60))
    killer.join(5)
    assert run.returncode == 1
    assert load.failures == [], load.failures[:3]
    # The signal lands between two steps or during the health wait; either way the restore runs to its end.
    assert "stopped after batch 1 of 4 (interrupted by SIGTERM): keel-app-1: interrupted by SIGTERM" in run["msg"]
    assert "it is back on its old container (localhost/keel-app:v1)" in run["msg"]
    assert run["rolled_back"] == ["keel-app-1"] and run["not_started"] == ["keel-app-2", "keel-app-3", "keel-app-4"]
    assert [health_version(i) for i in fleet.instances] == ["v1"] * FLEET
    assert fleet.all_in_rotation() and fleet.leftovers() == []


@pytest.mark.parametrize("selector", [{"names": []}, {"labels": {}}], ids=["names", "labels"])
def test_an_empty_selector_is_refused_before_anything_is_touched(fleet, selector):
    """names: [] or labels: {} would otherwise select every container on the engine."""
    args = fleet.module_args("v2")
    args.pop("labels")
    args.update(selector)
    run = run_module("rolling_update", args)
    assert run.returncode == 1 and "an empty selector would select every container on the engine" in run["msg"]
    assert [health_version(i) for i in fleet.instances] == ["v1"] * FLEET


def warnings_of(run):
    """The module's warnings as text (ansible-core 2.19 returns each as a WarningSummary dict)."""
    return [item["event"]["msg"] if isinstance(item, dict) else item for item in run.get("warnings") or []]


def by_names(args):
    args = dict(args)
    args.pop("labels")
    args["names"] = list(ALL)
    return args


def kill_in_the_health_wait(fleet, tmp_path, selector):
    """Start a rollout to an image that never gets healthy and kill -9 it once keel-app-1's replacement runs:
    the module then sits in its health wait (health_timeout is far away), keel-app-1-keel-old is stopped and
    keel-app-1's HAProxy server is in maintenance."""
    args = selector(fleet.module_args("broken", health_timeout=600))
    module = start_module("rolling_update", args, tmp_path)

    def replacement_runs():
        assert module.poll() is None, module.communicate()
        names = fleet.names()
        return "keel-app-1" + OLD_SUFFIX in names and "keel-app-1" in names and \
            fleet.container("keel-app-1").status == "running"

    try:
        wait_for(replacement_runs, "keel-app-1's replacement started", timeout=120)
    finally:
        os.killpg(module.pid, signal.SIGKILL)
        module.communicate(timeout=30)
    assert fleet.container("keel-app-1" + OLD_SUFFIX).status == "exited"
    assert fleet.server_states()["keel-app-1"][1] == "1", "in maintenance"


@pytest.mark.parametrize("selector, left", [
    (lambda args: args, "in the health wait"),
    (lambda args: args, "before the replacement was created"),
    (by_names, "before the replacement was created"),
    (lambda args: args, "and its record lost"),
], ids=["labels-health-wait", "labels-no-replacement", "names-no-replacement", "labels-no-record"])
def test_a_rollout_killed_mid_way_is_repaired_by_the_same_rollout_run_again(fleet, tmp_path, selector, left):
    kill_in_the_health_wait(fleet, tmp_path, selector)
    if left != "in the health wait":
        # What a kill between the rename and the create leaves: keel-app-1-keel-old exited, no keel-app-1.
        fleet.container("keel-app-1").remove(force=True)
    if left == "and its record lost":
        fleet.client.volumes.get("keel-app-1-keel-rollout").remove(force=True)

    with Load(fleet.haproxy["frontend_url"]) as load:
        run = run_module("rolling_update", selector(fleet.module_args("v2")))
    assert run.returncode == 0, run.get("msg")
    assert load.failures == [], load.failures[:3]
    assert run["repaired"] == ["keel-app-1"] and run["updated"] == ALL and run["not_serving"] == []
    assert any(warning.startswith("keel-app-1 was left mid-replacement by an interrupted rollout; it is back on its "
                                  "old container (localhost/keel-app:v1)") for warning in warnings_of(run))
    assert [health_version(i) for i in fleet.instances] == ["v2"] * FLEET
    assert fleet.all_in_rotation() and fleet.leftovers() == [] and fleet.records() == []


def test_servers_taken_out_before_the_rollout_are_updated_and_stay_out(fleet):
    fleet.admin("set server app/keel-app-3 state maint")
    fleet.admin("set server app/keel-app-4 state drain")
    run = run_module("rolling_update", fleet.module_args("v2"))
    assert run.returncode == 0, run.get("msg")
    assert run["updated"] == ALL
    states = fleet.server_states()
    assert [states[name][1] for name in ALL] == ["0", "0", "1", "8"], "ready, ready, maint, drain as before"
    assert [health_version(i) for i in fleet.instances] == ["v2"] * FLEET
    assert ("keel-app-3: its load balancer server keel-app-3 is in maint, set before this rollout and not by an "
            "interrupted one; it is updated and left in that state") in warnings_of(run)


def test_an_instance_left_out_of_rotation_is_reported_and_the_next_run_repairs_it(fleet):
    """HAProxy refuses to put keel-app-1 back, whatever the retries: the task fails naming it in
    failed_instances (which Ansible's own 'failed' would overwrite), and the next run puts it back."""
    path = os.path.join(os.path.dirname(fleet.haproxy["stats_socket"]), "breaking.sock")
    proxy = BreakingSocket(fleet.haproxy["stats_socket"], path, r"set server app/keel-app-1 state ready", times=99)
    try:
        run = run_module("rolling_update", fleet.module_args(
            "v2", load_balancer={"type": "haproxy", "socket": path, "backend": "app"}))
    finally:
        proxy.close()
    assert run.returncode == 1 and run["failed"] is True
    assert run["failed_instances"] == ["keel-app-1"] and run["not_serving"] == ["keel-app-1"]
    assert "it is still out of the load balancer, putting it back failed 4 times" in run["msg"]
    assert "; the next run repairs it." in run["msg"]
    assert run["msg"].endswith("1 of 4 selected instances do not serve: keel-app-1: its load balancer server "
                               "keel-app-1 is in maint, it was in ready before the rollout")
    assert fleet.server_states()["keel-app-1"][1] == "1"

    again = run_module("rolling_update", fleet.module_args("v2"))
    assert again.returncode == 0, again.get("msg")
    assert again["repaired"] == ["keel-app-1"] and again["updated"] == ALL
    assert fleet.all_in_rotation() and fleet.records() == []


def test_credentials_in_the_hook_urls_appear_nowhere_in_the_output(fleet):
    hook = "http://admin:s3cret-pw@127.0.0.1:9/%s/{server}?token=t0ken-value"
    args = fleet.module_args("v2", load_balancer={"type": "http", "disable_url": hook % "disable",
                                                  "enable_url": hook % "enable", "timeout": 2})
    run = run_module("rolling_update", args, diff=True)
    assert run.returncode == 1
    assert "keel-app-1: POST http://admin:***@127.0.0.1:9/disable/keel-app-1?token=*** failed" in run["msg"]
    assert "put it back by hand: POST http://admin:***@127.0.0.1:9/enable/keel-app-1?token=***" in run["msg"]
    output = run.stdout + run.stderr
    assert "s3cret-pw" not in output and "t0ken-value" not in output


def test_credentials_in_health_check_urls_appear_nowhere_in_the_output(fleet):
    args = fleet.module_args("broken", health_timeout=3, health_checks=[
        {"kind": "http", "url": "http://probe:hunter2-pw@127.0.0.1:{env[APP_PORT]}/health?token=t0ken-v4lue",
         "jmespath": "status", "expect": "ok"}])
    run = run_module("rolling_update", args)
    assert run.returncode == 1 and run["rolled_back"], run.get("msg")  # the broken image fails its health gate
    output = run.stdout + run.stderr
    assert "hunter2-pw" not in output and "t0ken-v4lue" not in output
