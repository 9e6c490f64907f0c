# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the disaster_recovery role restores, in which order, and what it reports: the parts of a mode (pure,
from the role's variables), each part's outcome from its module result, and the recovery report with its RTO."""

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

# The order of a recovery: configuration before the database it points at, the cache after the database it
# caches, the application's files last.
PHASES = ("configuration", "database", "redis", "files")
MODES = {"full": PHASES, "database": ("database",), "redis": ("redis",), "files": ("files",),
         "configuration": ("configuration",)}
CONFIRMATION = "yes-destroy-current-data"
KIND_OF_PHASE = {"configuration": "files", "database": "postgres", "redis": "redis", "files": "files"}


def _selected(item, backup_id, before):
    """An item's own backup_id/before win over the role-wide selection."""
    chosen = item.get("backup_id") or backup_id or "latest"
    when = item.get("before") or (before if chosen == "latest" else "") or ""
    return {"backup_id": chosen, "before": when}


def _postgres_parts(databases, backup_id, before):
    parts = []
    for item in databases or []:
        item = {"database": item} if isinstance(item, str) else dict(item)
        if not item.get("database"):
            raise ConfigError("each PostgreSQL database to restore needs a name (database: ...), got %r" % (item,))
        target = item.get("target_database") or item["database"]
        parts.append(dict(_selected(item, backup_id, before), phase="database", kind="postgres",
                          name=item["database"], source=item.get("source") or "", database=item["database"],
                          target=target))
    return parts


CLUSTER_TARGETS = ("latest", "immediate", "time", "lsn", "name")


def _cluster_parts(cluster, backup_id, before):
    """A whole cluster from a base backup and the WAL archive (pg_physical_backup): to the role-wide `before` as
    a point in time when the cluster names no target of its own, else to the end of the archive."""
    if not cluster:
        return []
    if not isinstance(cluster, dict) or not cluster.get("data_directory"):
        raise ConfigError("disaster_recovery_postgres_cluster needs data_directory (the cluster's data directory), "
                          "got %r" % (cluster,))
    target = cluster.get("target") or ("time" if before else "latest")
    if target not in CLUSTER_TARGETS:
        raise ConfigError("disaster_recovery_postgres_cluster target must be one of %s, got %r"
                          % (", ".join(CLUSTER_TARGETS), target))
    values = {"time": cluster.get("target_time") or (before if target == "time" else ""),
              "lsn": cluster.get("target_lsn") or "", "name": cluster.get("target_name") or ""}
    if target in values and not values[target]:
        raise ConfigError("disaster_recovery_postgres_cluster target %s needs target_%s" % (target, target))
    return [{"phase": "database", "kind": "pgphysical", "name": cluster.get("source") or "cluster",
             "source": cluster.get("source") or "", "target": cluster["data_directory"],
             "backup_id": cluster.get("backup_id") or backup_id or "latest", "before": "",
             "recovery_target": target, "target_time": values["time"], "target_lsn": values["lsn"],
             "target_name": values["name"], "owner": cluster.get("owner") or "", "python": cluster.get("python") or ""}]


def _redis_parts(redis, backup_id, before):
    redis = redis or {}
    if not redis.get("enabled"):
        return []
    return [dict(_selected(redis, backup_id, before), phase="redis", kind="redis", name=redis.get("source") or "redis",
                 source=redis.get("source") or "", target=redis.get("target") or "")]


def _file_parts(file_sets, backup_id, before):
    parts = []
    for item in file_sets or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError("each file set to restore needs the name of its repository source (name: ...), "
                              "got %r" % (item,))
        phase = "configuration" if item.get("configuration") else "files"
        parts.append(dict(_selected(item, backup_id, before), phase=phase, kind="files", name=item["name"],
                          source=item["name"], target=item.get("target") or "",
                          restore_paths=item.get("restore_paths") or []))
    return parts


def plan_parts(mode, postgres_databases=None, redis=None, file_sets=None, backup_id="latest", before="",
               postgres_cluster=None):
    """The parts a recovery in `mode` restores, in PHASES order; refuses a mode with nothing to restore."""
    if mode not in MODES:
        raise ConfigError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
    if postgres_cluster and postgres_databases:
        raise ConfigError("restore either the whole cluster (disaster_recovery_postgres_cluster) or databases "
                          "(disaster_recovery_postgres_databases), not both: the cluster restore replaces them all")
    parts = (_cluster_parts(postgres_cluster, backup_id, before) + _postgres_parts(postgres_databases, backup_id, before)
             + _redis_parts(redis, backup_id, before) + _file_parts(file_sets, backup_id, before))
    chosen = [part for phase in MODES[mode] for part in parts if part["phase"] == phase]
    if not chosen:
        raise ConfigError("mode %s restores nothing on this host: %s" % (mode, _what_is_missing(mode)))
    return chosen


def _what_is_missing(mode):
    needs = {"database": "list disaster_recovery_postgres_databases or set disaster_recovery_postgres_cluster",
             "redis": "set disaster_recovery_redis_enabled",
             "files": "list disaster_recovery_file_sets",
             "configuration": "list disaster_recovery_file_sets with configuration: true"}
    return "; ".join(needs[phase] for phase in MODES[mode])


def selection_text(part):
    if part["kind"] == "pgphysical":
        value = part.get("target_%s" % part["recovery_target"]) or ""
        return "point in time: %s%s" % (part["recovery_target"], " " + value if value else "")
    if part["backup_id"] != "latest":
        return "backup %s" % part["backup_id"]
    return "the newest at or before %s" % part["before"] if part["before"] else "the newest"


