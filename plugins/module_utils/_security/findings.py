# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A security finding and its severity, shared by every security audit check: what is wrong, where, how bad, and
the fix - a statement or a setting the reader can apply, never a vague advice."""

SEVERITIES = ("info", "low", "medium", "high", "critical")


def finding(check, severity, target, title, fix, detail=None):
    if severity not in SEVERITIES:
        raise ValueError("unknown severity %s" % severity)
    return {"check": check, "severity": severity, "target": target, "title": title, "fix": fix, "detail": detail}


def rank(severity):
    return SEVERITIES.index(severity)


def at_or_above(findings, severity):
    """The findings at `severity` or worse."""
    return [item for item in findings if rank(item["severity"]) >= rank(severity)]


def ordered(findings):
    """Worst first, then by check and target."""
    return sorted(findings, key=lambda item: (-rank(item["severity"]), item["check"], str(item["target"])))


def counts(findings):
    return dict((severity, len([item for item in findings if item["severity"] == severity])) for severity in SEVERITIES)
