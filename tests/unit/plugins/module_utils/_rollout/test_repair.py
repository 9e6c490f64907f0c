"""The rollout engine over in-memory fakes: the plan's arithmetic at its boundaries, and the promise that every
instance ends serving and in rotation whatever step fails."""

import itertools
import threading

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, EngineError
from ansible_collections.keel.ops.plugins.module_utils._rollout.health import HealthGate
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import (
    OLD_SUFFIX,
    ContainerEngine,
    ContainerState,
    HealthError,
    Instance,
    LoadBalancer,
    LoadBalancerError,
    LoadBalancerGroup,
    TargetImage,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import (
    HealthConfig,
    RolloutConfig,
    batch_size_for,
    check_selector,
    exceeds_tolerance,
    natural_key,
    parse_amount,
    plan_rollout,
    render,
    render_checks,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.repair import process_owner
from ansible_collections.keel.ops.plugins.module_utils._rollout.run import Rollout, plan_results

OLD, NEW, BROKEN = "app:v1", "app:v2", "app:broken"


# --------------------------------------------------------------------------------------------------------
# Fakes
# --------------------------------------------------------------------------------------------------------

class Clock:
    """Time that moves only when the code sleeps (or a step says it takes time)."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


class Killed(BaseException):
    """kill -9: the process is gone, so nothing runs after it - no except clause, no restore."""


class Process:
    """What the fakes of one module process share: once killed, every later call dies too."""

    def __init__(self):
        self.dead = False


class Breakable:
    """Records calls; `fail` maps 'method' or 'method:target' to how many such calls raise `error` before doing
    anything; `late` to how many do their work and then raise it (a timeout after the fact); `kill` names the
    call after whose work the process is killed."""

    error = Exception
    what = ""

    def __init__(self, process=None):
        self.fail = {}
        self.late = {}
        self.kill = None
        self.process = process or Process()
        self.calls = []
        self.lock = threading.Lock()

    def _call(self, method, target):
        if self.process.dead:
            raise Killed()
        with self.lock:
            self.calls.append((method, target))
            for key in ("%s:%s" % (method, target), method):
                if self.fail.get(key):
                    self.fail[key] -= 1
                    raise self.error(self.what % (method, target))

    def _after(self, method, target):
        """Called once a call did its work."""
        key = "%s:%s" % (method, target)
        if self.kill == key:
            self.process.dead = True
            raise Killed()
        if self.late.get(key):
            self.late[key] -= 1
            raise self.error(self.what % (method, target) + " (timed out after it took effect)")


class FakeEngine(Breakable, ContainerEngine):
    """Containers by id: name, image, running, healthcheck. Calls are told apart by the container's name at
    call time."""

    error = EngineError
    what = "engine refused %s of %s"

    def __init__(self, names, image=OLD, healthcheck=False, process=None):
        Breakable.__init__(self, process)
        self.ids = itertools.count(1)
        self.containers = {}
        self.kept = {}  # rollout records by instance name
        for name in names:
            self._add(name, image, running=True, healthcheck=healthcheck)

    def _add(self, name, image, running, healthcheck=False, auto_remove=False):
        container_id = "c%d" % next(self.ids)
        self.containers[container_id] = dict(name=name, image=image, running=running, healthcheck=healthcheck,
                                             auto_remove=auto_remove, env={"PORT": str(8000 + len(self.containers))})
        return container_id

    def by_name(self, name):
        return next((cid for cid, c in list(self.containers.items()) if c["name"] == name), None)

    def _maybe_fail(self, method, container_id):
        self._call(method, self.containers[container_id]["name"])

    def instance(self, container_id):
        c = self.containers[container_id]
        return Instance(c["name"], container_id, c["image"], "id-" + c["image"], c["running"], c["healthcheck"],
                        c["auto_remove"], {"env": dict(c["env"]), "labels": {}, "ports": {}})

    def select(self, names, labels):
        return [self.instance(cid) for cid, c in list(self.containers.items())
                if not c["name"].endswith(OLD_SUFFIX) and (not names or c["name"] in names)]

    def find(self, name):
        container_id = self.by_name(name)
        return self.instance(container_id) if container_id else None

    def leftovers(self, names, labels):
        return [self.instance(cid) for cid, c in list(self.containers.items()) if c["name"].endswith(OLD_SUFFIX)
                and (not names or c["name"][:-len(OLD_SUFFIX)] in names)]

    def records(self):
        return [dict(record) for record in self.kept.values()]

    def write_record(self, name, record):
        self._call("write_record", name)
        self.kept[name] = dict(record)
        self._after("write_record", name)

    def remove_record(self, name):
        self._call("remove_record", name)
        self.kept.pop(name, None)

    def stop(self, container_id, timeout):
        self._maybe_fail("stop", container_id)
        self.containers[container_id]["running"] = False
        self._after("stop", self.containers[container_id]["name"])

    def rename(self, container_id, name):
        self._maybe_fail("rename", container_id)
        if self.by_name(name) not in (None, container_id):
            raise EngineError("name %s is in use" % name)
        old_name = self.containers[container_id]["name"]
        self.containers[container_id]["name"] = name
        self._after("rename", old_name)

    def clone(self, instance, image_ref):
        self._maybe_fail("clone", instance.id)
        if self.by_name(instance.name) is not None:
            raise EngineError("name %s is in use" % instance.name)
        old = self.containers[instance.id]
        new_id = self._add(instance.name, image_ref, running=False, healthcheck=old["healthcheck"])
        self.containers[new_id]["env"] = dict(old["env"])
        self._after("clone", old["name"])  # a network connect that fails after the create, say
        return new_id

    def start(self, container_id):
        self._maybe_fail("start", container_id)
        self.containers[container_id]["running"] = True
        self._after("start", self.containers[container_id]["name"])

    def remove(self, container_id):
        if container_id not in self.containers:
            return  # already gone
        self._maybe_fail("remove", container_id)
        name = self.containers.pop(container_id)["name"]
        self._after("remove", name)

    def state(self, container_id):
        c = self.containers[container_id]
        health = None
        if c["healthcheck"]:
            health = "unhealthy" if c["image"] == BROKEN else "healthy"
        return ContainerState(c["running"], "running" if c["running"] else "exited", health, 0 if c["running"] else 1)

    def logs(self, container_id):
        return "listening on %s" % self.containers[container_id]["env"]["PORT"]

    def fields(self, container_id):
        return {"env": dict(self.containers[container_id]["env"]), "labels": {}, "ports": {}}

    # -- what the tests assert ----------------------------------------------------------------------------

    def serving(self):
        """name -> image of the containers that run under their own name; leftovers are a failure."""
        leftovers = [c["name"] for c in list(self.containers.values()) if c["name"].endswith(OLD_SUFFIX)]
        assert not leftovers, "left over: %s" % leftovers
        assert all(c["running"] for c in list(self.containers.values())), self.containers
        names = [c["name"] for c in list(self.containers.values())]
        assert len(names) == len(set(names)), "one container per name: %s" % names
        return dict((c["name"], c["image"]) for c in list(self.containers.values()))


class FakeLoadBalancer(Breakable, LoadBalancer):
    kind = "fake"
    error = LoadBalancerError
    what = "load balancer socket broke during %s of %s"

    def __init__(self, servers, process=None):
        Breakable.__init__(self, process)
        self.states = dict((server, "ready") for server in servers)

    def preflight(self, servers):
        unknown = [server for server in servers if server not in self.states]
        if unknown:
            raise LoadBalancerError("unknown servers %s" % unknown)

    def admin_states(self, servers):
        return dict((server, self.states.get(server)) for server in servers)

    def drain(self, server):
        if self.states[server] != "maint":
            self.states[server] = "drain"
        self._call("drain", server)
        self.states[server] = "maint"
        self._after("drain", server)
        return 0

    def enable(self, server, state=None):
        self._call("enable", server)
        self.states[server] = state or "ready"
        self._after("enable", server)

    def wait_serving(self, server, state=None):
        self._call("wait_serving", server)

    def hint(self, server, state=None):
        return "enable %s by hand" % server


def make_prober(engine):
    """A stand-in for _probe.runner.probe: a check's target names its container; a broken image fails."""
    def prober(checks, **_options):
        failing = []
        for check in checks:
            name = check.target.split("/")[-1]
            container_id = engine.by_name(name)
            if container_id is None or engine.containers[container_id]["image"] == BROKEN:
                failing.append("%s (http) critical: HTTP 500, expected 200" % check.name)
        if failing:
            return {"healthy": False, "summary": "critical: %d of %d checks not healthy: %s"
                                                 % (len(failing), len(checks), "; ".join(failing))}
        return {"healthy": True, "summary": "healthy"}
    return prober


CHECKS = [{"name": "health", "kind": "http", "url": "http://127.0.0.1:{env[PORT]}/{name}"}]


class World:
    """A fleet of `count` instances on OLD behind a fake load balancer, and a Rollout to `image`."""

    def __init__(self, count=4, image=NEW, checks=None, health_timeout=5.0, healthcheck=False, **options):
        names = ["app-%d" % index for index in range(1, count + 1)]
        self.engine = FakeEngine(names, healthcheck=healthcheck)
        self.lb = FakeLoadBalancer(names, self.engine.process)
        self.clock = Clock()
        self.batch = dict((key, options.pop(key)) for key in ("batch_size", "max_unavailable") if key in options)
        self.config = RolloutConfig(image, HealthConfig(checks=CHECKS if checks is None else checks,
                                                        timeout=health_timeout, interval=0.5), **options)
        self.target = TargetImage(image, "id-" + image)
        self.restart()

    def restart(self):
        """A new module process on the same engine and load balancer (after a kill, say)."""
        self.engine.process.dead = False
        self.warnings = []
        self.rollout = Rollout(self.engine, self.lb, self.config, clock=self.clock, sleep=self.clock.sleep,
                               prober=make_prober(self.engine), warn=self.warnings.append)
        self.rollout.owner = {"host": "test", "pid": 0, "started": None}  # not this test process, which lives on

    @property
    def plan(self):
        return plan_rollout(self.engine.select(self.names, None), self.target.id, **self.batch)

    names = None

    def prepare(self):
        return self.rollout.prepare(self.plan)

    def run(self, names=None):
        """What the module does: repair, plan, prepare, run."""
        self.names = names
        repaired = self.rollout.repair(names, None)
        plan = self.plan
        return self.rollout.run(plan, self.target, self.rollout.prepare(plan), repaired)


def run_all(count=4, image=NEW, **options):
    world = World(count, image, **options)
    result, failure = world.run()
    return world.engine, world.lb, result, failure, world.warnings


def by_name(result):
    return dict((item["name"], item) for item in result["instances"])


# --------------------------------------------------------------------------------------------------------
# Plan arithmetic
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [("2", (2, False)), (3, (3, False)), ("25%", (25, True)),
                                             (" 100% ", (100, True)), ("12.5%", (12.5, True))])
def test_parse_amount(value, expected):
    assert parse_amount(value, "batch_size") == expected


@pytest.mark.parametrize("value", ["0", "-1", "0%", "101%", "abc", "2.5", ""])
def test_parse_amount_refuses(value):
    with pytest.raises(ConfigError, match="batch_size must be"):
        parse_amount(value, "batch_size")


@pytest.mark.parametrize("pending, fleet, options, expected", [
    (4, 4, {}, 1),
    (4, 4, {"batch_size": 10}, 4),           # capped at what there is to update
    (4, 4, {"batch_size": "25%"}, 1),        # exactly one instance
    (4, 4, {"batch_size": "26%"}, 2),        # 1.04 rounds up
    (3, 3, {"batch_size": "50%"}, 2),        # 1.5 rounds up
    (4, 4, {"batch_size": "1%"}, 1),
    (4, 4, {"max_unavailable": "25%"}, 1),
    (4, 4, {"max_unavailable": "49%"}, 1),   # 1.96 rounds down
    (4, 4, {"max_unavailable": "50%"}, 2),
    (4, 4, {"max_unavailable": "10%"}, 1),   # 0.4 rounds down to 0, but a batch holds at least one
    (2, 8, {"max_unavailable": "50%"}, 2),   # the percentage counts the whole fleet, capped by what is pending
    (4, 4, {"max_unavailable": 3}, 3),
    (0, 4, {"batch_size": 2}, 0),
])
def test_batch_size_boundaries(pending, fleet, options, expected):
    assert batch_size_for(pending, fleet, **options) == expected


def test_batch_size_and_max_unavailable_exclude_each_other():
    with pytest.raises(ConfigError, match="mutually exclusive"):
        batch_size_for(4, 4, batch_size=1, max_unavailable=1)


def instance(name, image_id="old"):
    return Instance(name, "id-" + name, "app", image_id, True, False, False, {})


def test_plan_orders_naturally_skips_updated_and_batches_the_rest():
    instances = [instance("app-10"), instance("app-2", "new"), instance("app-1"), instance("app-3")]
    plan = plan_rollout(instances, "new", batch_size=2)
    assert [[i.name for i in batch] for batch in plan.batches] == [["app-1", "app-3"], ["app-10"]]
    assert [i.name for i in plan.skipped] == ["app-2"]
    assert (plan.batch_size, plan.fleet) == (2, 4)


def test_plan_with_everything_on_target_is_empty():
    plan = plan_rollout([instance("a", "new"), instance("b", "new")], "new")
    assert plan.batches == [] and plan.batch_size == 0 and len(plan.skipped) == 2


def test_plan_for_an_image_not_pulled_yet_updates_everything():
    plan = plan_rollout([instance("a", "new")], None)
    assert len(plan.batches) == 1 and plan.skipped == []


def test_natural_key():
    assert sorted(["web-10", "web-9", "api", "web-1"], key=natural_key) == ["api", "web-1", "web-9", "web-10"]


@pytest.mark.parametrize("failed, total, percentage, stops", [
    (0, 4, 0, False),
    (1, 4, 0, True),        # 0: the first failure stops
    (1, 4, 25, False),      # reaching the percentage is tolerated...
    (2, 4, 25, True),       # ...exceeding it stops
    (1, 4, 24.9, True),
    (1, 3, 33.3, True),     # 33.33...% > 33.3
    (1, 3, 33.34, False),
    (4, 4, 100, False),     # 100: never stops
])
def test_tolerance_boundaries(failed, total, percentage, stops):
    assert exceeds_tolerance(failed, total, percentage) is stops


# --------------------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------------------

FIELDS = {"name": "app-1", "server": "web/app-1", "env": {"PORT": "8001"}, "labels": {"tier": "web"},
          "ports": {"8080/tcp": "32768", 8080: "32768"}}


def test_render_fills_env_labels_and_ports():
    assert render("http://h:{env[PORT]}/{labels[tier]}/{name}", FIELDS, "x") == "http://h:8001/web/app-1"
    assert render("{ports[8080/tcp]}-{ports[8080]}", FIELDS, "x") == "32768-32768"
    assert render("literal {{braces}}", FIELDS, "x") == "literal {braces}"


def test_render_names_what_is_missing():
    with pytest.raises(ConfigError, match=r"health_checks\[0\]: 'http://h:\{env\[APP_PORT\]\}/' refers to "
                                          r"'APP_PORT', which container app-1 does not have; templates may use"):
        render("http://h:{env[APP_PORT]}/", FIELDS, "health_checks[0]")
    with pytest.raises(ConfigError, match="is not a valid template"):
        render("{name", FIELDS, "load_balancer.server")


def test_render_checks_makes_tcp_ports_numbers_and_validates():
    checks = render_checks([{"kind": "tcp", "host": "127.0.0.1", "port": "{env[PORT]}", "url": None}], FIELDS, 5)
    assert checks[0].options["port"] == 8001 and checks[0].target == "127.0.0.1:8001"
    with pytest.raises(ConfigError, match=r"health_checks\[0\]: port must be a number, got 'web'"):
        render_checks([{"kind": "tcp", "host": "h", "port": "{labels[tier]}"}], FIELDS, 5)
    with pytest.raises(ConfigError, match="tcp checks need host"):
        render_checks([{"kind": "tcp", "port": "1"}], FIELDS, 5)


# --------------------------------------------------------------------------------------------------------
# Health gate
# --------------------------------------------------------------------------------------------------------

def gate_for(engine, **options):
    clock = Clock()
    config = HealthConfig(**dict(dict(timeout=5.0, interval=1.0), **options))
    return HealthGate(engine, config, clock, clock.sleep, make_prober(engine)), clock


def test_gate_fails_fast_on_an_unhealthy_container_healthcheck():
    engine = FakeEngine(["app-1"], image=BROKEN, healthcheck=True)
    gate, clock = gate_for(engine)
    with pytest.raises(HealthError, match="container healthcheck reports unhealthy"):
        gate.wait("c1", [], True)
    assert clock.sleeps == []


def test_gate_ignores_the_container_healthcheck_when_told_to():
    engine = FakeEngine(["app-1"], image=BROKEN, healthcheck=True)
    gate, _clock = gate_for(engine, container_health=False)
    assert gate.wait("c1", [], False) == 1


def test_gate_reports_an_exited_container_with_its_output():
    engine = FakeEngine(["app-1"])
    engine.containers["c1"]["running"] = False
    gate, _clock = gate_for(engine)
    with pytest.raises(HealthError, match="the container is exited \\(exit code 1\\); its last output:\nlistening on"):
        gate.wait("c1", [], False)


def test_gate_retries_until_the_deadline_and_names_the_failing_check():
    engine = FakeEngine(["app-1"], image=BROKEN)
    gate, clock = gate_for(engine)
    checks = render_checks(CHECKS, dict(FIELDS, env={"PORT": "1"}), 5)
    with pytest.raises(HealthError, match=r"not healthy after 5 attempts in 4.0s: critical: 1 of 1 checks not "
                                          r"healthy: health \(http\) critical: HTTP 500"):
        gate.wait("c1", checks, False)
    assert clock.sleeps == [1.0] * 4


def test_gate_stops_after_its_retries():
    engine = FakeEngine(["app-1"], image=BROKEN)
    gate, clock = gate_for(engine, retries=1)
    with pytest.raises(HealthError, match="after 2 attempts"):
        gate.wait("c1", render_checks(CHECKS, FIELDS, 5), False)


# --------------------------------------------------------------------------------------------------------
# Running the plan
# --------------------------------------------------------------------------------------------------------

def test_happy_rollout_updates_everyone_in_order_and_cleans_up():
    engine, lb, result, failure, warnings = run_all()
    assert failure == "" and warnings == []
    assert engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 5))
    assert set(lb.states.values()) == {"ready"}
    assert result["updated"] == ["app-1", "app-2", "app-3", "app-4"] and result["changed"] is True
    first = by_name(result)["app-1"]
    assert first["old_image"] == OLD and first["new_image"] == NEW and first["result"] == "updated"
    assert set(first["timings"]) == {"drain", "stop", "start", "healthy", "enable", "total"}
    # Drained before it stops, back in rotation only after it is healthy, one instance at a time.
    assert lb.calls[:3] == [("drain", "app-1"), ("enable", "app-1"), ("wait_serving", "app-1")]
    first_calls = [call for call in engine.calls if call[1].startswith("app-1")][:3]
    assert first_calls == [("write_record", "app-1"), ("stop", "app-1"), ("rename", "app-1")]
    assert engine.kept == {} and result["repaired"] == [] and result["not_serving"] == []


