"""The probe runner: checks built from options, run concurrently within timeouts and a deadline, retried."""

import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._probe import kinds
from ansible_collections.keel.ops.plugins.module_utils._probe.runner import (
    build_check,
    build_checks,
    check_secrets,
    probe,
    validate_run_options,
)
from ansible_collections.keel.ops.plugins.module_utils._probe.status import CRITICAL, MetricSpec, WARNING


def http(**extra):
    check = {"kind": "http", "url": "http://127.0.0.1:9/health"}
    check.update(extra)
    return check


def test_defaults_fill_in_and_name_comes_from_the_target():
    check = build_check(0, http(), 5)
    assert check.name == "http http://127.0.0.1:9/health"
    assert check.options["method"] == "GET" and check.options["status_code"] == [200]
    assert check.timeout == 5.0
    assert check.thresholds["response_time"].warning is None


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ConfigError, match=r"checks\[0\]: kind must be one of http, postgres, redis, system, "
                                          r"tcp, tls_cert, got 'htp'"):
        build_check(0, {"kind": "htp"}, 5)


def test_option_of_another_kind_is_refused():
    with pytest.raises(ConfigError, match=r"checks\[2\] \(db\): option url does not apply to tcp checks"):
        build_check(2, {"name": "db", "kind": "tcp", "host": "h", "port": 1, "url": "http://x"}, 5)


def test_missing_required_option():
    with pytest.raises(ConfigError, match="tcp checks need port"):
        build_check(0, {"kind": "tcp", "host": "h"}, 5)
    with pytest.raises(ConfigError, match="tls_cert checks need host or pem_file"):
        build_check(0, {"kind": "tls_cert"}, 5)


def test_thresholds_for_a_metric_the_kind_does_not_measure():
    with pytest.raises(ConfigError, match="thresholds for hit_rate, but http checks measure only response_time"):
        build_check(0, http(thresholds={"hit_rate": {"warning": 1}}), 5)


def test_bad_regex_and_jmespath_are_caught_before_probing():
    with pytest.raises(ConfigError, match="body_regex '\\(' is not a valid regular expression"):
        build_check(0, http(body_regex="("), 5)
    with pytest.raises(ConfigError, match="jmespath 'status\\[' is not a valid expression"):
        build_check(0, http(jmespath="status["), 5)
    with pytest.raises(ConfigError, match="expect needs a jmespath expression"):
        build_check(0, http(expect="ok"), 5)


def test_duplicate_names_and_empty_list():
    with pytest.raises(ConfigError, match="two checks are named 'a'"):
        build_checks([http(name="a"), http(name="a")], 5)
    with pytest.raises(ConfigError, match="checks is empty"):
        build_checks([], 5)


def test_missing_library_names_the_package(monkeypatch):
    monkeypatch.setitem(kinds._LIBRARY_MODULES, "psycopg2", None)
    with pytest.raises(Exception, match="a postgres check needs the Python library 'psycopg2'.*pip install "
                                        "psycopg2-binary"):
        build_check(0, {"kind": "postgres"}, 5)


@pytest.mark.parametrize("options, message", [
    ({"retries": -1}, "retries must be 0 or more, got -1"),
    ({"deadline": -2.0}, "deadline must be 0 or more"),
    ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
])
def test_run_options(options, message):
    with pytest.raises(ConfigError, match=message):
        validate_run_options(options)


class FakeKind:
    """A kind whose outcome is scripted per name: a list of statuses, one per attempt."""

    def __init__(self, script, sleep=0.0):
        self.script = script
        self.calls = []
        self.sleep = sleep

    def __call__(self, options, result, timeout, thresholds):
        self.calls.append(options["host"])
        time.sleep(self.sleep)
        outcomes = self.script[options["host"]]
        status = outcomes[min(len([c for c in self.calls if c == options["host"]]) - 1, len(outcomes) - 1)]
        if status == "boom":
            raise RuntimeError("exploded")
        if status != "healthy":
            result.problem(status, "scripted %s" % status)
        result.metric("latency", 1.0, "ms", thresholds["latency"])


