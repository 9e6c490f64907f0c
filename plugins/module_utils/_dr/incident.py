# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline of an incident first response: what each step found or did, in order, and the outcome - healthy
all along, stabilised, or still unhealthy - with a Markdown rendering and a one-line summary for notifications."""


def _health(result):
    """(healthy, summary, failing) of a health_probe result; a missing one is not healthy."""
    result = result or {}
    return bool(result.get("healthy")), result.get("summary") or "not assessed", list(result.get("failing") or [])


def outcome(before, after):
    """healthy (nothing was wrong), stabilised (wrong, then right) or unhealthy (still wrong)."""
    if _health(after)[0]:
        return "healthy" if _health(before)[0] else "stabilised"
    return "unhealthy"


def report(incident_id, host, events, before, after, folder=""):
    status = outcome(before, after)
    failing = _health(after)[2]
    summary = {"healthy": "%s: healthy, nothing to stabilise" % host,
               "stabilised": "%s: stabilised (%s)" % (host, _health(after)[1]),
               "unhealthy": "%s: STILL UNHEALTHY after first response: %s" % (host, ", ".join(failing) or _health(after)[1])}
    return {"id": incident_id, "host": host, "status": status, "summary": summary[status], "folder": folder,
            "before": _health(before)[1], "after": _health(after)[1], "failing": failing, "events": list(events)}


def _cell(value):
    return str(value if value not in (None, "") else "-").replace("|", "\\|").replace("\n", " ")


def markdown(incident):
    lines = ["# Incident %s on %s: %s" % (incident["id"], incident["host"], incident["status"].upper()), "",
             "- Before: %s" % incident["before"], "- After: %s" % incident["after"],
             "- State captured in: %s" % (incident["folder"] or "-"), "",
             "| Time | Step | Result | Detail |", "|---|---|---|---|"]
    for event in incident["events"]:
        lines.append("| %s |" % " | ".join(_cell(event.get(key)) for key in ("time", "step", "result", "detail")))
    return "\n".join(lines) + "\n"
