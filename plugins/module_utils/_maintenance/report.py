# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance report: one run's steps and what each found, compared against the previous run's report (size
growth of every database, Redis memory), the findings worth a human's look, and the Markdown of it all. The
maintenance role hands over what its tasks registered; everything here is plain data in, plain data out."""

FORMAT = 1
FRAGMENTATION_HIGH = 1.5
HIT_RATE_LOW = 80.0
CONNECTIONS_HIGH = 80.0
GROWTH_HIGH = 20.0  # percent since the last report


def _mib(size):
    return "%.1f MiB" % (float(size or 0) / (1 << 20))


def growth(now, before):
    """(bytes, percent) from `before` to `now`; None where there is nothing to compare."""
    if now is None or before is None:
        return None, None
    delta = now - before
    return delta, round(100.0 * delta / before, 1) if before else None


def _previous_databases(previous):
    return dict((item["database"], item) for item in ((previous or {}).get("postgres") or []))


def postgres_section(results, previous):
    """Per database: what was done, its size and growth since the last report, and its health figures."""
    before = _previous_databases(previous)
    section = []
    for result in results:
        report = result.get("report") or {}
        size = (report.get("size") or {}).get("bytes")
        delta, percent = growth(size, before.get(result.get("database"), {}).get("size_bytes"))
        section.append({
            "database": result.get("database"), "size_bytes": size, "growth_bytes": delta, "growth_percent": percent,
            "vacuumed": len(result.get("vacuumed") or []), "reindexed": len(result.get("reindexed") or []),
            "retention_deleted": sum(rule.get("deleted") or 0 for rule in result.get("retention") or []),
            "skipped": result.get("skipped") or [], "invalid_indexes": result.get("invalid_indexes") or [],
            "unused_indexes": report.get("unused_indexes") or [], "dead_tuples": report.get("dead_tuples") or [],
            "index_bloat": report.get("index_bloat") or [], "largest_tables": report.get("largest_tables") or [],
            "connections": report.get("connections"), "long_running": len(report.get("long_running") or []),
            "idle_in_transaction": len(report.get("idle_in_transaction") or []),
            "top_queries": report.get("top_queries")})
    return section


def redis_section(result, previous):
    if not result:
        return None
    before = (previous or {}).get("redis") or {}
    delta, percent = growth(result.get("used_memory"), before.get("used_memory"))
    return {"used_memory": result.get("used_memory"), "memory_growth_bytes": delta, "memory_growth_percent": percent,
            "fragmentation_ratio": result.get("mem_fragmentation_ratio"), "hit_rate": result.get("hit_rate"),
            "doctor": result.get("doctor"), "slowlog": len(result.get("slowlog") or []),
            "slowlog_last_id": result.get("slowlog_last_id"),
            "slowest": sorted(result.get("slowlog") or [], key=lambda e: -e.get("microseconds", 0))[:5],
            "bigkeys": (result.get("bigkeys") or {}).get("by_memory"), "flushed_keys": result.get("flushed_keys")}


def findings(report):
    """What a human should look at, most serious first: (severity, text)."""
    found = []
    for step in report["steps"]:
        if step["status"] == "failed":
            found.append(("high", "step %s failed: %s" % (step["step"], step.get("error"))))
    for db in report["postgres"]:
        name = db["database"]
        for index in db["invalid_indexes"]:
            found.append(("medium", "%s: invalid index %s.%s (%s)"
                          % (name, index["schema"], index["name"], index["cleanup"])))
        for skipped in db["skipped"]:
            if "invalid index" not in skipped.get("reason", ""):
                found.append(("medium", "%s: %s of %s skipped: %s" % (name, skipped.get("step"), skipped.get("table")
                                                                      or skipped.get("name"), skipped.get("reason"))))
        if db["growth_percent"] is not None and db["growth_percent"] >= GROWTH_HIGH:
            found.append(("low", "%s grew %.1f%% since the last report" % (name, db["growth_percent"])))
        connections = db["connections"] or {}
        if (connections.get("percent") or 0) >= CONNECTIONS_HIGH:
            found.append(("medium", "%s: %s%% of max_connections in use" % (name, connections["percent"])))
        if db["idle_in_transaction"]:
            found.append(("low", "%s: %d sessions idle in a transaction" % (name, db["idle_in_transaction"])))
        if db["unused_indexes"]:
            found.append(("low", "%s: %d unused indexes (%s)" % (name, len(db["unused_indexes"]), _mib(
                sum(i.get("bytes") or 0 for i in db["unused_indexes"])))))
    redis = report.get("redis") or {}
    if (redis.get("fragmentation_ratio") or 0) >= FRAGMENTATION_HIGH:
        found.append(("low", "Redis memory fragmentation ratio %s" % redis["fragmentation_ratio"]))
    if redis.get("hit_rate") is not None and redis["hit_rate"] < HIT_RATE_LOW:
        found.append(("low", "Redis hit rate %s%%" % redis["hit_rate"]))
    updates = report.get("updates") or {}
    if updates.get("reboot_required") and not updates.get("rebooted"):
        found.append(("medium", "a reboot is needed for %s" % (", ".join(updates.get("reboot_packages") or [])
                                                               or "the installed updates")))
    if updates.get("security") and not updates.get("applied"):
        found.append(("medium", "%d security updates pending" % len(updates["security"])))
    for path in (report.get("sqlite") or {}).get("busy") or []:
        found.append(("low", "SQLite %s was busy and not maintained" % path))
    for check in (report.get("health") or {}).get("failing") or []:
        found.append(("medium" if check["status"] == "warning" else "high",
                      "health check %s is %s: %s" % (check["name"], check["status"], check["message"])))
    order = {"high": 0, "medium": 1, "low": 2}
    return [{"severity": severity, "text": text} for severity, text in sorted(found, key=lambda f: order[f[0]])]


def _health(result):
    if not result:
        return None
    checks = result.get("checks") or []
    return {"status": result.get("status"), "checks": len(checks),
            "failing": [{"name": c.get("name"), "status": c.get("status"), "message": c.get("message")}
                        for c in checks if c.get("status") != "healthy"]}


def build(run, steps, results, previous=None):
    """The report of one run. `run`: kind, host, started, finished, window (the guard's status at the start),
    finished_inside, forced. `steps`: [{step, status, error}]. `results`: what each step's tasks registered."""
    report = {"format": FORMAT, "run": run, "steps": steps,
              "result": "failed" if any(step["status"] == "failed" for step in steps) else "ok",
              "postgres": postgres_section(results.get("postgres") or [], previous),
              "redis": redis_section(results.get("redis"), previous),
              "logs": _pick(results.get("logs"), ("count", "bytes", "roots")),
              "containers": _pick(results.get("containers"), ("removed", "kept", "skipped", "reclaimed")),
              "sqlite": _pick(results.get("sqlite"), ("files", "busy", "damaged", "reclaimed")),
              "backups": results.get("backups") or [], "health": _health(results.get("health")),
              "maintenance_mode": results.get("maintenance_mode"), "updates": results.get("updates"),
              "previous": (previous or {}).get("run", {}).get("finished")}
    report["findings"] = findings(report)
    return report


def _pick(result, keys):
    return dict((key, result.get(key)) for key in keys) if result else None


def markdown(report):
    """The report as Markdown, for the history and the notification."""
    run = report["run"]
    lines = ["# %s maintenance of %s: %s" % (run.get("kind", "").capitalize(), run.get("host"), report["result"]),
             "", "- Started %s, finished %s; window %s, finished inside it: %s%s"
             % (run.get("started"), run.get("finished"), (run.get("window") or {}).get("window") or "none",
                "yes" if run.get("finished_inside") else "no", " (forced)" if run.get("forced") else ""),
             "- Compared with the report of %s" % (report["previous"] or "no earlier run"), "", "## Steps", ""]
    lines += ["- %s: %s%s" % (s["step"], s["status"], ": %s" % s["error"] if s.get("error") else "")
              for s in report["steps"]]
    if report["postgres"]:
        lines += ["", "## PostgreSQL", "", "| database | size | growth | vacuumed | reindexed | retention deleted |",
                  "|---|---|---|---|---|---|"]
        for db in report["postgres"]:
            change = "n/a" if db["growth_bytes"] is None else "%+.1f MiB (%s%%)" % (
                db["growth_bytes"] / float(1 << 20), db["growth_percent"])
            cells = (db["database"], _mib(db["size_bytes"]), change, db["vacuumed"], db["reindexed"],
                     db["retention_deleted"])
            lines.append("| %s | %s | %s | %d | %d | %d |" % cells)
    redis = report.get("redis")
    if redis:
        lines += ["", "## Redis", "", "- Memory %s, fragmentation %s, hit rate %s%%, %d new slow log entries"
                  % (_mib(redis["used_memory"]), redis["fragmentation_ratio"], redis["hit_rate"], redis["slowlog"])]
        advice = (redis.get("doctor") or {}).get("memory")
        if advice:
            lines.append("- MEMORY DOCTOR: %s" % " ".join(advice.split())[:300])
    for title, key, text in (("Logs", "logs", lambda r: "%d files, %s removed" % (r["count"], _mib(r["bytes"]))),
                             ("Containers", "containers", lambda r: "%d removed, %s reclaimed" % (
                                 len(r["removed"] or []), _mib(r["reclaimed"]))),
                             ("SQLite", "sqlite", lambda r: "%s reclaimed; busy: %s; damaged: %s" % (
                                 _mib(r["reclaimed"]), ", ".join(r["busy"] or []) or "none",
                                 ", ".join(r["damaged"] or []) or "none"))):
        if report.get(key):
            lines += ["", "## %s" % title, "", "- %s" % text(report[key])]
    updates = report.get("updates")
    if updates:
        lines += ["", "## Updates", "", "- %d pending (%d security), applied: %s, reboot required: %s%s"
                  % (len(updates["pending"]), len(updates["security"]), "yes" if updates["applied"] else "no",
                     "yes" if updates["reboot_required"] else "no", " (rebooted)" if updates.get("rebooted") else "")]
    if report["backups"]:
        lines += ["", "## Backups verified", ""] + ["- %s %s: %s" % (b.get("kind"), b.get("source"), b.get("status"))
                                                    for b in report["backups"]]
    lines += ["", "## Findings", ""] + (["- **%s** %s" % (f["severity"], f["text"]) for f in report["findings"]]
                                        or ["- none"])
    return "\n".join(lines) + "\n"