@pytest.fixture
def fake(monkeypatch):
    def install(script, sleep=0.0):
        kind = FakeKind(script, sleep)
        spec = kinds.KindSpec(options={"host": None}, required=("host",),
                              metrics={"latency": MetricSpec("ms", True, None, None)},
                              target=lambda c: c["host"], probe=kind, library=None)
        monkeypatch.setitem(kinds.CHECK_KINDS, "fake", spec)
        checks = build_checks([{"kind": "fake", "name": host, "host": host} for host in script], 5)
        return kind, checks
    return install


def test_retries_rerun_only_failing_checks_until_they_pass(fake):
    kind, checks = fake({"a": ["healthy"], "b": ["critical", "critical", "healthy"]})
    slept = []
    result = probe(checks, retries=5, delay=0.5, sleep=slept.append)
    assert result["status"] == "healthy"
    assert kind.calls.count("a") == 1 and kind.calls.count("b") == 3
    assert result["attempts"] == 3 and slept == [0.5, 0.5]
    assert result["by_name"]["b"]["attempts"] == 3


def test_retries_are_bounded_and_failure_names_the_check(fake):
    kind, checks = fake({"a": ["healthy"], "b": ["critical"]})
    result = probe(checks, retries=2, delay=0, sleep=lambda s: None)
    assert kind.calls.count("b") == 3
    assert result["status"] == CRITICAL and result["failing"] == ["b"]
    assert result["summary"] == "critical: 1 of 2 checks not healthy: b (fake) critical: scripted critical"


def test_warning_is_not_retried_unless_fail_on_warning(fake):
    kind, checks = fake({"w": ["warning", "healthy"]})
    assert probe(checks, retries=3, sleep=lambda s: None)["status"] == WARNING
    assert kind.calls == ["w"]
    assert probe(checks, retries=3, fail_on="warning", sleep=lambda s: None)["status"] == "healthy"


def test_an_exception_in_a_probe_is_unknown_not_a_traceback(fake):
    _kind, checks = fake({"x": ["boom"]})
    result = probe(checks)
    assert result["by_name"]["x"]["status"] == "unknown"
    assert result["by_name"]["x"]["message"] == "probe error: RuntimeError: exploded"


def test_deadline_reports_unfinished_checks_unknown(fake):
    _kind, checks = fake({"slow": ["healthy"]}, sleep=1.0)
    started = time.monotonic()
    result = probe(checks, deadline=0.2)
    assert time.monotonic() - started < 0.9
    assert result["by_name"]["slow"]["status"] == "unknown"
    assert "did not finish within the 0.2s deadline" in result["summary"]


def test_checks_run_concurrently(fake):
    _kind, checks = fake(dict(("h%d" % i, ["healthy"]) for i in range(20)), sleep=0.2)
    started = time.monotonic()
    result = probe(checks, concurrency=20)
    elapsed = time.monotonic() - started
    assert result["counts"]["healthy"] == 20
    assert elapsed < 1.0, "20 checks of 0.2 s took %.2f s: not concurrent" % elapsed


def test_counts_and_order_follow_the_input(fake):
    _kind, checks = fake({"z": ["healthy"], "y": ["warning"], "x": ["critical"]})
    result = probe(checks, fail_on="never")
    assert [c["name"] for c in result["checks"]] == ["z", "y", "x"]
    assert result["counts"] == {"healthy": 1, "warning": 1, "unknown": 0, "critical": 1}
    assert result["summary"].startswith("critical: 2 of 3 checks not healthy: x (fake) critical")


# --- checks that never return (a DNS lookup that hangs, a C library stuck in a read) ------------------------

HANG = threading.Event()  # never set: a check waiting on it is stuck for good


