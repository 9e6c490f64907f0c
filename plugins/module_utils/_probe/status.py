# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health statuses, thresholds and the result of one check.

This file holds the vocabulary shared by the probe kinds (kinds.py, http.py) and the runner (runner.py):
how a metric value becomes a status, how statuses combine, and how one check's outcome is reported. It
imports nothing outside the standard library so it is trivially unit-testable.
"""

import time
from collections import namedtuple

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

HEALTHY = "healthy"
WARNING = "warning"
UNKNOWN = "unknown"
CRITICAL = "critical"

# Worst wins. Unknown ranks above warning: a check we could not evaluate must not look better than one
# that measured a problem, but it is not proof of an outage either.
SEVERITY = {HEALTHY: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}
STATUSES = tuple(sorted(SEVERITY, key=SEVERITY.get))

# fail_on value -> lowest status that fails the task.
FAIL_LEVEL = {"critical": UNKNOWN, "warning": WARNING}
FAIL_ON_CHOICES = ("critical", "warning", "never")


def worst(statuses):
    """Return the most severe of an iterable of statuses (healthy when it is empty)."""
    return max(statuses, key=SEVERITY.get, default=HEALTHY)


def is_failing(status, fail_on):
    """Tell whether a status fails a task run with the given fail_on policy."""
    if fail_on == "never":
        return False
    return SEVERITY[status] >= SEVERITY[FAIL_LEVEL[fail_on]]


MetricSpec = namedtuple("MetricSpec", "unit higher_is_worse warning critical")
"""How a metric is measured and judged: unit, direction, default warning and critical limits (None: none)."""


class Threshold:
    """Warning and critical limits for one metric; a value at or beyond a limit takes its status."""

    def __init__(self, warning=None, critical=None, higher_is_worse=True):
        self.warning = warning
        self.critical = critical
        self.higher_is_worse = higher_is_worse

    def _breaches(self, value, limit):
        if limit is None:
            return False
        return value >= limit if self.higher_is_worse else value <= limit

    def status_of(self, value):
        if self._breaches(value, self.critical):
            return CRITICAL
        if self._breaches(value, self.warning):
            return WARNING
        return HEALTHY

    def limit_for(self, status):
        return self.critical if status == CRITICAL else self.warning


def build_threshold(metric, spec, override, where):
    """Merge a user's {warning, critical} override into a metric's defaults, refusing inverted limits."""
    override = override or {}
    unknown = sorted(set(override) - {"warning", "critical"})
    if unknown:
        raise ConfigError("%s: thresholds.%s accepts only 'warning' and 'critical', not %s"
                          % (where, metric, ", ".join(unknown)))
    limits = {}
    for level in ("warning", "critical"):
        value = override.get(level, getattr(spec, level))
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError("%s: thresholds.%s.%s must be a number, got %r" % (where, metric, level, value))
        limits[level] = value
    warning, critical = limits["warning"], limits["critical"]
    if warning is not None and critical is not None:
        inverted = warning > critical if spec.higher_is_worse else warning < critical
        if inverted:
            direction = "higher" if spec.higher_is_worse else "lower"
            raise ConfigError(
                "%s: thresholds.%s: warning (%g) must come before critical (%g); %s values are worse for %s, "
                "so set warning %s critical" % (where, metric, warning, critical, direction, metric,
                                                "below" if spec.higher_is_worse else "above"))
    return Threshold(warning, critical, spec.higher_is_worse)


def format_value(value, unit):
    """Render a metric for humans: '12.3 ms', '87.5%', '3 days'."""
    if isinstance(value, float) and not value.is_integer():
        text = "%.1f" % value if abs(value) < 100 else "%.0f" % value
    elif isinstance(value, float):
        text = "%d" % value
    else:
        text = str(value)
    if unit == "%":
        return text + "%"
    return "%s %s" % (text, unit) if unit else text


class CheckResult:
    """Outcome of one check: measured metrics with their statuses, plus problems found along the way."""

    def __init__(self, name, kind, target):
        self.name = name
        self.kind = kind
        self.target = target
        self.metrics = {}
        self.details = {}
        self._problems = []  # (status, text)
        self._notes = []
        self.duration_ms = None
        self.attempts = 1

    def problem(self, status, text):
        """Record something wrong that is not a metric (refused connection, wrong status code...)."""
        self._problems.append((status, text))

    def note(self, text):
        """Record a fact for the message of a healthy check ('HTTP 200')."""
        self._notes.append(text)

    def metric(self, name, value, unit, threshold):
        """Record a measured value and judge it; value None means 'not applicable here'."""
        status = HEALTHY if value is None else threshold.status_of(value)
        self.metrics[name] = {
            "value": value,
            "unit": unit,
            "status": status,
            "warning": threshold.warning,
            "critical": threshold.critical,
        }
        if status != HEALTHY:
            limit = threshold.limit_for(status)
            side = "above" if threshold.higher_is_worse else "below"
            self._problems.append((status, "%s %s is at or %s %s %s" % (
                name, format_value(value, unit), side, status, format_value(limit, unit))))
        return status

    @property
    def status(self):
        return worst(status for status, _text in self._problems)

    @property
    def message(self):
        ranked = sorted(self._problems, key=lambda p: -SEVERITY[p[0]])
        if ranked:
            return "; ".join(text for _status, text in ranked)
        return ", ".join(self._notes) or "ok"

    def as_dict(self):
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "status": self.status,
            "healthy": self.status == HEALTHY,
            "message": self.message,
            "metrics": self.metrics,
            "details": self.details,
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
        }


def elapsed_ms(started):
    """Milliseconds since `started` (a time.monotonic() reading), as every check reports its own duration."""
    return round((time.monotonic() - started) * 1000.0, 1)
