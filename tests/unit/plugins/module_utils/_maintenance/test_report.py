"""The maintenance report: growth against the previous report, findings by severity, and its Markdown."""

from ansible_collections.keel.ops.plugins.module_utils._maintenance.report import build, growth, markdown

RUN = {"kind": "weekly", "host": "db1", "started": "2026-12-06T02:00:05Z", "finished": "2026-12-06T02:20:00Z",
       "window": {"inside": True, "window": "weekly"}, "finished_inside": True, "forced": False}


def pg_result(database, size, **extra):
    result = {"database": database, "vacuumed": [{"table": "t"}], "reindexed": [], "skipped": [], "invalid_indexes": [],
              "retention": [{"deleted": 40}, {"deleted": 2}],
              "report": {"size": {"bytes": size}, "connections": {"percent": 12.0}, "unused_indexes": [],
                         "long_running": [], "idle_in_transaction": []}}
    result.update(extra)
    return result


def test_growth_is_measured_against_the_previous_report_only_when_there_is_one():
    assert growth(120, 100) == (20, 20.0) and growth(100, None) == (None, None) and growth(5, 0) == (5, None)
    previous = build(RUN, [], {"postgres": [pg_result("shop", 100 << 20)]})
    now = build(RUN, [{"step": "postgres", "status": "ok"}], {"postgres": [pg_result("shop", 130 << 20)]}, previous)
    [shop] = now["postgres"]
    assert shop["growth_bytes"] == 30 << 20 and shop["growth_percent"] == 30.0 and shop["retention_deleted"] == 42
    assert {"severity": "low", "text": "shop grew 30.0% since the last report"} in now["findings"]


def test_findings_put_failed_steps_and_invalid_indexes_before_the_rest():
    invalid = [{"schema": "public", "name": "i_ccnew", "cleanup": 'DROP INDEX CONCURRENTLY "public"."i_ccnew";'}]
    report = build(RUN, [{"step": "sqlite", "status": "failed", "error": "damaged.db failed integrity_check"}],
                   {"postgres": [pg_result("shop", 1, invalid_indexes=invalid)],
                    "redis": {"used_memory": 10, "mem_fragmentation_ratio": 2.1, "hit_rate": 50.0},
                    "updates": {"pending": [{}], "security": [{}], "applied": False, "reboot_required": True,
                                "reboot_packages": ["linux-image"]}})
    assert report["result"] == "failed"
    assert [f["severity"] for f in report["findings"]] == ["high", "medium", "medium", "medium", "low", "low"]
    assert report["findings"][0]["text"] == "step sqlite failed: damaged.db failed integrity_check"
    assert "a reboot is needed for linux-image" in [f["text"] for f in report["findings"]]


def test_the_markdown_tells_the_run_its_steps_sizes_and_findings():
    report = build(RUN, [{"step": "postgres", "status": "ok"}, {"step": "redis", "status": "skipped"}],
                   {"postgres": [pg_result("shop", 3 << 20)], "logs": {"count": 3, "bytes": 1 << 20, "roots": []}})
    text = markdown(report)
    assert text.startswith("# Weekly maintenance of db1: ok\n")
    assert "| shop | 3.0 MiB | n/a | 1 | 0 | 42 |" in text and "- redis: skipped" in text
    assert "3 files, 1.0 MiB removed" in text and "compared with the report of no earlier run" in text.lower()
    assert text.rstrip().endswith("- none")
