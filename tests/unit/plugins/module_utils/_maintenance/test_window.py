"""Maintenance windows: inside or not, until when, and when the next one opens."""

import datetime

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._maintenance.window import status

RUNBOOK = [{"name": "weekly", "day": "sunday", "start": "02:00", "end": "04:00"},
           {"name": "monthly", "day": "sunday", "week": "first", "start": "01:00", "end": "05:00"}]


def at(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=datetime.timezone.utc)


def test_inside_the_weekly_window_it_says_until_when():
    found = status(RUNBOOK, at("2026-12-13 02:30"))  # the second Sunday of December
    assert found["inside"] is True and found["window"] == "weekly" and found["closes"] == "2026-12-13T04:00:00Z"
    assert found["seconds_left"] == 90 * 60


def test_the_first_sunday_is_the_monthly_window_from_one_oclock():
    found = status(RUNBOOK, at("2026-12-06 01:15"))
    assert (found["inside"], found["window"], found["closes"]) == (True, "monthly", "2026-12-06T05:00:00Z")


def test_outside_it_names_the_next_window_to_open():
    found = status(RUNBOOK, at("2026-12-02 09:00"))  # a Wednesday
    assert found["inside"] is False and found["next_window"] == "monthly" and found["next_opens"] == "2026-12-06T01:00:00Z"
    assert found["summary"] == "outside every maintenance window; the next (monthly) opens 2026-12-06T01:00:00Z"
    assert status(RUNBOOK, at("2026-12-06 05:00"))["next_opens"] == "2026-12-13T02:00:00Z", "the end is exclusive"


def test_a_window_past_midnight_and_in_a_time_zone():
    late = [{"name": "night", "day": "saturday", "start": "23:00", "end": "01:00", "timezone": "Europe/Berlin"}]
    found = status(late, at("2026-12-05 23:30"))  # 00:30 on Sunday in Berlin: inside Saturday's window
    assert found["inside"] is True and found["closes"] == "2026-12-06T00:00:00Z"
    last = [{"name": "last", "day": "friday", "week": "last", "start": "20:00", "end": "22:00"}]
    assert status(last, at("2026-12-01 00:00"))["next_opens"] == "2026-12-25T20:00:00Z"


@pytest.mark.parametrize("windows, message", [
    ([], "no maintenance window is configured"),
    ([{"name": "w", "day": "sundy", "start": "02:00", "end": "04:00"}], "day must be one of monday"),
    ([{"name": "w", "day": "sunday", "start": "2am", "end": "04:00"}], "start must be a time of day as HH:MM"),
    ([{"name": "w", "day": "sunday", "start": "02:00", "end": "04:00", "week": "fifth"}], "week must be one of"),
    ([{"name": "w", "day": "sunday", "start": "02:00", "end": "04:00", "timezone": "Mars/Olympus"}], "unknown time zone"),
    ([{"name": "w", "day": "sunday", "start": "02:00", "end": "04:00", "duration": 2}], "unknown keys duration"),
    (["sunday"], "each window needs a name"),
])
def test_a_wrong_window_is_named_with_what_to_fix(windows, message):
    with pytest.raises(ConfigError, match=message):
        status(windows, at("2026-12-02 09:00"))
