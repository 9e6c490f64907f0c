# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the backup role says about a run: each part's outcome taken from the modules' results (saved or failed,
verified or not), a summary for people and notifications, and Prometheus textfile metrics per source."""

KINDS = ("postgres", "redis", "files", "offsite")


def _items(results):
    """The task results of a registered variable: a loop's items, or the one result."""
    if not isinstance(results, dict):
        return []
    items = results["results"] if isinstance(results.get("results"), list) else [results]
    return [item for item in items if isinstance(item, dict) and not item.get("skipped")]


def _source_of(item):
    label = item.get("item")
    if isinstance(label, dict):
        label = label.get("name") or label.get("source") or ",".join(label.get("paths") or [])
    return item.get("source") or (str(label) if label not in (None, "") else "?")


def parts_of(results, kind, verified=None):
    """One part per backup attempted: {kind, source, status (saved or failed), backup_id, size, raw_size,
    duration, verified, error}. A backup whose verification (in `verified`) failed is a failed part."""
    checks = {item.get("backup_id") or (item.get("invocation") or {}).get("module_args", {}).get("backup_id"): item
              for item in _items(verified)}
    parts = []
    for item in _items(results):
        failed = bool(item.get("failed")) or not item.get("backup_id")
        part = {"kind": kind, "source": _source_of(item), "status": "failed" if failed else "saved",
                "backup_id": item.get("backup_id"), "size": item.get("size"), "raw_size": item.get("raw_size"),
                "duration": item.get("duration"), "verified": None, "error": item.get("msg") if failed else None}
        check = checks.get(item.get("backup_id")) if not failed else None
        if check is not None:
            part["verified"] = not check.get("failed")
            if check.get("failed"):
                part.update(status="failed", error="the backup was taken, but its verification failed: %s"
                            % check.get("msg"))
        parts.append(part)
    return parts


def copy_parts(results):
    """The offsite copy's outcome, one part per source copied (or one failed part)."""
    parts = []
    for item in _items(results):
        if item.get("failed"):
            parts.append({"kind": "offsite", "source": _source_of(item), "status": "failed", "error": item.get("msg"),
                          "backup_id": None, "size": None, "duration": None, "verified": None})
            continue
        for source in item.get("sources") or []:
            parts.append({"kind": "offsite", "source": source["source"], "status": "saved", "error": None,
                          "backup_id": (source["copied"] or source["present"] or [None])[-1], "size": source["bytes"],
                          "copied": len(source["copied"]), "duration": None, "verified": None})
    return parts


def _size(value):
    return "%.1f MB" % (value / 1e6) if isinstance(value, (int, float)) else "-"


def summary(parts, host):
    """(subject, text): a line per part, failures first, for the play's output and for notify."""
    failed = [part for part in parts if part["status"] == "failed"]
    saved = [part for part in parts if part["status"] == "saved"]
    subject = "Backups on %s: %d saved, %d failed" % (host, len(saved), len(failed))
    lines = []
    for part in failed + saved:
        if part["status"] == "failed":
            lines.append("FAILED %s %s: %s" % (part["kind"], part["source"], part["error"]))
        elif part["kind"] == "offsite":
            lines.append("ok     offsite %s: %d copied (%s), newest %s" % (
                part["source"], part.get("copied", 0), _size(part["size"]), part["backup_id"]))
        else:
            lines.append("ok     %s %s: %s stored in %.1f s, backup %s%s" % (
                part["kind"], part["source"], _size(part["size"]), part["duration"] or 0, part["backup_id"],
                ", verified" if part["verified"] else ""))
    return subject, "\n".join(lines) if lines else "nothing was configured to back up"


def _labels(kind, source):
    return 'kind="%s",source="%s"' % (kind, str(source).replace("\\", "\\\\").replace('"', '\\"'))


def prometheus_text(parts, now, locations=()):
    """Metrics for node_exporter's textfile collector. The last success of each source comes from the repository
    (backup_location_info results in `locations`), so a failed run never hides when a source was last saved."""
    lines = ["# HELP keel_backup_run_success Whether this run saved (1) or failed (0) the part.",
             "# TYPE keel_backup_run_success gauge"]
    lines += ["keel_backup_run_success{%s} %d" % (_labels(p["kind"], p["source"]), p["status"] == "saved")
              for p in parts]
    lines += ["# HELP keel_backup_size_bytes Bytes stored by this run's backup of the source.",
              "# TYPE keel_backup_size_bytes gauge"]
    lines += ["keel_backup_size_bytes{%s} %d" % (_labels(p["kind"], p["source"]), p["size"])
              for p in parts if p["status"] == "saved" and p["kind"] != "offsite" and p["size"] is not None]
    lines += ["# HELP keel_backup_duration_seconds Seconds this run's backup of the source took.",
              "# TYPE keel_backup_duration_seconds gauge"]
    lines += ["keel_backup_duration_seconds{%s} %s" % (_labels(p["kind"], p["source"]), p["duration"])
              for p in parts if p["status"] == "saved" and p["duration"] is not None]
    lines += ["# HELP keel_backup_last_success_timestamp_seconds When the newest complete backup was taken.",
              "# TYPE keel_backup_last_success_timestamp_seconds gauge"]
    for location in locations or ():
        for source in location.get("sources") or []:
            if source.get("newest_epoch") is not None:
                lines.append('keel_backup_last_success_timestamp_seconds{%s,location="%s"} %d' % (
                    _labels(source["kind"], source["source"]), location.get("location", ""), source["newest_epoch"]))
    lines += ["# HELP keel_backup_run_timestamp_seconds When this run ended.",
              "# TYPE keel_backup_run_timestamp_seconds gauge", "keel_backup_run_timestamp_seconds %d" % now]
    return "\n".join(lines) + "\n"
