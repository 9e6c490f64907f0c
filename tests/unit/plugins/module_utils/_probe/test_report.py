"""Rendering probe results: the summary table, Prometheus text and the webhook report."""

from ansible_collections.keel.ops.plugins.module_utils._probe.report import (
    overall_status,
    prometheus_text,
    summary_table,
)


def check(name, kind, status, message, metrics=None, duration=12.4):
    return {"name": name, "kind": kind, "status": status, "message": message, "metrics": metrics or {},
            "duration_ms": duration}


RESULTS = {
    "web1": {"status": "healthy", "checks": [check("api", "http", "healthy", "HTTP 200", {
        "response_time": {"value": 12.4, "unit": "ms", "status": "healthy"}})]},
    "db1": {"status": "critical", "checks": [
        check("pg", "postgres", "critical", "cannot connect: refused", duration=None),
        check("disk", "system", "warning", 'disk:/ 85% is at or above warning 80%', {
            "disk:/": {"value": 85.0, "unit": "%", "status": "warning"},
            "replication_lag": {"value": None, "unit": "s", "status": "healthy"}})]},
    "skipped": None,
}


def test_table_has_aligned_rows_sorted_by_host_and_a_tally():
    lines = summary_table(RESULTS)
    assert lines[0].split() == ["HOST", "CHECK", "KIND", "STATUS", "TIME", "MESSAGE"]
    assert [line.split()[0] for line in lines[1:-1]] == ["db1", "db1", "web1"]
    assert lines[1].split()[3] == "CRITICAL" and "cannot connect: refused" in lines[1]
    assert lines[3].index("HEALTHY") == lines[1].index("CRITICAL")
    assert lines[-1] == "overall: CRITICAL (1 critical, 1 warning, 1 healthy)"


def test_table_shortens_long_messages():
    long = {"h": {"status": "critical", "checks": [check("c", "tcp", "critical", "x" * 300)]}}
    assert summary_table(long)[1].endswith("x" * 97 + "...")


def test_table_without_checks():
    assert summary_table({})[-1] == "overall: HEALTHY (no checks ran)"


def test_overall_ignores_hosts_without_results():
    assert overall_status(RESULTS) == "critical"


def test_prometheus_text():
    text = prometheus_text(RESULTS)
    assert 'keel_health_status{check="pg",host="db1",kind="postgres"} 3' in text
    assert 'keel_health_status{check="api",host="web1",kind="http"} 0' in text
    assert 'keel_health_metric{check="disk",host="db1",kind="system",metric="disk:/",unit="%"} 85' in text
    assert "replication_lag" not in text  # a metric that does not apply has no sample
    assert 'keel_health_overall_status{host="db1"} 3' in text
    assert 'keel_health_check_duration_seconds{check="pg",host="db1",kind="postgres"} 0' in text
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("#") or line.startswith("keel_health_")


def test_prometheus_escapes_label_values():
    odd = {'h"1': {"status": "healthy", "checks": [check('a\\b\n"c"', "tcp", "healthy", "")]}}
    assert 'check="a\\\\b\\n\\"c\\"",host="h\\"1"' in prometheus_text(odd)


def test_report_for_webhooks():
    from ansible_collections.keel.ops.plugins.module_utils._probe.report import report

    data = report(RESULTS)
    assert data["status"] == "critical"
    assert data["text"] == "keel.ops health check: overall: CRITICAL (1 critical, 1 warning, 1 healthy)"
    assert sorted(data["hosts"]) == ["db1", "web1"]
    assert data["hosts"]["db1"]["checks"][0] == {"name": "pg", "kind": "postgres", "status": "critical",
                                                 "message": "cannot connect: refused"}
