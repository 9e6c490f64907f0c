"""A DR drill's findings: sources from module results, RTO and RPO against the objectives, history, renderings."""

from ansible_collections.keel.ops.plugins.module_utils._dr import drill

OBJECTIVES = {"rto_seconds": 7200, "rpo_seconds": "14400"}
TIMES = {"started": "2026-12-02T05:00:00Z", "finished": "2026-12-02T05:01:00Z"}
LISTED = {"kind": "postgres", "source": "db-shop", "newest": "b1", "newest_time": "2026-12-02T04:00:00Z",
          "newest_epoch": 1000, "size": 4096}
VERIFIED = {"backup_id": "b1", "source": "db-shop", "restore_duration": 12.5,
            "verification": {"databases": [{"tables": 3, "rows": 90, "amcheck_indexes": 4}]}}


def test_a_verified_postgres_backup_becomes_a_passed_source_with_its_age():
    source = drill.source_of("postgres", "db-shop", VERIFIED, LISTED, now=4600)
    assert source["result"] == "passed" and source["restore_seconds"] == 12.5 and source["age_seconds"] == 3600
    assert source["checks"] == {"checksums": "ok", "statistics": "3 tables, 90 rows", "amcheck": "4 indexes"}
    assert source["backup_time"] == "2026-12-02T04:00:00Z" and source["size"] == 4096


def test_a_failed_restore_is_a_failed_source_naming_why():
    source = drill.source_of("files", "app", {"failed": True, "msg": "sha256 mismatch"}, {}, now=0)
    assert source["result"] == "failed" and source["error"] == "sha256 mismatch" and source["checks"] == {}
    assert drill.source_of("redis", "cache", {}, {}, now=0)["error"] == "no result"


def test_rto_sums_the_restores_and_rpo_is_the_oldest_newest_backup():
    sources = [drill.source_of("postgres", "db-shop", VERIFIED, LISTED, now=4600),
               drill.source_of("files", "app", {"backup_id": "f1", "duration": 2.5, "counts": {"created": 9},
                                                "sqlite_checked": []},
                               dict(LISTED, kind="files", source="app", newest_epoch=4000), now=4600)]
    report = drill.drill("d1", "db1", sources, OBJECTIVES, TIMES)
    assert report["measured"] == {"rto_seconds": 15.0, "rpo_seconds": 3600}
    assert report["result"] == "passed" and report["met"] == {"rto": True, "rpo": True}
    missed = drill.drill("d2", "db1", sources, {"rto_seconds": 10, "rpo_seconds": 600}, TIMES)
    assert missed["result"] == "failed" and missed["met"] == {"rto": False, "rpo": False}
    assert missed["failures"] == ["RTO objective missed: 15.0 s measured, 10.0 s allowed",
                                  "RPO objective missed: 1 h 00 min measured, 10 min 00 s allowed"]


def test_a_drill_with_nothing_measured_does_not_pass():
    report = drill.drill("d1", "db1", [drill.source_of("redis", "c", {}, {}, now=0)], OBJECTIVES, TIMES)
    assert report["result"] == "failed" and report["met"] == {"rto": False, "rpo": False}


def test_history_keeps_the_last_drills_once_each():
    report = drill.drill("d9", "db1", [drill.source_of("postgres", "db-shop", VERIFIED, LISTED, now=4600)],
                         OBJECTIVES, TIMES)
    earlier = [{"id": "d%d" % i, "result": "passed"} for i in range(60)] + ["junk", {"id": 7}]
    history = drill.history_with(earlier, drill.history_entry(report))
    assert len(history) == drill.HISTORY_KEPT and history[-1]["id"] == "d9" and history[-1]["rto_seconds"] == 12.5
    assert [entry["id"] for entry in history].count("d9") == 1


def test_markdown_and_metrics():
    report = drill.drill("d1", 'db"1', [drill.source_of("postgres", "db-shop", VERIFIED, LISTED, now=4600)],
                         OBJECTIVES, TIMES)
    text = drill.markdown(report)
    assert text.startswith('# DR drill d1 on db"1: PASSED') and "| RTO | 2 h 00 min | 12.5 s | met |" in text
    metrics = drill.prometheus(report, now=5000)
    assert 'keel_dr_drill_rto_seconds{host="db\\"1"} 12.5' in metrics
    assert 'keel_dr_drill_success{host="db\\"1"} 1' in metrics and "keel_dr_drill_timestamp_seconds" in metrics