def test_batches_run_in_parallel_and_pause_between_them():
    engine, lb, result, failure, _warnings = run_all(count=5, batch_size=2, pause=7)
    assert failure == ""
    assert result["plan"]["batches"] == [["app-1", "app-2"], ["app-3", "app-4"], ["app-5"]]
    assert [item["batch"] for item in result["instances"]] == [1, 1, 2, 2, 3]
    assert engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 6))


def test_pause_is_not_taken_after_the_last_batch():
    world = World(count=2, pause=7)
    world.run()
    assert world.clock.sleeps.count(7) == 1


def test_broken_image_stops_after_the_first_batch_and_restores_it():
    engine, lb, result, failure, _warnings = run_all(image=BROKEN)
    assert engine.serving() == dict(("app-%d" % i, OLD) for i in range(1, 5))
    assert engine.by_name("app-1") == "c1", "the old container itself serves again"
    assert set(lb.states.values()) == {"ready"}
    assert result["rolled_back"] == ["app-1"] and result["not_started"] == ["app-2", "app-3", "app-4"]
    assert result["updated"] == [] and result["changed"] is False
    assert failure.startswith("rolling update to app:broken stopped after batch 1 of 4 (1 of 4 instances failed, "
                              "more than max_fail_percentage=0 allows): app-1: not healthy after")
    assert "health (http) critical: HTTP 500, expected 200" in failure
    assert "it is back on its old container (app:v1)" in failure
    assert failure.endswith("0 of 4 instances updated, 3 not started.")
    assert "rollback" in by_name(result)["app-1"]["timings"]


