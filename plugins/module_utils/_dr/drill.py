# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A DR drill's findings: each source restored into a scratch target and proven, the RTO (the restores' time to
usable, one after the other) and RPO (the age of the oldest newest backup at drill time) against the objectives,
the history of drills, and the Markdown and Prometheus renderings. The HTML dashboard is dashboard.py's."""

from ansible_collections.keel.ops.plugins.module_utils._dr.dashboard import duration

HISTORY_KEPT = 50


def _postgres_checks(result):
    checks = {"checksums": "ok"}
    for database in (result.get("verification") or {}).get("databases") or []:
        checks["statistics"] = "%d tables, %d rows" % (database.get("tables", 0), database.get("rows", 0))
        amcheck = database.get("amcheck_indexes")
        checks["amcheck"] = "%d indexes" % amcheck if amcheck is not None else "not available"
    return checks


def _redis_checks(result):
    verification = result.get("verification") or {}
    return {"checksums": "ok", "keys": "%s keys loaded" % verification.get("keys", "?")}


def _files_checks(result):
    checks = {"checksums": "ok", "files": "%d restored" % ((result.get("counts") or {}).get("created", 0))}
    if result.get("sqlite_checked") is not None:
        checks["integrity_check"] = "%d SQLite files ok" % len(result["sqlite_checked"])
    return checks


def _pgbase_checks(result):
    replay, checks = result.get("replay") or {}, result.get("checks") or {}
    return {"checksums": "ok", "files": "match the backup manifest" if (result.get("files_verified") or {}).get("checked")
            else "pg_verifybackup not available", "replay": replay.get("stopped") or "to the end of the archive",
            "amcheck": "%s indexes" % checks.get("indexes_checked", "?")}


CHECKS = {"postgres": _postgres_checks, "redis": _redis_checks, "files": _files_checks, "pgbase": _pgbase_checks}


def restore_seconds(kind, result):
    """Time to usable: the restore itself (for files, the whole restore into the scratch directory)."""
    if kind == "files":
        return result.get("duration")
    if kind == "pgbase":
        return (result.get("timings") or {}).get("recovered")
    return result.get("restore_duration") or (result.get("verification") or {}).get("restore_duration")


def source_of(kind, source, result, listed, now):
    """One source's line: what was restored, how long it took, what proves it; `listed` is its entry in the
    repository listing (newest backup and when it was taken, size), or {}. The age is the RPO a disaster at `now`
    would have cost."""
    failed = bool(result.get("failed")) or not result
    # A physical source is recoverable up to its newest archived WAL, not only to its newest base backup.
    taken = result.get("latest_archived_epoch") or listed.get("newest_epoch")
    return {"kind": kind, "source": source, "backup_id": result.get("backup_id"),
            "backup_time": listed.get("newest_time") if listed.get("newest") == result.get("backup_id") else None,
            "age_seconds": round(max(now - taken, 0), 1) if taken is not None else None,
            "size": listed.get("size"), "restore_seconds": None if failed else restore_seconds(kind, result),
            "checks": {} if failed else CHECKS[kind](result), "result": "failed" if failed else "passed",
            "error": (result.get("msg") or "no result") if failed else None}


def _measured(sources):
    restores = [s["restore_seconds"] for s in sources if s["restore_seconds"] is not None]
    ages = [s["age_seconds"] for s in sources if s["age_seconds"] is not None]
    return {"rto_seconds": round(sum(restores), 3) if restores else None,
            "rpo_seconds": max(ages) if ages else None}


def drill(drill_id, host, sources, objectives, times):
    """The drill: passed when every source restored and proved itself and both objectives were met."""
    measured = _measured(sources)
    objectives = dict((key, float(objectives[key])) for key in ("rto_seconds", "rpo_seconds"))
    met = dict((key, measured[key + "_seconds"] is not None and measured[key + "_seconds"] <= objectives[key + "_seconds"])
               for key in ("rto", "rpo"))
    failures = ["%s %s: %s" % (s["kind"], s["source"], s["error"]) for s in sources if s["result"] == "failed"]
    for key in ("rto", "rpo"):
        if not met[key]:
            failures.append("%s objective missed: %s measured, %s allowed" % (
                key.upper(), duration(measured[key + "_seconds"]), duration(objectives[key + "_seconds"])))
    return {"id": drill_id, "host": host, "started": times["started"], "finished": times["finished"],
            "result": "failed" if failures else "passed", "objectives": objectives, "measured": measured,
            "met": met, "sources": list(sources), "failures": failures}


def history_entry(report):
    """What the history keeps of a drill: enough for the dashboard's chart and table."""
    return {"id": report["id"], "started": report["started"], "result": report["result"],
            "rto_seconds": report["measured"]["rto_seconds"], "rpo_seconds": report["measured"]["rpo_seconds"]}


def clean_history(history):
    """The history is read from a repository: what is not a dict with an id is dropped."""
    return [item for item in history or [] if isinstance(item, dict) and isinstance(item.get("id"), str)]


def history_with(history, entry, keep=HISTORY_KEPT):
    """The drills so far plus this one (replacing an earlier entry with its id), oldest first, the last `keep`."""
    return ([item for item in clean_history(history) if item["id"] != entry["id"]] + [entry])[-keep:]


def markdown(report):
    measured, objectives, met = report["measured"], report["objectives"], report["met"]
    lines = ["# DR drill %s on %s: %s" % (report["id"], report["host"], report["result"].upper()), "",
             "| Objective | Allowed | Measured | |", "|---|---|---|---|"]
    for key in ("rto", "rpo"):
        lines.append("| %s | %s | %s | %s |" % (key.upper(), duration(objectives[key + "_seconds"]),
                                                duration(measured[key + "_seconds"]),
                                                "met" if met[key] else "MISSED"))
    lines += ["", "| Source | Backup | Age | Restore | Checks | Result |", "|---|---|---|---|---|---|"]
    for item in report["sources"]:
        checks = "; ".join("%s: %s" % pair for pair in sorted(item["checks"].items())) or item["error"] or "-"
        lines.append("| %s | %s | %s | %s | %s | %s |" % tuple(
            str(value).replace("|", "\\|").replace("\n", " ") for value in (
                "%s %s" % (item["kind"], item["source"]), item["backup_id"] or "-",
                duration(item["age_seconds"]), duration(item["restore_seconds"]), checks, item["result"])))
    if report["failures"]:
        lines += ["", "## Failures", ""] + ["- %s" % text for text in report["failures"]]
    return "\n".join(lines) + "\n"


def prometheus(report, now):
    """Textfile collector metrics: the drill's RTO, RPO, result and time, per host."""
    host = report["host"].replace("\\", "\\\\").replace('"', '\\"')
    rows = [("keel_dr_drill_rto_seconds", "Restore time to usable measured by the last DR drill.",
             report["measured"]["rto_seconds"]),
            ("keel_dr_drill_rpo_seconds", "Age of the newest backup at the last DR drill.", report["measured"]["rpo_seconds"]),
            ("keel_dr_drill_success", "1 when the last DR drill passed.", 1 if report["result"] == "passed" else 0),
            ("keel_dr_drill_timestamp_seconds", "When the last DR drill ran.", int(now))]
    lines = []
    for name, text, value in rows:
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s gauge" % name]
        lines.append('%s{host="%s"} %s' % (name, host, "NaN" if value is None else value))
    return "\n".join(lines) + "\n"
