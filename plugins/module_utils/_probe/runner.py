# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate health checks, run them concurrently with retries and a deadline, and aggregate the results."""

import json
import re
import threading
import time
from collections import namedtuple
from urllib.parse import parse_qsl, urlsplit

from ansible.module_utils.common.text.converters import to_text
from ansible_collections.keel.ops.plugins.module_utils._argspecs import health_check_aliases
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError
from ansible_collections.keel.ops.plugins.module_utils._probe.http import REDIRECT_POLICIES, redirect_policy
from ansible_collections.keel.ops.plugins.module_utils._probe.kinds import (
    CHECK_KINDS,
    jmespath_error,
    library_available,
)
from ansible_collections.keel.ops.plugins.module_utils._probe.status import (
    HEALTHY,
    SEVERITY,
    STATUSES,
    UNKNOWN,
    CheckResult,
    build_threshold,
    is_failing,
    worst,
)
from ansible_collections.keel.ops.plugins.module_utils._redact import looks_secret, mask_url

COMMON_OPTIONS = ("name", "kind", "timeout", "thresholds")
ALIASES = health_check_aliases()

Check = namedtuple("Check", "name kind target options timeout thresholds")

# How far past its own timeout a check may run before the runner gives up on it. Probes report their own
# timeouts precisely ("no response within 5s"); this only catches one stuck where no timeout reaches.
OVERRUN_GRACE = 1.0


def _describe(index, raw):
    name = raw.get("name")
    return "checks[%d]%s" % (index, " (%s)" % name if name else "")


def _require_library(where, import_name, pip_name, purpose):
    if not library_available(import_name):
        raise DependencyError(
            "%s: %s needs the Python library '%s' on the host that runs the module; install it there "
            "(pip install %s) or run the check from a host that has it (delegate_to)"
            % (where, purpose, import_name, pip_name))


def _kind_options(where, kind, spec, raw):
    """Fill a kind's defaults and refuse options that belong to other kinds or are missing."""
    foreign = sorted(key for key, value in raw.items()
                     if value is not None and key not in COMMON_OPTIONS and key not in spec.options)
    if foreign:
        raise ConfigError("%s: option %s does not apply to %s checks; %s checks accept %s"
                          % (where, ", ".join(foreign), kind, kind, ", ".join(sorted(spec.options))))
    options = dict((key, raw.get(key) if raw.get(key) is not None else default)
                   for key, default in spec.options.items())
    for required in spec.required:
        alternatives = required if isinstance(required, tuple) else (required,)
        if not any(options.get(key) not in (None, "", []) for key in alternatives):
            raise ConfigError("%s: %s checks need %s" % (where, kind, " or ".join(alternatives)))
    return options


def _validate_http(where, options):
    policy = redirect_policy(options["follow_redirects"])
    if policy is None:
        raise ConfigError("%s: follow_redirects must be one of %s, got %r"
                          % (where, ", ".join(REDIRECT_POLICIES), options["follow_redirects"]))
    options["follow_redirects"] = policy
    if options["body_regex"]:
        try:
            re.compile(options["body_regex"])
        except re.error as error:
            raise ConfigError("%s: body_regex '%s' is not a valid regular expression: %s"
                              % (where, options["body_regex"], error))
    if options["expect"] is not None and not options["jmespath"]:
        raise ConfigError("%s: expect needs a jmespath expression that selects the value to compare" % where)
    if options["jmespath"]:
        _require_library(where, "jmespath", "jmespath", "the jmespath option")
        error = jmespath_error(options["jmespath"])
        if error:
            raise ConfigError("%s: jmespath '%s' is not a valid expression: %s" % (where, options["jmespath"], error))


def _canonical(raw):
    """The check with every option under its own name: AnsibleModule keeps an alias beside its option, and callers
    without AnsibleModule give only the alias."""
    canonical = dict(raw)
    for alias, name in ALIASES.items():
        value = canonical.pop(alias, None)
        if value is not None and canonical.get(name) is None:
            canonical[name] = value
    return canonical