def test_tolerated_failure_continues_until_the_percentage_is_exceeded():
    world = World(max_fail_percentage=25)
    world.engine.fail = {"start:app-2": 1, "start:app-3": 1}
    result, failure = world.run()
    assert result["updated"] == ["app-1"] and result["rolled_back"] == ["app-2", "app-3"]
    assert result["not_started"] == ["app-4"]
    assert "stopped after batch 3 of 4 (2 of 4 instances failed, more than max_fail_percentage=25 allows)" in failure
    assert len(world.warnings) == 1 and "app-2" in world.warnings[0] and "tolerated" in world.warnings[0]
    assert world.engine.serving() == {"app-1": NEW, "app-2": OLD, "app-3": OLD, "app-4": OLD}


def test_failure_within_tolerance_finishes_the_rollout():
    world = World(max_fail_percentage=25)
    world.engine.fail = {"clone:app-3-keel-old": 1}
    result, failure = world.run()
    assert failure == ""
    assert result["updated"] == ["app-1", "app-2", "app-4"] and result["rolled_back"] == ["app-3"]


# Every step that can fail, and what must hold afterwards: the instance runs its old container under its
# name, it is back in rotation, and the failure names the instance and the cause.
FAILURES = [
    ("lb", "drain", "load balancer socket broke during drain of app-1"),
    ("engine", "stop", "engine refused stop of app-1"),
    ("engine", "rename", "engine refused rename of app-1"),
    ("engine", "clone", "engine refused clone of app-1-keel-old"),
    ("engine", "start", "engine refused start of app-1"),
    ("lb", "enable", "load balancer socket broke during enable of app-1"),
    ("lb", "wait_serving", "load balancer socket broke during wait_serving of app-1"),
]


