"""The maintenance_window filter: times given as ISO 8601 (UTC without a zone), errors as filter errors."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.keel.ops.plugins.filter.maintenance import FilterModule

WEEKLY = [{"name": "weekly", "day": "sunday", "start": "02:00", "end": "04:00"}]


def _window():
    return FilterModule().filters()["maintenance_window"]


def test_now_is_read_as_iso_8601_and_utc_without_a_zone():
    assert _window()(WEEKLY, "2026-12-06T03:00:00Z")["inside"] is True
    assert _window()(WEEKLY, "2026-12-06T03:00:00")["inside"] is True
    assert _window()(WEEKLY, "2026-12-06T03:00:00+02:00")["inside"] is False, "01:00 UTC is before the window"
    assert set(_window()(WEEKLY)) >= {"inside", "next_opens", "summary"}


def test_bad_input_is_a_filter_error_saying_what_to_fix():
    with pytest.raises(AnsibleFilterError, match="now must be an ISO 8601 time"):
        _window()(WEEKLY, "next sunday")
    with pytest.raises(AnsibleFilterError, match="maintenance_window: no maintenance window is configured"):
        _window()([], "2026-12-06T03:00:00Z")