def build_check(index, raw, default_timeout):
    """Turn one user-supplied check dict into a validated Check."""
    raw = _canonical(raw)
    where = _describe(index, raw)
    kind = raw.get("kind")
    if kind not in CHECK_KINDS:
        raise ConfigError("%s: kind must be one of %s, got %r" % (where, ", ".join(sorted(CHECK_KINDS)), kind))
    spec = CHECK_KINDS[kind]
    options = _kind_options(where, kind, spec, raw)
    if spec.library:
        _require_library(where, spec.library[0], spec.library[1], "a %s check" % kind)
    if kind == "http":
        _validate_http(where, options)
    timeout = raw.get("timeout") or default_timeout
    if timeout <= 0:
        raise ConfigError("%s: timeout must be more than 0 seconds, got %s" % (where, timeout))
    overrides = raw.get("thresholds") or {}
    unknown = sorted(set(overrides) - set(spec.metrics))
    if unknown:
        raise ConfigError("%s: thresholds for %s, but %s checks measure only %s"
                          % (where, ", ".join(unknown), kind, ", ".join(sorted(spec.metrics))))
    thresholds = dict((metric, build_threshold(metric, metric_spec, overrides.get(metric), where))
                      for metric, metric_spec in spec.metrics.items())
    target = spec.target(options)
    name = raw.get("name") or "%s %s" % (kind, target)
    return Check(name, kind, target, options, float(timeout), thresholds)


def build_checks(raw_checks, default_timeout):
    """Validate every check up front, so a typo fails the task before anything is probed."""
    if not raw_checks:
        raise ConfigError("checks is empty: give at least one check (kind: http, tcp, postgres, redis, "
                          "system or tls_cert)")
    checks = [build_check(index, raw, default_timeout) for index, raw in enumerate(raw_checks)]
    seen = set()
    for check in checks:
        if check.name in seen:
            raise ConfigError("two checks are named '%s'; give each check a unique name, results are keyed "
                              "by it" % check.name)
        seen.add(check.name)
    return checks