@pytest.mark.parametrize("where, method, cause", FAILURES, ids=[f[1] for f in FAILURES])
def test_any_failing_step_leaves_the_instance_serving_and_in_rotation(where, method, cause):
    world = World()
    fake = world.lb if where == "lb" else world.engine
    fake.fail = {"%s:%s" % (method, "app-1-keel-old" if method == "clone" else "app-1"): 1}
    result, failure = world.run()
    assert world.engine.serving()["app-1"] == OLD
    assert set(world.lb.states.values()) == {"ready"}
    assert by_name(result)["app-1"]["result"] == "rolled_back"
    assert "app-1: " in failure and cause in failure


def test_a_load_balancer_that_stays_broken_fails_loudly_with_a_hint():
    world = World()
    world.lb.fail = {"drain:app-1": 1, "enable:app-1": 99}
    result, failure = world.run()
    assert by_name(result)["app-1"]["result"] == "failed" and result["failed_instances"] == ["app-1"]
    assert "failed" not in result, "Ansible's own failure flag would overwrite it"
    assert "it is still out of the load balancer, putting it back failed 4 times" in failure
    assert "put it back by hand: enable app-1 by hand" in failure
    assert "an instance could not be restored or put back in the load balancer" in failure
    assert world.engine.serving()["app-1"] == OLD, "the container itself still serves"
    assert world.clock.sleeps[:3] == [0.5, 1.0, 2.0]


