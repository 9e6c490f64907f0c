"""The parts of a recovery mode, each part's outcome, and the recovery report."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._dr import recovery
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

SETS = [{"name": "app-data"}, {"name": "app-config", "configuration": True, "backup_id": "20261201T000000Z-ab"}]


def test_full_orders_configuration_database_redis_files():
    parts = recovery.plan_parts("full", ["shop", {"database": "crm", "target_database": "crm_new"}],
                                {"enabled": True, "source": "cache"}, SETS, before="2026-12-01T22:00:00Z")
    assert [(p["phase"], p["name"]) for p in parts] == [
        ("configuration", "app-config"), ("database", "shop"), ("database", "crm"), ("redis", "cache"),
        ("files", "app-data")]
    assert parts[2]["target"] == "crm_new" and parts[1]["target"] == "shop"
    assert parts[0]["backup_id"] == "20261201T000000Z-ab" and parts[0]["before"] == ""
    assert parts[1]["backup_id"] == "latest" and parts[1]["before"] == "2026-12-01T22:00:00Z"


@pytest.mark.parametrize("mode, names", [("database", ["shop"]), ("redis", ["redis"]), ("files", ["app-data"]),
                                         ("configuration", ["app-config"])])
def test_a_mode_restores_only_its_parts(mode, names):
    parts = recovery.plan_parts(mode, ["shop"], {"enabled": True}, SETS)
    assert [p["name"] for p in parts] == names


def test_a_mode_with_nothing_to_restore_or_a_bad_item_is_refused():
    with pytest.raises(ConfigError, match="mode redis restores nothing on this host: set disaster_recovery_redis_enabled"):
        recovery.plan_parts("redis", ["shop"], {"enabled": False}, [])
    with pytest.raises(ConfigError, match="mode must be one of full, database"):
        recovery.plan_parts("everything")
    with pytest.raises(ConfigError, match="needs the name of its repository source"):
        recovery.plan_parts("files", file_sets=[{"paths": ["/srv"]}])
    with pytest.raises(ConfigError, match="needs a name"):
        recovery.plan_parts("database", [{"target_database": "x"}])


def test_an_outcome_says_where_the_part_came_from_and_what_proves_it():
    [part] = recovery.plan_parts("database", ["shop"], before="2026-12-01T22:00:00Z")
    result = {"changed": True, "backup_id": "20261201T210000Z-aa", "artifacts_checked": ["a", "b"], "duration": 3.2,
              "verification": {"tables": 4, "rows": 1200}, "msg": "restored"}
    outcome = recovery.outcome(part, result)
    assert outcome["status"] == "restored" and outcome["backup_id"] == "20261201T210000Z-aa"
    assert outcome["selection"] == "the newest at or before 2026-12-01T22:00:00Z"
    assert outcome["checks"] == {"checksums": "2 artifacts", "row counts": "4 tables, 1200 rows match"}
    assert recovery.outcome(part, dict(result, failed=True, msg="sha256 mismatch"))["status"] == "failed"
    assert recovery.outcome(part, {}, dry=True)["status"] == "failed", "no result at all is no success"
    assert recovery.outcome(part, result, dry=True)["status"] == "ready"


def test_the_report_measures_rto_from_the_services_going_down():
    [part] = recovery.plan_parts("files", file_sets=[{"name": "app-data"}])
    done = recovery.outcome(part, {"backup_id": "x", "duration": 1.0, "counts": {"created": 3},
                                   "sqlite_checked": ["/srv/clo.db"], "msg": "ok"})
    times = {"started": 100.0, "restore_started": "104.5", "finished": 110.0}
    report = recovery.report("app1", "files", [dict(done, status="ready")], [done], times,
                             health={"healthy": True, "summary": "ok: 2 of 2 checks healthy"})
    assert report["status"] == "recovered" and report["rto_seconds"] == 5.5 and report["precheck_seconds"] == 4.5
    markdown = recovery.markdown(report)
    assert markdown.startswith("# Recovery of app1: RECOVERED\n") and "- RTO: 5.5 s" in markdown
    assert "files: 3 created, 0 replaced, 0 unchanged; integrity_check: 1 SQLite files ok" in markdown
    unhealthy = recovery.report("app1", "files", [], [done], times, health={"healthy": False, "summary": "db down"})
    assert unhealthy["status"] == "failed" and unhealthy["failures"] == ["health: db down"]


def test_the_refusal_lists_the_plan_and_how_to_confirm():
    parts = recovery.plan_parts("full", ["shop"], file_sets=[{"name": "app-config", "configuration": True}])
    checks = [recovery.outcome(parts[0], {"backup_id": "c1", "msg": "would"}, dry=True),
              recovery.outcome(parts[1], {"backup_id": "p1", "msg": "would", "target_database": "shop"}, dry=True)]
    text = recovery.refusal("db1", checks, "disaster_recovery_confirm")
    assert text.splitlines() == [
        "db1: nothing was changed. A recovery would, in this order:",
        "  1. restore app-config from c1 (configuration)",
        "  2. restore shop from p1 (database) into shop",
        "Every backup above is proven (checksums, key, target reachable). To run it, set "
        "disaster_recovery_confirm=yes-destroy-current-data."]


def test_markdown_cells_are_data():
    [part] = recovery.plan_parts("files", file_sets=[{"name": "a|b\nc"}])
    report = recovery.report("h", "files", [], [recovery.outcome(part, {"backup_id": "x", "msg": "m"})],
                             {"started": 1, "restore_started": 2, "finished": 3})
    assert "| a\\|b c |" in recovery.markdown(report)


def test_a_cluster_recovers_to_the_role_wide_moment_unless_it_names_its_own_target():
    cluster = {"data_directory": "/var/lib/postgresql/16/main", "source": "db1-5432", "owner": "postgres"}
    part, = recovery.plan_parts("database", postgres_cluster=cluster, before="2026-12-01T22:00:00Z")
    assert (part["kind"], part["recovery_target"], part["target_time"]) == ("pgphysical", "time", "2026-12-01T22:00:00Z")
    assert recovery.selection_text(part) == "point in time: time 2026-12-01T22:00:00Z"
    latest, = recovery.plan_parts("full", postgres_cluster=cluster)
    assert latest["recovery_target"] == "latest" and latest["target"] == cluster["data_directory"]
    named, = recovery.plan_parts("full", postgres_cluster=dict(cluster, target="name", target_name="before-deploy"),
                                 before="2026-12-01T22:00:00Z")
    assert (named["recovery_target"], named["target_name"], named["target_time"]) == ("name", "before-deploy", "")


@pytest.mark.parametrize("cluster,databases,message", [
    ({"source": "db1"}, None, "needs data_directory"),
    ({"data_directory": "/d", "target": "yesterday"}, None, "target must be one of"),
    ({"data_directory": "/d", "target": "lsn"}, None, "needs target_lsn"),
    ({"data_directory": "/d"}, ["shop"], "not both"),
])
def test_a_cluster_without_what_it_needs_is_refused(cluster, databases, message):
    with pytest.raises(ConfigError, match=message):
        recovery.plan_parts("database", postgres_databases=databases, postgres_cluster=cluster)


def test_a_cluster_outcome_says_where_replay_stopped():
    part, = recovery.plan_parts("database", postgres_cluster={"data_directory": "/d"})
    result = {"backup_id": "b1", "duration": 3.2, "replay": {"stopped": "recovery stopping before commit of "
              "transaction 766", "last_transaction": "2026-12-02 16:42:44+00"},
              "wal": {"found": 4, "missing": []}}
    checks = recovery.outcome(part, result)["checks"]
    assert checks == {"replay": "recovery stopping before commit of transaction 766",
                      "last transaction": "2026-12-02 16:42:44+00", "WAL": "4 segments, none missing"}
