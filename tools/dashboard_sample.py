"""A realistic DR drill, its history and its backup locations, in the shapes render_dashboard() takes: the one
sample that tests/integration/test_dr_dashboard.py checks in a real browser and tools/dashboard_screenshot.py
draws for the README, so that the picture shows what the test proved.

Each call returns fresh copies, so a test may change its sample without touching another's.
"""

from __future__ import annotations

import copy

DRILL = {
    "id": "20261202T054500Z", "host": "db1", "started": "2026-12-02T05:45:00Z", "finished": "2026-12-02T05:45:30Z",
    "result": "passed",
    "objectives": {"rto_seconds": 7200, "rpo_seconds": 14400},
    "measured": {"rto_seconds": 12.3, "rpo_seconds": 3600.0},
    "met": {"rto": True, "rpo": True},
    "sources": [
        {"kind": "postgres", "source": "shop", "backup_id": "20261202T044500000Z-3f9a1c",
         "backup_time": "2026-12-02T04:45:00Z", "age_seconds": 3600.0, "size": 734003200, "restore_seconds": 9.1,
         "checks": {"checksums": "ok", "statistics": "ok", "amcheck": "ok"}, "result": "passed", "error": None},
        {"kind": "redis", "source": "sessions", "backup_id": "20261202T050000000Z-b27e04",
         "backup_time": "2026-12-02T05:00:00Z", "age_seconds": 2700.0, "size": 52428800, "restore_seconds": 1.4,
         "checks": {"checksums": "ok", "keys": "ok"}, "result": "passed", "error": None},
        {"kind": "files", "source": "uploads", "backup_id": "20261202T043000000Z-c4d2e9",
         "backup_time": "2026-12-02T04:30:00Z", "age_seconds": 4500.0, "size": 2684354560, "restore_seconds": 1.8,
         "checks": {"checksums": "ok", "files": "ok"}, "result": "passed", "error": None},
    ],
    "failures": [],
}

HISTORY = [
    {"id": "20261104T054500Z", "started": "2026-11-04T05:45:00Z", "result": "passed",
     "rto_seconds": 14.8, "rpo_seconds": 5400.0},
    {"id": "20261111T054500Z", "started": "2026-11-11T05:45:00Z", "result": "failed",
     "rto_seconds": 8100.0, "rpo_seconds": 19800.0},
    {"id": "20261118T054500Z", "started": "2026-11-18T05:45:00Z", "result": "passed",
     "rto_seconds": 13.9, "rpo_seconds": 4200.0},
    {"id": "20261125T054500Z", "started": "2026-11-25T05:45:00Z", "result": "passed",
     "rto_seconds": 11.7, "rpo_seconds": 2900.0},
    {"id": "20261202T054500Z", "started": "2026-12-02T05:45:00Z", "result": "passed",
     "rto_seconds": 12.3, "rpo_seconds": 3600.0},
]

LOCATIONS = [
    {"repository": "/srv/backups", "reachable": True, "error": None, "count": 42, "newest_age_hours": 0.75,
     "stale": False},
    {"repository": "s3://keel-offsite/db1", "reachable": False, "count": None, "newest_age_hours": None,
     "stale": None, "error": "cannot reach the S3 endpoint: connection refused"},
]


def sample() -> tuple[dict, list, list]:
    """(drill, history, locations), fresh copies."""
    return copy.deepcopy(DRILL), copy.deepcopy(HISTORY), copy.deepcopy(LOCATIONS)