def test_a_restore_that_fails_stops_the_rollout_even_when_tolerated():
    world = World(max_fail_percentage=100)
    world.engine.fail = {"start:app-1": 2}  # the new container's start, then the old one's after the rename back
    result, failure = world.run()
    assert by_name(result)["app-1"]["result"] == "failed"
    assert "restoring the old container failed: could not start the old container" in failure
    assert result["not_started"] == ["app-2", "app-3", "app-4"]
    assert world.lb.states["app-1"] == "ready", "even then it goes back in rotation"


def test_an_old_container_that_cannot_be_removed_is_a_warning():
    world = World(count=1)
    world.engine.fail = {"remove:app-1-keel-old": 1}
    result, failure = world.run()
    assert failure == "" and result["updated"] == ["app-1"]
    assert world.warnings == ["app-1 is updated but its old container app-1-keel-old could not be removed "
                              "(engine refused remove of app-1-keel-old); remove it before the next rollout"]


def test_container_healthcheck_alone_is_a_health_gate():
    engine, lb, result, failure, _warnings = run_all(count=2, checks=[], healthcheck=True)
    assert failure == "" and result["updated"] == ["app-1", "app-2"]


# --------------------------------------------------------------------------------------------------------
# Preparation: refuse before touching anything
# --------------------------------------------------------------------------------------------------------

