"""Statuses, thresholds and how one check's outcome is reported."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._probe.status import (
    CRITICAL,
    CheckResult,
    HEALTHY,
    MetricSpec,
    Threshold,
    UNKNOWN,
    WARNING,
    build_threshold,
    format_value,
    is_failing,
    worst,
)

HIGHER = MetricSpec("ms", True, None, None)
LOWER = MetricSpec("%", False, None, None)


@pytest.mark.parametrize("value, expected", [
    (99.9, HEALTHY), (100, WARNING), (499.9, WARNING), (500, CRITICAL), (10 ** 6, CRITICAL),
])
def test_higher_is_worse_limits_are_inclusive(value, expected):
    assert Threshold(100, 500, higher_is_worse=True).status_of(value) == expected


@pytest.mark.parametrize("value, expected", [
    (95.1, HEALTHY), (90, WARNING), (70.1, WARNING), (70, CRITICAL), (0, CRITICAL),
])
def test_lower_is_worse_limits_are_inclusive(value, expected):
    assert Threshold(90, 70, higher_is_worse=False).status_of(value) == expected


def test_threshold_without_limits_is_always_healthy():
    assert Threshold().status_of(10 ** 9) == HEALTHY


def test_only_critical_limit():
    assert Threshold(None, 5).status_of(4) == HEALTHY
    assert Threshold(None, 5).status_of(5) == CRITICAL


def test_build_threshold_uses_defaults_and_overrides_one_level():
    spec = MetricSpec("%", True, 80.0, 95.0)
    threshold = build_threshold("disk", spec, {"critical": 98}, "checks[0]")
    assert (threshold.warning, threshold.critical) == (80.0, 98.0)


def test_build_threshold_refuses_inverted_higher_is_worse():
    with pytest.raises(ConfigError, match=r"checks\[0\]: thresholds.response_time: warning \(900\) must come "
                                          r"before critical \(100\).*set warning below critical"):
        build_threshold("response_time", HIGHER, {"warning": 900, "critical": 100}, "checks[0]")


def test_build_threshold_refuses_inverted_lower_is_worse():
    with pytest.raises(ConfigError, match="set warning above critical"):
        build_threshold("hit_rate", LOWER, {"warning": 50, "critical": 90}, "checks[1]")


def test_build_threshold_refuses_non_numbers_and_unknown_levels():
    with pytest.raises(ConfigError, match=r"thresholds.hit_rate.warning must be a number, got 'lots'"):
        build_threshold("hit_rate", LOWER, {"warning": "lots"}, "c")
    with pytest.raises(ConfigError, match="accepts only 'warning' and 'critical', not crit"):
        build_threshold("hit_rate", LOWER, {"crit": 1}, "c")


def test_worst_ranks_unknown_between_warning_and_critical():
    assert worst([]) == HEALTHY
    assert worst([HEALTHY, WARNING]) == WARNING
    assert worst([WARNING, UNKNOWN]) == UNKNOWN
    assert worst([UNKNOWN, CRITICAL, HEALTHY]) == CRITICAL


@pytest.mark.parametrize("status, fail_on, expected", [
    (HEALTHY, "critical", False), (WARNING, "critical", False), (UNKNOWN, "critical", True),
    (CRITICAL, "critical", True), (HEALTHY, "warning", False), (WARNING, "warning", True),
    (CRITICAL, "never", False), (UNKNOWN, "never", False),
])
def test_is_failing(status, fail_on, expected):
    assert is_failing(status, fail_on) is expected


def test_format_value():
    assert format_value(12.345, "ms") == "12.3 ms"
    assert format_value(87.5, "%") == "87.5%"
    assert format_value(1234.7, "ms") == "1235 ms"
    assert format_value(90.0, "%") == "90%"
    assert format_value(3, "") == "3"


def test_check_result_status_is_worst_metric_or_problem():
    result = CheckResult("api", "http", "http://x")
    result.note("HTTP 200")
    result.metric("response_time", 120.0, "ms", Threshold(100, 500))
    assert result.status == WARNING
    assert result.message == "response_time 120 ms is at or above warning 100 ms"
    result.problem(CRITICAL, "HTTP 500, expected 200")
    assert result.status == CRITICAL
    assert result.message.startswith("HTTP 500, expected 200; response_time")


def test_healthy_check_reports_its_notes_and_not_applicable_metrics_stay_healthy():
    result = CheckResult("db", "postgres", "h:5432/app")
    result.metric("replication_lag", None, "s", Threshold(1, 2))
    result.note("PostgreSQL 18.1 primary")
    data = result.as_dict()
    assert data["status"] == HEALTHY and data["healthy"] is True
    assert data["message"] == "PostgreSQL 18.1 primary"
    assert data["metrics"]["replication_lag"] == {"value": None, "unit": "s", "status": HEALTHY,
                                                  "warning": 1, "critical": 2}


def test_lower_is_worse_message_says_below():
    result = CheckResult("cert", "tls_cert", "x:443")
    result.metric("days_remaining", 3.0, "days", Threshold(30, 7, higher_is_worse=False))
    assert result.status == CRITICAL
    assert result.message == "days_remaining 3 days is at or below critical 7 days"
