"""In-memory fakes the rollout unit tests share: a container engine, load balancers, a clock, a prober, and the
world they make together."""

import itertools
import threading

from ansible_collections.keel.ops.plugins.module_utils._errors import EngineError
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import (
    OLD_SUFFIX,
    ContainerEngine,
    ContainerState,
    Instance,
    LoadBalancer,
    LoadBalancerError,
    TargetImage,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import HealthConfig, RolloutConfig, plan_rollout
from ansible_collections.keel.ops.plugins.module_utils._rollout.run import Rollout


OLD, NEW, BROKEN = "app:v1", "app:v2", "app:broken"


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

    def logs(self, container_id, lines=15):
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


def instance(name, image_id="old"):
    return Instance(name, "id-" + name, "app", image_id, True, False, False, {})


FIELDS = {"name": "app-1", "server": "web/app-1", "env": {"PORT": "8001"}, "labels": {"tier": "web"},
          "ports": {"8080/tcp": "32768", 8080: "32768"}}
