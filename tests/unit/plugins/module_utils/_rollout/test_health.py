"""The health gate: a container's own healthcheck and rendered checks, retries and deadlines."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._rollout.health import HealthGate
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import HealthError
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import HealthConfig, render_checks

from .fakes import BROKEN, CHECKS, FIELDS, Clock, FakeEngine, make_prober


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


def test_the_last_attempt_gets_time_to_name_the_problem_rather_than_the_deadline():
    engine = FakeEngine(["app-1"], image=BROKEN)
    deadlines = []
    prober = make_prober(engine)

    def recording(checks, **options):
        deadlines.append(options["deadline"])
        return prober(checks, **options)
    clock = Clock()
    gate = HealthGate(engine, HealthConfig(timeout=1.05, interval=0.5), clock, clock.sleep, recording)
    with pytest.raises(HealthError, match="HTTP 500"):
        gate.wait("c1", render_checks(CHECKS, FIELDS, 5), False)
    assert deadlines == [1.05, 1.0, 1.0]


def test_gate_stops_after_its_retries():
    engine = FakeEngine(["app-1"], image=BROKEN)
    gate, clock = gate_for(engine, retries=1)
    with pytest.raises(HealthError, match="after 2 attempts"):
        gate.wait("c1", render_checks(CHECKS, FIELDS, 5), False)
