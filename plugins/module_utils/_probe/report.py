# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render health_probe results for people (a summary table) and for Prometheus (textfile collector format).

Both take results as health_probe returns them, keyed by inventory host, so the health_check role can hand
over what every host registered.
"""

from ansible_collections.keel.ops.plugins.module_utils._probe.status import SEVERITY, STATUSES, worst

COLUMNS = ("HOST", "CHECK", "KIND", "STATUS", "TIME", "MESSAGE")
MAX_MESSAGE = 100


def _shorten(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def _rows(results_by_host):
    for host in sorted(results_by_host):
        result = results_by_host[host] or {}
        for check in result.get("checks", []):
            duration = check.get("duration_ms")
            yield (host, check["name"], check["kind"], check["status"].upper(),
                   "" if duration is None else "%d ms" % round(duration),
                   _shorten(check.get("message", ""), MAX_MESSAGE))


def overall_status(results_by_host):
    """The worst status over every host that ran checks."""
    return worst(r.get("status", "unknown") for r in results_by_host.values() if r)


def summary_table(results_by_host):
    """Return the table as a list of lines: one row per check, worst last line is an overall tally."""
    rows = list(_rows(results_by_host))
    widths = [max([len(COLUMNS[i])] + [len(row[i]) for row in rows]) for i in range(len(COLUMNS) - 1)]

    def line(row):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        return "  ".join(cells + [row[-1]]).rstrip()

    tally = dict((status, sum(1 for row in rows if row[3] == status.upper())) for status in STATUSES)
    counts = ", ".join("%d %s" % (tally[s], s) for s in reversed(STATUSES) if tally[s])
    footer = "overall: %s (%s)" % (overall_status(results_by_host).upper(), counts or "no checks ran")
    return [line(COLUMNS)] + [line(row) for row in rows] + [footer]


def _label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels):
    return "{%s}" % ",".join('%s="%s"' % (key, _label(value)) for key, value in sorted(labels.items()))


def prometheus_text(results_by_host):
    """Return the results as Prometheus exposition text: per-check status, metric values, overall status."""
    status_help = "(0 healthy, 1 warning, 2 unknown, 3 critical)"
    lines = [
        "# HELP keel_health_status Status of one keel.ops health check %s." % status_help,
        "# TYPE keel_health_status gauge",
    ]
    metric_lines, overall_lines, duration_lines = [], [], []
    for host in sorted(results_by_host):
        result = results_by_host[host] or {}
        for check in result.get("checks", []):
            ids = dict(host=host, check=check["name"], kind=check["kind"])
            lines.append("keel_health_status%s %d" % (_labels(**ids), SEVERITY[check["status"]]))
            duration_lines.append("keel_health_check_duration_seconds%s %g"
                                  % (_labels(**ids), (check.get("duration_ms") or 0) / 1000.0))
            for name, metric in sorted(check.get("metrics", {}).items()):
                if isinstance(metric.get("value"), (int, float)) and not isinstance(metric["value"], bool):
                    metric_lines.append("keel_health_metric%s %g" % (
                        _labels(metric=name, unit=metric.get("unit") or "", **ids), metric["value"]))
        if result:
            overall = SEVERITY[result["status"]]
            overall_lines.append("keel_health_overall_status%s %d" % (_labels(host=host), overall))
    lines += ["# HELP keel_health_check_duration_seconds Time the last attempt of a check took.",
              "# TYPE keel_health_check_duration_seconds gauge"] + duration_lines
    lines += ["# HELP keel_health_metric Value measured by a keel.ops health check, in the unit label.",
              "# TYPE keel_health_metric gauge"] + metric_lines
    lines += ["# HELP keel_health_overall_status Worst check status of a host %s." % status_help,
              "# TYPE keel_health_overall_status gauge"] + overall_lines
    return "\n".join(lines) + "\n"


def report(results_by_host):
    """A compact JSON-ready report for webhooks: overall status, a one-line text, the table, per-host detail."""
    table = summary_table(results_by_host)
    hosts = {}
    for host, result in sorted(results_by_host.items()):
        if not result:
            continue
        hosts[host] = {
            "status": result["status"],
            "summary": result.get("summary", ""),
            "checks": [dict((key, check.get(key)) for key in ("name", "kind", "status", "message"))
                       for check in result.get("checks", [])],
        }
    return {"status": overall_status(results_by_host), "text": "keel.ops health check: " + table[-1],
            "table": table, "hosts": hosts}