def _url_password(url):
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _secret_fields(value, secret=False):
    """The strings and numbers held under secret-looking keys of a body, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_fields(item, secret or looks_secret(str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _secret_fields(item, secret)
    elif secret and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield str(value)


def _body_secrets(body):
    if isinstance(body, (bytes, str)):
        text = to_text(body, errors="surrogate_or_replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = dict(parse_qsl(text))  # a form; any other text has no fields to tell apart
    return _secret_fields(body)


def check_secrets(raw_checks):
    """What no output may show beyond the no_log options: each URL that carries a credential (where mask_url
    would hide something) and its password, and the values of a body's secret-looking fields. Modules add
    these to their no_log values, so Ansible masks them everywhere, the invocation included."""
    secrets = set()
    for raw in raw_checks or []:
        url = raw.get("url")
        if isinstance(url, str) and mask_url(url) != url:
            secrets.update((url, _url_password(url)))
        secrets.update(_body_secrets(raw.get("body")))
    return sorted(secret for secret in secrets if secret)


def validate_run_options(options):
    """Refuse negative retries, delays and deadlines, and a concurrency below one."""
    for name in ("retries", "delay", "deadline", "timeout"):
        value = options.get(name)
        if value is not None and value < 0:
            raise ConfigError("%s must be 0 or more, got %s" % (name, value))
    if options.get("concurrency") is not None and options["concurrency"] < 1:
        raise ConfigError("concurrency must be at least 1, got %s" % options["concurrency"])


def run_check(check, timeout):
    """Run one check; an unexpected error becomes an 'unknown' result, never a traceback."""
    result = CheckResult(check.name, check.kind, check.target)
    started = time.monotonic()
    try:
        CHECK_KINDS[check.kind].probe(check.options, result, timeout, check.thresholds)
    except Exception as error:  # pylint: disable=broad-except
        result.problem(UNKNOWN, "probe error: %s: %s" % (error.__class__.__name__, error))
    result.duration_ms = round((time.monotonic() - started) * 1000.0, 1)
    return result


def _unfinished(check, deadline):
    result = CheckResult(check.name, check.kind, check.target)
    result.problem(UNKNOWN, "did not finish within the %gs deadline" % deadline)
    return result


def _overran(check, started):
    result = CheckResult(check.name, check.kind, check.target)
    result.problem(UNKNOWN, "did not finish within its %gs timeout" % check.timeout)
    result.duration_ms = round((time.monotonic() - started) * 1000.0, 1)
    return result


class _Round:
    """One round of checks, each on a daemon thread of its own, at most `concurrency` at a time.

    Not concurrent.futures: the interpreter joins its workers at exit, so a check stuck in a DNS lookup or a
    slow-drip body kept the module alive long after it had answered. A check that overruns its own timeout by
    OVERRUN_GRACE is given up (unknown) and frees its slot; its thread dies with the process.
    """

    def __init__(self, checks, concurrency, remaining):
        self.checks = list(checks)
        self.concurrency = concurrency
        self.end = None if remaining is None else time.monotonic() + remaining
        self.cond = threading.Condition()
        self.waiting = list(range(len(self.checks)))
        self.running = {}  # index -> monotonic start
        self.finished = {}  # index -> CheckResult, posted by the check's thread
        self.results = {}  # index -> CheckResult, what the round reports

    def _run_one(self, index):
        check = self.checks[index]
        result = run_check(check, check.timeout)
        with self.cond:
            self.finished[index] = result
            self.cond.notify()

    def _cutoff(self, index):
        return self.running[index] + self.checks[index].timeout + OVERRUN_GRACE

    def _launch(self, now):
        while self.waiting and len(self.running) < self.concurrency:
            index = self.waiting.pop(0)
            self.running[index] = now
            threading.Thread(target=self._run_one, args=(index,), name="health-check-%d" % index,
                             daemon=True).start()

    def _reap(self, now):
        for index in list(self.running):
            if index in self.finished:
                self.results[index] = self.finished[index]
            elif now >= self._cutoff(index):
                self.results[index] = _overran(self.checks[index], self.running[index])
            else:
                continue
            del self.running[index]

    def run(self, deadline):
        with self.cond:
            while True:
                now = time.monotonic()
                self._reap(now)
                if (self.end is not None and now >= self.end) or not (self.waiting or self.running):
                    break
                self._launch(now)
                wake = min([self._cutoff(index) for index in self.running] + [self.end or float("inf")])
                self.cond.wait(max(0.0, wake - now))
        return [self.results.get(index) or _unfinished(check, deadline) for index, check in enumerate(self.checks)]


def run_concurrently(checks, concurrency, remaining, deadline):
    """Run checks concurrently; those still running or queued when `remaining` seconds pass come back unknown,
    and so does one that overruns its own timeout (stuck where no socket timeout reaches)."""
    return _Round(checks, max(1, concurrency), remaining).run(deadline)


def probe(checks, fail_on="critical", retries=0, delay=1.0, deadline=None, concurrency=32,
          clock=time.monotonic, sleep=time.sleep):
    """Run all checks, retrying the failing ones, and return the aggregated result dict."""
    started = clock()
    results = {}
    pending = list(checks)
    attempt = 0
    while pending:
        attempt += 1
        remaining = None if deadline is None else max(0.0, deadline - (clock() - started))
        for result in run_concurrently(pending, concurrency, remaining, deadline):
            result.attempts = attempt
            results[result.name] = result
        # Retry only what would fail the task; with fail_on=never, retry whatever is critical or unknown.
        retry_on = fail_on if fail_on != "never" else "critical"
        pending = [check for check in pending if is_failing(results[check.name].status, retry_on)]
        if not pending or attempt > retries:
            break
        if deadline is not None and clock() - started + delay >= deadline:
            break
        sleep(delay)
    return summarize([results[check.name] for check in checks], attempt, clock() - started)


def one_line(results):
    """The failing checks, worst first, in one line: 'redis (redis localhost:6379) critical: ...'."""
    failing = sorted((r for r in results if r.status != HEALTHY), key=lambda r: -SEVERITY[r.status])
    return "; ".join("%s (%s) %s: %s" % (r.name, r.kind, r.status, r.message) for r in failing)


def summarize(results, attempts, elapsed):
    overall = worst(r.status for r in results)
    counts = dict((status, sum(1 for r in results if r.status == status)) for status in STATUSES)
    if overall == HEALTHY:
        summary = "healthy: all %d checks healthy" % len(results)
    else:
        summary = "%s: %d of %d checks not healthy: %s" % (
            overall, len(results) - counts[HEALTHY], len(results), one_line(results))
    checks = [r.as_dict() for r in results]
    return {
        "status": overall,
        "healthy": overall == HEALTHY,
        "summary": summary,
        "counts": counts,
        "failing": [r.name for r in results if r.status != HEALTHY],
        "checks": checks,
        "by_name": dict((c["name"], c) for c in checks),
        "attempts": attempts,
        "duration_ms": round(elapsed * 1000.0, 1),
    }
