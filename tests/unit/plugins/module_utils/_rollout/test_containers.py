"""Containers brought to a wanted state: the action each needs, applied in order, failures named."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._rollout.containers import (
    StateChanger,
    action_for,
    change_states,
    plan_states,
    summary,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.health import HealthGate
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import ContainerState
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import HealthConfig

from .fakes import BROKEN, Clock, FakeEngine

RUNNING = ContainerState(True, "running", None, 0)
EXITED = ContainerState(False, "exited", None, 137)
UNHEALTHY = ContainerState(True, "running", "unhealthy", 0)
STARTING = ContainerState(True, "running", "starting", 0)


@pytest.mark.parametrize("state, wanted, action", [
    (RUNNING, "stopped", "stop"), (EXITED, "stopped", None),
    (RUNNING, "started", None), (EXITED, "started", "start"), (UNHEALTHY, "started", None),
    (RUNNING, "restarted", "restart"), (EXITED, "restarted", "restart"),
    (RUNNING, "healthy", None), (EXITED, "healthy", "start"), (UNHEALTHY, "healthy", "restart"),
    (STARTING, "healthy", None),
])
def test_each_state_needs_the_least_action(state, wanted, action):
    assert action_for(state, wanted) == action


def changer_for(engine, timeout=5.0):
    clock = Clock()
    return StateChanger(engine, gate=HealthGate(engine, HealthConfig(timeout=timeout, interval=1.0), clock, clock.sleep))


def test_stopped_then_started_round_trips_and_a_rerun_changes_nothing():
    engine = FakeEngine(["app-1", "app-2"])
    instances = engine.select(None, None)
    plan, failure = change_states(changer_for(engine), plan_states(engine, instances, "stopped"))
    assert failure == "" and [e["action"] for e in plan] == ["stop", "stop"]
    assert [e["after"]["running"] for e in plan] == [False, False]
    assert summary(plan, "stopped", False) == "stopped app-1, stopped app-2"
    again = plan_states(engine, instances, "stopped")
    assert [e["action"] for e in again] == [None, None] and summary(again, "stopped", True) == "2 containers already stopped"
    plan, failure = change_states(changer_for(engine), plan_states(engine, instances, "started"))
    assert failure == "" and all(c["running"] for c in engine.containers.values())
    assert summary(plan, "started", True) == "would start app-1, start app-2"


def test_healthy_restarts_only_what_is_down_or_unhealthy():
    engine = FakeEngine(["app-1", "app-2", "cache"])
    engine.containers["c2"]["running"] = False
    plan = plan_states(engine, engine.select(None, None), "healthy")
    assert [e["action"] for e in plan] == [None, "start", None]
    plan, failure = change_states(changer_for(engine), plan)
    assert failure == "" and plan[1]["after"]["running"] is True and plan[1]["before"]["status"] == "exited"


def test_a_container_that_stays_unhealthy_fails_naming_it_and_stops_there():
    engine = FakeEngine(["app-1", "app-2"], image=BROKEN, healthcheck=True)
    plan = plan_states(engine, engine.select(None, None), "restarted")
    plan, failure = change_states(changer_for(engine), plan)
    assert failure == "container app-1 was restarted but did not become healthy: its container healthcheck reports unhealthy"
    assert "after" in plan[0] and "after" not in plan[1], "app-2 is left alone after the first failure"


def test_an_engine_refusal_is_the_failure():
    engine = FakeEngine(["app-1"])
    engine.fail = {"stop": 1}
    _plan, failure = change_states(changer_for(engine), plan_states(engine, engine.select(None, None), "stopped"))
    assert "stop" in failure and "app-1" in failure
