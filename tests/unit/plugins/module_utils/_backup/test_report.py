"""The backup role's report: parts from module results, the summary, and the textfile metrics."""

from ansible_collections.keel.ops.plugins.module_utils._backup import report

SAVED = {"backup_id": "20261201T000000000Z-aaaaaa", "source": "db1-shop", "size": 12300000, "raw_size": 40000000,
         "duration": 1.25, "item": "shop"}
FAILED = {"failed": True, "msg": "cannot connect to PostgreSQL", "item": "orders"}


def test_a_loop_gives_one_part_per_item_and_a_failed_verification_fails_its_part():
    parts = report.parts_of({"results": [SAVED, FAILED, {"skipped": True}]}, "postgres",
                            {"results": [{"backup_id": SAVED["backup_id"], "failed": True, "msg": "row counts differ"}]})
    assert [(p["source"], p["status"]) for p in parts] == [("db1-shop", "failed"), ("orders", "failed")]
    assert "verification failed: row counts differ" in parts[0]["error"] and parts[1]["error"] == FAILED["msg"]
    ok = report.parts_of(SAVED, "redis", {"backup_id": SAVED["backup_id"], "changed": True})
    assert ok[0]["status"] == "saved" and ok[0]["verified"] is True


def test_a_file_set_item_is_named_by_its_name():
    parts = report.parts_of({"results": [{"failed": True, "msg": "x", "item": {"name": "app-data", "paths": ["/a"]}}]},
                            "files")
    assert parts[0]["source"] == "app-data"


def test_the_summary_puts_failures_first_and_counts_both():
    parts = report.parts_of({"results": [SAVED, FAILED]}, "postgres")
    subject, text = report.summary(parts, "db1")
    assert subject == "Backups on db1: 1 saved, 1 failed"
    assert text.splitlines()[0].startswith("FAILED postgres orders: cannot connect")
    assert "12.3 MB stored in 1.2 s" in text
    assert report.summary([], "db1")[1] == "nothing was configured to back up"


def test_offsite_copies_are_parts_per_source():
    parts = report.copy_parts({"sources": [{"source": "db1-shop", "copied": ["a", "b"], "present": [], "bytes": 9}]})
    assert parts == [{"kind": "offsite", "source": "db1-shop", "status": "saved", "error": None, "backup_id": "b",
                      "size": 9, "copied": 2, "duration": None, "verified": None}]
    assert report.copy_parts({"failed": True, "msg": "S3 said no"})[0]["status"] == "failed"


def test_metrics_take_the_last_success_from_the_repository_and_escape_labels():
    parts = report.parts_of({"results": [SAVED, FAILED]}, "postgres")
    location = {"location": "/srv/backups", "sources": [{"kind": "postgres", "source": 'we"ird', "newest_epoch": 1700}]}
    text = report.prometheus_text(parts, 1800, [location])
    assert 'keel_backup_run_success{kind="postgres",source="db1-shop"} 1' in text
    assert 'keel_backup_run_success{kind="postgres",source="orders"} 0' in text
    assert 'keel_backup_size_bytes{kind="postgres",source="db1-shop"} 12300000' in text
    assert 'keel_backup_last_success_timestamp_seconds{kind="postgres",source="we\\"ird",location="/srv/backups"} 1700' \
        in text
    assert text.endswith("keel_backup_run_timestamp_seconds 1800\n")
