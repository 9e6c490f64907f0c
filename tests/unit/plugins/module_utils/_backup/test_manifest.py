"""Backup ids that sort by time, timestamps, and source names."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import (
    backup_time,
    is_backup_id,
    new_backup_id,
    parse_timestamp,
    validate_source,
)
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

from .helpers import at


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
