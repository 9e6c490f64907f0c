# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring containers to a wanted state through the engine: the service hook of a restore (stop the application,
start it again once its data is back) and the stabilising step of incident first response (restart what is down
or unhealthy, leave what is healthy alone). Plan, then apply: the plan is what check mode returns."""

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, EngineError
from ansible_collections.keel.ops.plugins.module_utils._rollout.docker import connect_from_params
from ansible_collections.keel.ops.plugins.module_utils._rollout.health import HealthGate
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import HealthError
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import HealthConfig, check_selector

STATES = ("started", "stopped", "restarted", "healthy")
PAST = {"start": "started", "stop": "stopped", "restart": "restarted"}


def selected(params):
    """The engine and the containers that the options of _argspecs.CONTAINERS select: in the order of `names` (stop
    the app before its cache), or by name for `labels`. An empty selector, or labels that match nothing, is
    refused."""
    check_selector(params["names"], params["labels"])
    engine = connect_from_params(params)
    instances = engine.select(params["names"], params["labels"])
    if not instances:
        raise ConfigError("no container carries the labels %s on %s; check labels and docker_host"
                          % (params["labels"], engine.docker_host))
    return engine, instances if params["names"] else sorted(instances, key=lambda instance: instance.name)


def action_for(state, wanted):
    """What brings a container in `state` (a ContainerState) to `wanted`: 'start', 'stop', 'restart' or None."""
    if wanted == "stopped":
        return "stop" if state.running else None
    if wanted == "restarted":
        return "restart"
    if not state.running:
        return "start"
    # healthy: a running container its own healthcheck calls unhealthy is restarted; 'starting' is given time.
    return "restart" if wanted == "healthy" and state.health == "unhealthy" else None


def describe(state):
    return {"status": state.status, "running": state.running, "health": state.health}


def describe_containers(engine, instances, log_lines):
    """What an incident record keeps of each container: its image, its state, the tail of its output."""
    return [{"name": instance.name, "id": instance.id, "image": instance.image,
             "state": describe(engine.state(instance.id)),
             "logs": engine.logs(instance.id, log_lines).splitlines() if log_lines else []}
            for instance in instances]


def plan_states(engine, instances, wanted):
    """One entry per container: its name, id, state now, and the action it needs."""
    plan = []
    for instance in instances:
        state = engine.state(instance.id)
        plan.append({"name": instance.name, "id": instance.id, "before": describe(state),
                     "action": action_for(state, wanted), "has_healthcheck": instance.has_healthcheck})
    return plan


class StateChanger:
    """Applies a plan entry by entry; a container that starts must be running (and healthy, when it has a
    healthcheck) within wait_timeout, or the change fails naming what was seen."""

    def __init__(self, engine, stop_timeout=10, wait_timeout=60, interval=1.0, gate=None):
        self.engine = engine
        self.stop_timeout = stop_timeout
        self.gate = gate or HealthGate(engine, HealthConfig(timeout=wait_timeout, interval=interval))

    def apply(self, entry):
        """Carry out entry's action; returns the entry with its state after. Raises EngineError on failure."""
        action, container_id = entry["action"], entry["id"]
        if action in ("stop", "restart"):
            self.engine.stop(container_id, self.stop_timeout)
        if action in ("start", "restart"):
            self.engine.start(container_id)
            try:
                entry["attempts"] = self.gate.wait(container_id, [], entry["has_healthcheck"])
            except HealthError as error:
                entry["after"] = describe(self.engine.state(container_id))
                raise EngineError("container %s was %s but did not become healthy: %s" % (
                    entry["name"], PAST[action], error))
        entry["after"] = describe(self.engine.state(container_id))
        return entry


def change_states(changer, plan):
    """Apply every entry that has an action, in order; stops at the first failure, returning
    (entries, failure message or '')."""
    for entry in plan:
        if entry["action"] is None:
            entry["after"] = entry["before"]
            continue
        try:
            changer.apply(entry)
        except EngineError as error:
            return plan, str(error)
    return plan, ""


def summary(plan, wanted, check_mode):
    acted = [entry for entry in plan if entry["action"]]
    if not acted:
        return "%d container%s already %s" % (len(plan), "" if len(plan) == 1 else "s", wanted)
    done = ", ".join("%s %s" % (entry["action"] if check_mode else PAST[entry["action"]], entry["name"])
                     for entry in acted)
    return ("would " if check_mode else "") + done
