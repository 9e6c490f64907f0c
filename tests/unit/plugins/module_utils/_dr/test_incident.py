"""The outcome and timeline of an incident first response."""

from ansible_collections.keel.ops.plugins.module_utils._dr import incident

SICK = {"healthy": False, "summary": "critical: 1 of 3 checks not healthy", "failing": ["app"]}
WELL = {"healthy": True, "summary": "ok: 3 of 3 checks healthy", "failing": []}


def test_outcomes():
    assert incident.outcome(WELL, WELL) == "healthy"
    assert incident.outcome(SICK, WELL) == "stabilised"
    assert incident.outcome(SICK, SICK) == "unhealthy"
    assert incident.outcome(SICK, None) == "unhealthy", "no second assessment is no recovery"


def test_the_report_names_what_is_still_failing_and_renders_the_timeline():
    events = [{"time": "05:00:00", "step": "assess", "result": "critical", "detail": "app|down"},
              {"time": "05:00:02", "step": "stabilise", "result": "changed", "detail": "restarted app-1"}]
    found = incident.report("i1", "app1", events, SICK, SICK, "/var/tmp/i1")
    assert found["status"] == "unhealthy" and found["summary"] == "app1: STILL UNHEALTHY after first response: app"
    text = incident.markdown(found)
    assert text.startswith("# Incident i1 on app1: UNHEALTHY") and "| 05:00:00 | assess | critical | app\\|down |" in text
    assert incident.report("i1", "app1", events, SICK, WELL)["summary"] == "app1: stabilised (ok: 3 of 3 checks healthy)"