def test_prepare_refuses_an_instance_without_any_health_gate():
    with pytest.raises(ConfigError, match="container app-1 has no healthcheck and health_checks is empty"):
        World(checks=[]).prepare()


@pytest.mark.parametrize("change, message", [
    (dict(running=False), "container app-2 is not running"),
    (dict(auto_remove=True), "container app-2 was started with auto-remove"),
])
def test_prepare_refuses_unsafe_instances(change, message):
    world = World()
    world.engine.containers["c2"].update(change)
    with pytest.raises(ConfigError, match=message):
        world.prepare()
    assert world.engine.calls == [] and world.lb.calls == []


def test_prepare_refuses_a_leftover_of_an_interrupted_rollout():
    world = World()
    world.engine._add("app-3" + OLD_SUFFIX, OLD, running=False)
    with pytest.raises(ConfigError, match="container app-3-keel-old is left over from an interrupted rollout"):
        world.prepare()


def test_prepare_only_warns_about_a_leftover_of_an_updated_instance():
    world = World(count=1)
    world.engine.containers["c1"]["image"] = NEW
    world.engine._add("app-1" + OLD_SUFFIX, OLD, running=False)
    plan = world.plan
    runs = world.rollout.prepare(plan)
    assert "app-1-keel-old, its previous container, is left over" in world.warnings[0]
    result = plan_results(runs, plan, world.target)
    assert result["changed"] is False and result["instances"][0]["result"] == "skipped"


def test_prepare_asks_the_load_balancer_about_the_rendered_server_names():
    with pytest.raises(LoadBalancerError, match="unknown servers"):
        World(server="web-{env[PORT]}").prepare()


def test_check_mode_result_is_the_plan():
    world = World(count=3, batch_size="50%")
    plan = world.plan
    result = plan_results(world.rollout.prepare(plan), plan, world.target)
    assert result["changed"] is True and result["plan"]["batches"] == [["app-1", "app-2"], ["app-3"]]
    assert [item["result"] for item in result["instances"]] == ["planned"] * 3
    assert result["diff"] == {"before": {"app-1": OLD, "app-2": OLD, "app-3": OLD},
                              "after": {"app-1": NEW, "app-2": NEW, "app-3": NEW}}
    assert world.engine.calls == [] and world.lb.calls == []


@pytest.mark.parametrize("options, message", [
    (dict(max_fail_percentage=101), "max_fail_percentage must be between 0 and 100"),
    (dict(stop_timeout=-1), "stop_timeout must be 0 or more"),
])
def test_config_validation(options, message):
    with pytest.raises(ConfigError, match=message):
        RolloutConfig(NEW, HealthConfig(), **options)


def test_health_config_validation():
    with pytest.raises(ConfigError, match="health_timeout must be more than 0"):
        HealthConfig(timeout=0)
    with pytest.raises(ConfigError, match="health_retries must be 0 or more"):
        HealthConfig(retries=-1)


def test_a_group_of_load_balancers_drains_on_each_and_enables_on_all_despite_one_failing():
    first, second = FakeLoadBalancer(["app-1"]), FakeLoadBalancer(["app-1"])
    group = LoadBalancerGroup([first, second])
    group.preflight(["app-1"])
    assert group.drain("app-1") == 0
    assert first.states == second.states == {"app-1": "maint"}
    first.fail = {"enable": 1}
    with pytest.raises(LoadBalancerError, match="broke during enable of app-1"):
        group.enable("app-1")
    assert second.states["app-1"] == "ready", "the second one is enabled anyway"
    assert group.hint("app-1") == "enable app-1 by hand; enable app-1 by hand"


def test_a_rollout_behind_a_pair_survives_one_broken_enable():
    world = World(count=2)
    pair = LoadBalancerGroup([world.lb, FakeLoadBalancer(["app-1", "app-2"])])
    world.rollout.lb = pair
    world.lb.fail = {"enable:app-1": 1}
    result, failure = world.run()
    assert result["rolled_back"] == ["app-1"] and "broke during enable of app-1" in failure
    assert all(set(member.states.values()) == {"ready"} for member in pair.members)


def test_a_failure_after_the_instance_is_back_in_rotation_takes_it_out_before_restoring():
    world = World(count=1)
    world.lb.fail = {"wait_serving:app-1": 1}
    result, failure = world.run()
    assert result["rolled_back"] == ["app-1"]
    steps = [call[0] for call in world.lb.calls]
    assert steps == ["drain", "enable", "wait_serving", "drain", "enable", "wait_serving"]
    assert world.engine.calls.index(("remove", "app-1")) > 0, "the new container went only after the drain"
    assert world.lb.states == {"app-1": "ready"}


def test_checks_are_rendered_for_the_container_that_runs_now():
    world = World(count=1)
    seen = []
    prober = world.rollout.gate.prober
    world.rollout.gate.prober = lambda checks, **options: seen.append(checks[0].target) or prober(checks, **options)
    clone = world.engine.clone

    def clone_on_a_new_port(instance, image_ref):
        new_id = clone(instance, image_ref)
        world.engine.containers[new_id]["env"]["PORT"] = "9999"  # a new random host port, say
        return new_id

    world.engine.clone = clone_on_a_new_port
    result, failure = world.run()
    assert failure == "" and seen == ["http://127.0.0.1:9999/app-1"]


