# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security audit report: every check's findings in one list, worst first, with counts, the ones at or above
the chosen severity that fail the run, the audit trail's summary, and the Markdown of it all."""

from ansible_collections.keel.ops.plugins.module_utils._security.findings import SEVERITIES, at_or_above, counts, ordered


def build(findings, fail_on="high", host=None, time=None, trail=None, checked=None):
    if fail_on not in SEVERITIES + ("never",):
        raise ValueError("fail_on must be one of %s or never" % ", ".join(SEVERITIES))
    everything = ordered(list(findings))
    failing = [] if fail_on == "never" else at_or_above(everything, fail_on)
    return {"host": host, "time": time, "fail_on": fail_on, "result": "failed" if failing else "passed",
            "counts": counts(everything), "findings": everything, "failing": len(failing), "checked": checked or {},
            "audit_trail": trail}


def markdown(report):
    lines = ["# Security audit of %s: %s" % (report["host"], report["result"]), "",
             "- %s; failing at %s and above: %d" % (report["time"], report["fail_on"], report["failing"]),
             "- Findings: %s" % ", ".join("%d %s" % (report["counts"][s], s) for s in reversed(SEVERITIES)), ""]
    if report["checked"]:
        lines += ["- Checked: %s" % ", ".join("%s (%s)" % item for item in sorted(report["checked"].items())), ""]
    lines += ["| severity | check | target | finding | fix |", "|---|---|---|---|---|"]
    for item in report["findings"]:
        lines.append("| %s | %s | %s | %s | %s |" % tuple(str(item[key]).replace("|", "\\|") for key in (
            "severity", "check", "target", "title", "fix")))
    trail = report.get("audit_trail")
    if trail:
        lines += ["", "## Audit trail, last %d days" % trail["days"], "",
                  "- %d entries; by result: %s" % (trail["entries"], ", ".join("%s %d" % i for i in sorted(trail["by_result"].items())) or "none"),
                  "- By module: %s" % (", ".join("%s %d" % i for i in sorted(trail["by_module"].items())) or "none"),
                  "- By actor: %s" % (", ".join("%s %d" % i for i in sorted(trail["by_actor"].items())) or "none")]
        for item in trail["failed"]:
            lines.append("- failed: %s %s on %s by %s" % (item.get("time"), item.get("module"), item.get("host"),
                                                          item.get("actor")))
    return "\n".join(lines) + "\n"