def _checks(part, result):
    """What a part's module result proves, as check name -> outcome."""
    checks = {}
    if result.get("artifacts_checked"):
        checks["checksums"] = "%d artifacts" % len(result["artifacts_checked"])
    verification = result.get("verification") or {}
    if part["kind"] == "postgres" and "rows" in verification:
        checks["row counts"] = "%d tables, %d rows match" % (verification.get("tables", 0), verification["rows"])
    if part["kind"] == "redis" and result.get("keys") is not None:
        checks["keys"] = "%s restored" % result["keys"]
    if part["kind"] == "files" and result.get("counts"):
        counts = result["counts"]
        checks["files"] = "%d created, %d replaced, %d unchanged" % (
            counts.get("created", 0), counts.get("replaced", 0), counts.get("unchanged", 0))
    replay = result.get("replay") or {}
    if part["kind"] == "pgphysical" and replay:
        checks["replay"] = replay.get("stopped") or "to the end of the archive (%s)" % replay.get("redo_done")
        if replay.get("last_transaction"):
            checks["last transaction"] = replay["last_transaction"]
    if part["kind"] == "pgphysical" and result.get("wal"):
        checks["WAL"] = "%d segments, none missing" % result["wal"]["found"] if not result["wal"]["missing"] else \
            "missing %s" % result["wal"]["missing"][0]
    if result.get("sqlite_checked"):
        checks["integrity_check"] = "%d SQLite files ok" % len(result["sqlite_checked"])
    return checks


def outcome(part, result, dry=False):
    """One part's line of the report, from its module result (a failed one included)."""
    result = result or {}
    failed = bool(result.get("failed")) or not result
    status = "failed" if failed else ("ready" if dry else "restored")
    return {"phase": part["phase"], "kind": part["kind"], "name": part["name"],
            "source": part.get("source") or (result.get("plan") or {}).get("source") or "",
            "target": part.get("target") or result.get("target_database") or result.get("root") or "",
            "selection": selection_text(part), "backup_id": result.get("backup_id"),
            "status": status, "duration": result.get("duration"), "checks": {} if failed else _checks(part, result),
            "message": result.get("msg") or ("no result" if not result else "")}


def refusal(host, prechecks, confirm_variable):
    """Why nothing was changed: the plan of a recovery that was not confirmed, ready to be read."""
    lines = ["%s: nothing was changed. A recovery would, in this order:" % host]
    lines += ["  %d. %s %s from %s (%s)%s" % (
        index, "restore" if item["status"] == "ready" else "FAIL to restore", item["name"],
        item["backup_id"] or item["selection"], item["phase"],
        " into " + item["target"] if item["target"] else "") for index, item in enumerate(prechecks, 1)]
    lines.append("Every backup above is proven (checksums, key, target reachable). To run it, set %s=%s."
                 % (confirm_variable, CONFIRMATION))
    return "\n".join(lines)


def report(host, mode, prechecks, parts, times, services=None, health=None):
    """The recovery report. times: epoch seconds of started, restore_started (once confirmed, before the services
    stop) and finished. RTO is restore_started -> finished: from taking the service down until it is back and
    checked."""
    failures = ["%s %s: %s" % (item["phase"], item["name"], item["message"])
                for item in list(prechecks) + list(parts) if item["status"] == "failed"]
    if health is not None and not health.get("healthy"):
        failures.append("health: %s" % health.get("summary", "not healthy"))
    started, restore_started, finished = (float(times[key]) if times.get(key) not in (None, "") else None
                                          for key in ("started", "restore_started", "finished"))
    return {"host": host, "mode": mode, "status": "failed" if failures else ("recovered" if parts else "checked"),
            "started": started, "finished": finished,
            "precheck_seconds": round((restore_started or finished) - started, 3),
            "rto_seconds": round(finished - restore_started, 3) if restore_started else None,
            "prechecks": list(prechecks), "parts": list(parts), "services": services or {}, "health": health,
            "failures": failures}


def _cell(value):
    return str(value if value not in (None, "") else "-").replace("|", "\\|").replace("\n", " ")


def markdown(recovery):
    """The report for people: what came back from where, what proves it, how long it took."""
    rto = recovery["rto_seconds"]
    lines = ["# Recovery of %s: %s" % (recovery["host"], recovery["status"].upper()), "",
             "- Mode: %s" % recovery["mode"],
             "- RTO: %s" % ("%.1f s (from the first change until restored and checked)" % rto if rto is not None else "-"),
             "- Pre-checks: %.1f s" % recovery["precheck_seconds"], "",
             "| Phase | Part | Backup | Selected as | Target | Status | Duration | Checks |",
             "|---|---|---|---|---|---|---|---|"]
    for item in recovery["parts"] or recovery["prechecks"]:
        checks = "; ".join("%s: %s" % pair for pair in sorted(item["checks"].items()))
        lines.append("| %s |" % " | ".join(_cell(value) for value in (
            item["phase"], item["name"], item["backup_id"], item["selection"], item["target"], item["status"],
            "%.1f s" % item["duration"] if item["duration"] is not None else None, checks)))
    health = recovery.get("health")
    if health is not None:
        lines += ["", "Health after the recovery: %s" % health.get("summary", "-")]
    if recovery["failures"]:
        lines += ["", "## Failures", ""] + ["- %s" % _cell(text) for text in recovery["failures"]]
    return "\n".join(lines) + "\n"