def test_an_interrupt_restores_the_instance_in_progress_and_starts_no_other():
    world = World()
    stop = world.engine.stop

    def stop_then_signal(container_id, timeout):
        stop(container_id, timeout)
        world.rollout.interrupt("SIGTERM")  # what the module's signal handler does

    world.engine.stop = stop_then_signal
    result, failure = world.run()
    assert result["rolled_back"] == ["app-1"] and result["not_started"] == ["app-2", "app-3", "app-4"]
    assert failure.startswith("rolling update to app:v2 stopped after batch 1 of 4 (interrupted by SIGTERM): "
                              "app-1: interrupted by SIGTERM; it is back on its old container (app:v1)")
    assert world.engine.serving()["app-1"] == OLD and world.lb.states["app-1"] == "ready"


def test_an_interrupt_during_the_health_wait_ends_it():
    world = World(count=1, image=BROKEN)
    world.rollout.gate.sleep = lambda seconds: world.rollout.interrupt("SIGINT")
    result, failure = world.run()
    assert "app-1: interrupted by SIGINT while waiting for it to become healthy (critical:" in failure
    assert result["rolled_back"] == ["app-1"] and world.lb.states["app-1"] == "ready"


# --------------------------------------------------------------------------------------------------------
# The selector
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("names, labels, message", [
    ([], None, "names must list at least one container name"),
    ([""], None, "no empty one"),
    (None, {}, "labels must give at least one label"),
    (["app-1-keel-old"], None, "names must not name app-1-keel-old"),
    (None, None, "give names or labels"),
])
def test_a_selector_that_would_select_every_container_is_refused(names, labels, message):
    with pytest.raises(ConfigError, match=message):
        check_selector(names, labels)


def test_a_real_selector_is_accepted():
    check_selector(["app-1"], None)
    check_selector(None, {"app": "shop"})


# --------------------------------------------------------------------------------------------------------
# Calls that fail after taking effect
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("late", ["rename:app-1", "clone:app-1-keel-old", "start:app-1", "stop:app-1"])
def test_a_call_that_takes_effect_then_fails_is_undone_and_leaves_nothing_behind(late):
    """A rename that times out after renaming, a create whose network connect fails (the container exists but
    its id never came back): the restore must still rename back and remove the orphan."""
    world = World()
    world.engine.late = {late: 1}
    result, failure = world.run()
    assert by_name(result)["app-1"]["result"] == "rolled_back", failure
    assert "it is back on its old container (app:v1)" in failure
    assert world.engine.serving()["app-1"] == OLD and world.engine.by_name("app-1") == "c1"
    assert set(world.lb.states.values()) == {"ready"}
    assert world.engine.kept == {}, "nothing is left to repair"


# --------------------------------------------------------------------------------------------------------
# Load balancer admin states
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["maint", "drain"])
def test_a_server_taken_out_before_the_rollout_goes_back_to_that_state(state):
    world = World()
    world.lb.states["app-2"] = state
    result, failure = world.run()
    assert failure == "" and result["updated"] == ["app-1", "app-2", "app-3", "app-4"]
    assert world.lb.states == {"app-1": "ready", "app-2": state, "app-3": "ready", "app-4": "ready"}
    assert world.warnings == ["app-2: its load balancer server app-2 is in %s, set before this rollout and not by an "
                              "interrupted one; it is updated and left in that state" % state]


def test_the_admin_state_is_read_when_the_instance_is_taken_out_not_at_planning_time():
    world = World(count=2)
    drain = world.lb.drain

    def drain_then_operator_takes_app_2_out(server):
        if server == "app-1":
            world.lb.states["app-2"] = "maint"
        return drain(server)

    world.lb.drain = drain_then_operator_takes_app_2_out
    _result, failure = world.run()
    assert failure == "" and world.lb.states == {"app-1": "ready", "app-2": "maint"}


# --------------------------------------------------------------------------------------------------------
# A kill -9, then the same rollout again
# --------------------------------------------------------------------------------------------------------

KILL_POINTS = ["write_record:app-1", "drain:app-1", "stop:app-1", "rename:app-1", "clone:app-1-keel-old",
               "start:app-1", "enable:app-1", "remove:app-1-keel-old"]


def killed(kill, image=NEW, **options):
    """A world whose rollout was killed right after `kill` did its work, and a new process to run it again."""
    world = World(image=image, **options)
    target = world.lb if kill.split(":")[0] in ("drain", "enable") else world.engine
    target.kill = kill
    try:
        world.run()
    except Killed:
        pass
    assert world.engine.process.dead, "the kill happened"
    target.kill = None
    world.restart()
    return world