def finishes_within(seconds, function, *args, **kwargs):
    """Run function in a thread and return its value, failing (instead of hanging the suite) if it is late."""
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(value=function(*args, **kwargs)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "%s did not return within %ss" % (function.__name__, seconds)
    return outcome["value"]


@pytest.fixture
def stuck(monkeypatch):
    """A kind whose check on host 'stuck' blocks forever, as a resolver that never answers does."""
    def probe_stuck(options, result, timeout, thresholds):
        if options["host"] == "stuck":
            HANG.wait()
        result.note("answered")

    spec = kinds.KindSpec(options={"host": None}, required=("host",), metrics={},
                          target=lambda c: c["host"], probe=probe_stuck, library=None)
    monkeypatch.setitem(kinds.CHECK_KINDS, "stuck", spec)
    return lambda *hosts, **extra: build_checks([dict({"kind": "stuck", "name": h, "host": h}, **extra)
                                                 for h in hosts], 5)


def test_a_check_stuck_past_its_own_timeout_is_unknown_and_frees_its_slot(stuck):
    checks = stuck("stuck", "next", timeout=0.3)
    result = finishes_within(20, probe, checks, concurrency=1)
    assert result["by_name"]["stuck"]["status"] == "unknown"
    assert result["by_name"]["stuck"]["message"] == "did not finish within its 0.3s timeout"
    assert result["by_name"]["next"]["status"] == "healthy", "the stuck check kept the only slot"


def test_the_deadline_ends_a_round_with_stuck_and_queued_checks(stuck):
    result = finishes_within(20, probe, stuck("stuck", "queued"), concurrency=1, deadline=0.3)
    assert [c["status"] for c in result["checks"]] == ["unknown", "unknown"]
    assert result["by_name"]["queued"]["message"] == "did not finish within the 0.3s deadline"


STUCK_SCRIPT = """
import threading
from ansible_collections.keel.ops.plugins.module_utils._probe import kinds
from ansible_collections.keel.ops.plugins.module_utils._probe import runner

def hang(options, result, timeout, thresholds):
    threading.Event().wait()

kinds.CHECK_KINDS["stuck"] = kinds.KindSpec({"host": None}, (), {}, lambda c: c["host"], hang, None)
checks = runner.build_checks([{"kind": "stuck", "host": "h%d" % i} for i in range(3)], 5)
print(runner.probe(checks, deadline=0.3)["status"])
"""


def test_stuck_checks_do_not_keep_the_process_alive():
    proc = subprocess.run([sys.executable, "-c", STUCK_SCRIPT], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "unknown"


def test_follow_redirects_takes_a_policy_or_a_former_boolean():
    assert build_check(0, http(), 5).options["follow_redirects"] == "same_origin"
    assert build_check(0, http(follow_redirects="yes"), 5).options["follow_redirects"] == "same_origin"
    assert build_check(0, http(follow_redirects=False), 5).options["follow_redirects"] == "none"
    with pytest.raises(ConfigError, match="follow_redirects must be one of same_origin, safe, none, got 'all'"):
        build_check(0, http(follow_redirects="all"), 5)


def test_a_url_with_credentials_is_named_and_shown_masked():
    check = build_check(0, http(url="https://mon:pw@h/health?token=t&x=1"), 5)
    assert check.name == "http https://mon:***@h/health?token=***&x=1" and check.target == check.name[5:]
    assert check.options["url"] == "https://mon:pw@h/health?token=t&x=1"  # what is requested stays intact


@pytest.mark.parametrize("raw, secrets", [
    (http(), []),
    (http(url="https://mon:pw@h/health?token=t&x=1"), ["https://mon:pw@h/health?token=t&x=1", "pw"]),
    (http(url="https://h/?sig=abc"), ["https://h/?sig=abc"]),
    (http(body={"user": "u", "auth": {"password": "p1", "otp": 123456}, "tokens": ["a", "b"], "n": 1}),
     ["123456", "a", "b", "p1"]),
    (http(body='{"api_key": "k"}'), ["k"]),
    (http(body="user=u&password=p%40ss"), ["p@ss"]),
    (http(body="ping"), []),
    ({"kind": "tcp", "host": "h", "port": 1}, []),
])
def test_check_secrets(raw, secrets):
    assert check_secrets([raw]) == secrets
