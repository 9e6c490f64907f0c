"""Findings of the security checks from what the servers answer, and the report over them."""

import datetime

import pytest

from ansible_collections.keel.ops.plugins.module_utils._security.containers import container_findings
from ansible_collections.keel.ops.plugins.module_utils._security.findings import at_or_above, finding, ordered
from ansible_collections.keel.ops.plugins.module_utils._security.postgres import hba_findings, role_findings
from ansible_collections.keel.ops.plugins.module_utils._security.redis import bind_findings
from ansible_collections.keel.ops.plugins.module_utils._security.report import build, markdown

NOW = datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc)


def test_trust_over_tcp_is_critical_and_on_the_socket_high():
    rows = [(90, "host", ["all"], ["app"], "0.0.0.0", "trust"), (91, "local", ["all"], ["all"], None, "trust")]
    found = hba_findings(rows, "pg")
    assert [(f["severity"], f["target"]) for f in found] == [
        ("critical", "pg pg_hba.conf line 90"), ("high", "pg pg_hba.conf line 91")]
    assert "host connections from 0.0.0.0" in found[0]["title"]


def test_superusers_and_unlimited_login_roles_are_told_apart_from_the_bootstrap_superuser():
    found = role_findings([("postgres", True, -1, True), ("app", True, -1, False), ("web", False, -1, False),
                           ("batch", False, 10, False)], "pg")
    assert [(f["check"], f["severity"], f["target"]) for f in found] == [
        ("postgres.superuser", "medium", "pg role postgres"), ("postgres.superuser", "high", "pg role app"),
        ("postgres.connection_limit", "low", "pg role web")]
    assert found[1]["fix"].startswith('ALTER ROLE "app" NOSUPERUSER')


def test_redis_binding_every_interface_is_high_and_private_addresses_low():
    assert bind_findings("* -::*", "r")[0]["severity"] == "high"
    assert bind_findings("127.0.0.1 10.0.0.5", "r")[0]["severity"] == "low"
    assert bind_findings("127.0.0.1 -::1", "r") == []


def test_a_privileged_root_container_on_the_host_network_without_healthcheck_on_an_old_image():
    details = {"Name": "/app", "Config": {"User": "", "Image": "app:1", "Healthcheck": {"Test": ["NONE"]}},
               "HostConfig": {"Privileged": True, "PidMode": "host", "NetworkMode": "host"}}
    found = container_findings(details, NOW - datetime.timedelta(days=200), NOW, 90)
    assert sorted(f["check"] for f in found) == ["containers.host_network", "containers.host_pid",
                                                 "containers.no_healthcheck", "containers.old_image",
                                                 "containers.privileged", "containers.root"]
    tidy = {"Name": "/tidy", "Config": {"User": "1000", "Healthcheck": {"Test": ["CMD", "true"]}}, "HostConfig": {}}
    assert container_findings(tidy, NOW, NOW, 90) == []


def test_the_report_orders_worst_first_and_fails_from_the_chosen_severity():
    findings = [finding("a", "low", "x", "low one", "fix"), finding("b", "critical", "y", "bad | one", "fix"),
                finding("c", "high", "z", "high one", "fix")]
    assert [f["severity"] for f in ordered(findings)] == ["critical", "high", "low"]
    assert len(at_or_above(findings, "high")) == 2
    report = build(findings, "critical", "db1", "2026-12-06T00:00:00Z")
    assert report["result"] == "failed" and report["failing"] == 1 and report["counts"]["low"] == 1
    assert build(findings, "never")["result"] == "passed"
    assert "| critical | b | y | bad \\| one | fix |" in markdown(report)
    with pytest.raises(ValueError):
        build(findings, "severe")