@pytest.mark.parametrize("kill", KILL_POINTS)
@pytest.mark.parametrize("names", [None, ["app-1", "app-2", "app-3", "app-4"]], ids=["labels", "names"])
def test_the_next_run_repairs_whatever_a_kill_left_and_then_rolls_out(kill, names):
    world = killed(kill)
    result, failure = world.run(names)
    assert failure == ""
    assert result["repaired"] == ["app-1"] and result["not_serving"] == []
    assert result["updated"] == ["app-1", "app-2", "app-3", "app-4"][1 if kill.startswith("remove") else 0:]
    assert world.engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 5))
    assert world.lb.states == dict(("app-%d" % i, "ready") for i in range(1, 5))
    assert world.engine.kept == {}
    assert any(text.startswith("app-1 was left mid-replacement by an interrupted rollout") and "repaired" in text
               for text in world.warnings), world.warnings


def test_a_server_in_maintenance_before_the_killed_run_stays_in_maintenance_after_the_repair():
    world = World()
    world.lb.states["app-1"] = "maint"
    world.engine.kill = "rename:app-1"
    with pytest.raises(Killed):
        world.run()
    world.engine.kill = None
    world.restart()
    result, failure = world.run()
    assert failure == "" and result["repaired"] == ["app-1"]
    assert world.lb.states["app-1"] == "maint"


def test_check_mode_reports_the_repair_and_changes_nothing():
    world = killed("rename:app-1")
    before = dict(world.engine.containers)
    assert world.rollout.repair(None, None, check_mode=True) == ["app-1"]
    assert world.engine.containers == before and world.lb.states["app-1"] == "maint"
    assert world.warnings == ["app-1 was left mid-replacement by an interrupted rollout; the run repairs it first"]


def test_a_leftover_without_its_record_is_renamed_back_when_nothing_holds_the_name():
    """A record removed by hand (docker volume prune), or a leftover of a version without records."""
    world = killed("rename:app-1")
    world.engine.kept.clear()
    result, failure = world.run()
    assert failure == "" and result["repaired"] == ["app-1"]
    assert world.engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 5))
    assert set(world.lb.states.values()) == {"ready"}


def test_a_leftover_next_to_its_name_without_a_record_is_refused_with_the_commands():
    world = killed("start:app-1")
    world.engine.kept.clear()
    before = dict(world.engine.containers)
    with pytest.raises(ConfigError) as refused:
        world.run()
    assert str(refused.value) == (
        "an interrupted rollout left containers that cannot be repaired safely: app-1: app-1-keel-old exists next "
        "to app-1 and no rollout record tells what was being replaced; if app-1 serves correctly, run docker rm -f "
        "app-1-keel-old; otherwise run docker rm -f app-1 && docker rename app-1-keel-old app-1 && docker start "
        "app-1. Put its server back in the load balancer if it is out (enable app-1 by hand), then run again")
    assert world.engine.containers == before


def test_a_record_whose_containers_are_both_gone_is_refused():
    world = killed("rename:app-1")
    del world.engine.containers[world.engine.by_name("app-1-keel-old")]
    with pytest.raises(ConfigError, match="app-1: the rollout record of an interrupted run names it, but neither "
                                          "app-1 nor app-1-keel-old exists; recreate app-1"):
        world.run()


def test_a_record_of_a_rollout_still_running_is_refused():
    world = killed("rename:app-1")
    world.engine.kept["app-1"]["owner"] = process_owner()  # this very process: alive
    with pytest.raises(ConfigError, match="app-1 is being replaced right now by another rolling_update"):
        world.run()


def test_a_record_outside_the_selection_is_left_alone():
    world = killed("rename:app-1")
    result, failure = world.run(names=["app-2"])
    assert failure == "" and result["repaired"] == [] and result["updated"] == ["app-2"]
    assert "app-1" in world.engine.kept and world.engine.by_name("app-1-keel-old")


def test_an_instance_left_out_of_the_load_balancer_keeps_its_record_and_the_next_run_repairs_it():
    world = World()
    world.lb.fail = {"enable:app-1": 99}
    result, failure = world.run()
    assert result["failed_instances"] == ["app-1"] and "the next run repairs it" in failure
    assert world.engine.kept["app-1"]["lb_before"] == "ready"
    world.lb.fail = {}
    world.restart()
    result, failure = world.run()
    assert failure == "" and result["repaired"] == ["app-1"]
    assert result["updated"] == ["app-1", "app-2", "app-3", "app-4"] and set(world.lb.states.values()) == {"ready"}


# --------------------------------------------------------------------------------------------------------
# The final check: never success while a selected instance does not serve
# --------------------------------------------------------------------------------------------------------

def test_success_is_never_reported_while_a_selected_instance_is_down():
    world = World()
    world.engine.containers["c2"].update(image=NEW, running=False)  # on the target image, but exited
    result, failure = world.run()
    assert result["updated"] == ["app-1", "app-3", "app-4"] and result["not_serving"] == ["app-2"]
    assert failure == "rolling update to app:v2: 1 of 4 selected instances do not serve: app-2: container app-2 is " \
                      "not running"


def test_nothing_to_do_still_checks_that_every_instance_serves():
    world = World(count=2, image=OLD)
    world.target = TargetImage(OLD, "id-" + OLD)
    world.lb.states["app-2"] = "maint"
    world.engine.containers["c1"]["running"] = False
    result, failure = world.run()
    assert result["changed"] is False and result["not_serving"] == ["app-1"]
    assert "app-1: container app-1 is not running" in failure and "app-2" not in failure
