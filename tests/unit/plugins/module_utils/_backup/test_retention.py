import datetime

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import (
    backup_time,
    is_backup_id,
    new_backup_id,
    parse_timestamp,
    validate_source,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import (
    plan_retention,
    retention_configured,
    validate_retention,
)
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

UTC = datetime.timezone.utc


def at(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_backup_ids_sort_by_time_to_the_millisecond():
    first = new_backup_id(at("2026-11-23T16:47:03.120"))
    second = new_backup_id(at("2026-11-23T16:47:03.121"))
    assert first < second and first.startswith("20261123T164703120Z-")
    assert is_backup_id(first) and not is_backup_id("20261123T164703Z-abc")
    assert backup_time(second) == at("2026-11-23T16:47:03.121")


def test_parse_timestamp_accepts_z_offsets_and_naive_utc():
    assert parse_timestamp("2026-11-23T04:00:00Z", "before") == at("2026-11-23T04:00:00")
    assert parse_timestamp("2026-11-23 05:00:00+01:00", "before") == at("2026-11-23T04:00:00")
    assert parse_timestamp("2026-11-23", "before") == at("2026-11-23T00:00:00")
    with pytest.raises(ConfigError, match="before must be an ISO 8601 timestamp"):
        parse_timestamp("last tuesday", "before")


@pytest.mark.parametrize("name", ["db1-5432-orders", "orders.prod", "A_b"])
def test_good_source_names(name):
    assert validate_source(name) == name


@pytest.mark.parametrize("name", ["", "../etc", ".hidden", "-x", "a/b", "x" * 129])
def test_bad_source_names(name):
    with pytest.raises(ConfigError, match="not usable as a repository folder name"):
        validate_source(name)


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
