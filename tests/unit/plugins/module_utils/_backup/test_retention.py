"""Grandfather-father-son retention plans."""

import datetime

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import (
    apply_retention,
    plan_retention,
    retention_configured,
    validate_retention,
)
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

from .helpers import Policy, at, make_backup


def daily(days, hour=2):
    """One backup per day at `hour`, newest last, as (id, time)."""
    start = at("2026-01-01T00:00:00")
    return [("b%03d" % i, start + datetime.timedelta(days=i, hours=hour)) for i in range(days)]


def test_no_policy_keeps_everything():
    assert not retention_configured({})
    keep, delete = plan_retention(daily(5), {})
    assert delete == [] and len(keep) == 5


def test_keep_last():
    keep, delete = plan_retention(daily(5), {"keep_last": 2})
    assert sorted(keep) == ["b003", "b004"] and delete == ["b002", "b001", "b000"]


def test_keep_daily_takes_the_newest_of_each_day():
    backups = daily(3) + [("late", at("2026-01-03T23:00:00"))]
    keep, delete = plan_retention(backups, {"keep_daily": 2})
    assert sorted(keep) == ["b001", "late"] and sorted(delete) == ["b000", "b002"]


def test_grandfather_father_son_over_ninety_days():
    keep, delete = plan_retention(daily(90), {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3})
    kept = sorted(keep)
    assert len([k for k in kept if "daily" in keep[k]]) == 7
    assert len([k for k in kept if "weekly" in keep[k]]) == 4
    assert len([k for k in kept if "monthly" in keep[k]]) == 3
    # 2026-01-01 + 89 days = 2026-03-31 (a Tuesday): monthly keeps the newest of March, February and January
    assert "b089" in kept and "b058" in kept and "b030" in kept
    assert len(kept) + len(delete) == 90 and len(kept) < 7 + 4 + 3


def test_the_newest_backup_is_never_deleted():
    keep, delete = plan_retention(daily(3), {"keep_last": 0, "keep_daily": 0})
    assert list(keep) == ["b002"] and "b002" not in delete


def test_boundary_keep_more_than_exist():
    keep, delete = plan_retention(daily(2), {"keep_last": 10})
    assert delete == [] and len(keep) == 2


def test_negative_retention_is_refused():
    with pytest.raises(ConfigError, match="keep_weekly must be 0 or more"):
        validate_retention({"keep_weekly": -1})


def test_retention_never_deletes_the_backup_this_run_committed(repo):
    """Ids sort by the writer's clock: another writer whose clock runs ahead makes ours look old."""
    ahead = make_backup(repo, backup_id="20991231T235959000Z-ffffff")
    ours = make_backup(repo)
    result = apply_retention(repo, Policy(keep_last=1), Reporter(), exclude=(ours,))
    assert result["deleted"] == [] and result["reasons"][ours] == ["taken by this run"]
    assert sorted(b.id for b in repo.list()) == sorted([ahead, ours])


def test_a_held_backup_is_kept_by_retention_until_the_hold_ends(repo):
    old, new = make_backup(repo, backup_id="20260101T000000000Z-aaaaaa"), make_backup(repo)
    with repo.hold(repo.load(old), "a restore"):
        result = apply_retention(repo, Policy(keep_last=1), Reporter())
        assert result["deleted"] == [] and result["reasons"][old][0].startswith("held by host ")
        assert repo.live_holds() and old in repo.live_holds()
    assert repo.live_holds() == {}
    assert apply_retention(repo, Policy(keep_last=1), Reporter())["deleted"] == [old]
    assert [b.id for b in repo.list()] == [new]
