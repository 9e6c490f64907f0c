# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One pg_maintenance run on one database, in the order that makes each step count: retention first (its deletes
leave dead tuples), then VACUUM (ANALYZE) (fresh statistics for the index estimates), then the concurrent
reindexes, then the report of what is left. Check mode plans every step and changes nothing."""

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._maintenance import pg_report, pg_retention, pg_stats
from ansible_collections.keel.ops.plugins.module_utils._maintenance.pg_work import (
    Worker, invalid_indexes, reindex_plan, vacuum_plan)
from ansible_collections.keel.ops.plugins.module_utils._postgres.activity import activity
from ansible_collections.keel.ops.plugins.module_utils._postgres.catalog import server_info


def check_options(options):
    """A ConfigError naming the first option out of its range, or the first retention rule that cannot work;
    before anything connects."""
    for spec in options.get("retention") or []:
        pg_retention.rule(spec)
    for name, low, high in (("lock_timeout", 0.001, None), ("reindex_min_bloat", 0.0, 1.0), ("top", 1, None),
                            ("vacuum_min_dead_tuples", 0, None), ("reindex_min_size_mb", 0.0, None)):
        value = options[name]
        if value < low or (high is not None and value > high):
            wanted = "at least %s" % low if high is None else "from %s to %s" % (low, high)
            raise ConfigError("%s is %s; it must be %s" % (name, value, wanted))


def _apply(steps, run, result, check_mode, into):
    """Each planned step into result[into] - as planned in check mode, else once run - or into skipped with
    the reason it could not be done."""
    for step in steps:
        entry, ok = (step, True) if check_mode else run(step)
        result[into if ok else "skipped"].append(entry)


def maintain(conn, options, check_mode=False):
    """The result of maintaining the database `conn` is connected to, as pg_maintenance returns it."""
    server = server_info(conn)
    rules = [pg_retention.rule(spec) for spec in options.get("retention") or []]
    result = {"server_version": server["version"], "retention": [], "vacuumed": [], "reindexed": [], "skipped": [],
              "dropped_leftovers": []}
    worker = Worker(conn, options["lock_timeout"])
    for item in rules:
        result["retention"].append(pg_retention.apply(conn, item, check_mode))
    if any(rule["deleted"] for rule in result["retention"]):
        pg_retention.publish_statistics(conn, server["major"])
    size_of_block = pg_stats.block_size(conn)
    tables = pg_stats.tables(conn, size_of_block)
    if options["vacuum"]:
        plan = vacuum_plan(tables, options["vacuum_min_dead_tuples"], options.get("vacuum_full") or ())
        _apply(plan, worker.vacuum, result, check_mode, "vacuumed")
        if result["vacuumed"] and not check_mode:
            tables = pg_stats.tables(conn, size_of_block)
    indexes = pg_stats.indexes(conn, size_of_block)
    if options["reindex"]:
        plan, cannot = reindex_plan(indexes, server["major"], options.get("reindex_indexes") or (),
                                    options["reindex_min_bloat"], int(options["reindex_min_size_mb"] * (1 << 20)))
        result["skipped"].extend(cannot)
        existing = [index["name"] for index in indexes]
        _apply(plan, lambda item: worker.reindex(item, existing), result, check_mode, "reindexed")
    if options["drop_leftovers"]:
        leftovers = [index for index in invalid_indexes(indexes) if index["leftover"]]
        _apply(leftovers, worker.drop_leftover, result, check_mode, "dropped_leftovers")
    if (result["reindexed"] or result["dropped_leftovers"]) and not check_mode:
        indexes = pg_stats.indexes(conn, size_of_block)  # the report and the invalid list as they are now
    result["invalid_indexes"] = invalid_indexes(indexes)
    result["changed"] = bool(result["vacuumed"] or result["reindexed"] or result["dropped_leftovers"]
                             or any(rule.get("deleted") or rule.get("matched") for rule in result["retention"]))
    if options["report"]:
        sessions = activity(conn, options["min_seconds"], options["query_length"], options["include_queries"])
        result["report"] = pg_report.report(conn, tables, indexes, server["major"], sessions, options["top"],
                                            options["query_length"], options["include_queries"])
    return result
