# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance windows: whether now is inside one, when it closes, and when the next one opens. A window is a
weekday (or the first/second/.../last such weekday of the month), a start and an end time of day in a time zone;
an end at or before the start runs past midnight. The runbooks' windows are Sundays 02:00-04:00 UTC (weekly) and
the first Sunday of the month 01:00-05:00 UTC (monthly)."""

import datetime

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # Python < 3.9 on a controller: only UTC
    ZoneInfo = None

    class ZoneInfoNotFoundError(Exception):
        pass

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKS = {"every": None, "first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
LOOKAHEAD_DAYS = 62  # a monthly window opens within two months


class Window:
    def __init__(self, name, day, start, end, week="every", timezone="UTC"):
        self.name = name
        if str(day).lower() not in DAYS:
            raise ConfigError("window %s: day must be one of %s, got %r" % (name, ", ".join(DAYS), day))
        if week not in WEEKS:
            raise ConfigError("window %s: week must be one of %s, got %r" % (name, ", ".join(WEEKS), week))
        self.weekday, self.week = DAYS.index(str(day).lower()), WEEKS[week]
        self.start, self.end = _time_of_day(name, "start", start), _time_of_day(name, "end", end)
        self.zone = _zone(name, timezone)

    @classmethod
    def from_dict(cls, item):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError("each window needs a name, a day, a start and an end, got %r" % (item,))
        unknown = sorted(set(item) - {"name", "day", "start", "end", "week", "timezone"})
        if unknown:
            raise ConfigError("window %s: unknown keys %s" % (item["name"], ", ".join(unknown)))
        return cls(item["name"], item.get("day"), item.get("start"), item.get("end"), item.get("week", "every"),
                   item.get("timezone", "UTC"))

    def _opens_on(self, date):
        if date.weekday() != self.weekday:
            return False
        if self.week is None:
            return True
        if self.week == -1:
            return (date + datetime.timedelta(days=7)).month != date.month
        return (date.day - 1) // 7 + 1 == self.week

    def spans(self, now, back=1):
        """(opens, closes) of each opening from `back` days before now's date onwards, in order."""
        local = now.astimezone(self.zone)
        for offset in range(-back, LOOKAHEAD_DAYS):
            date = local.date() + datetime.timedelta(days=offset)
            if self._opens_on(date):
                opens = datetime.datetime.combine(date, self.start, tzinfo=self.zone)
                closes = datetime.datetime.combine(date, self.end, tzinfo=self.zone)
                if closes <= opens:
                    closes += datetime.timedelta(days=1)
                yield opens, closes


def _time_of_day(name, key, value):
    try:
        hour, minute = (int(part) for part in str(value).split(":"))
        return datetime.time(hour, minute)
    except (TypeError, ValueError):
        raise ConfigError("window %s: %s must be a time of day as HH:MM, got %r" % (name, key, value))


def _zone(name, timezone):
    if timezone in ("UTC", "Z", None):
        return datetime.timezone.utc
    if ZoneInfo is None:
        raise ConfigError("window %s: time zone %s needs Python 3.9 or later; use UTC" % (name, timezone))
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("window %s: unknown time zone %r (an IANA name such as Europe/Berlin)" % (name, timezone))


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(windows, now):
    """Whether `now` (an aware datetime) is inside one of `windows` (dicts), which one and until when, and when the
    next one opens: what a maintenance run checks before it starts and records when it ends."""
    parsed = [Window.from_dict(item) for item in windows or []]
    if not parsed:
        raise ConfigError("no maintenance window is configured: give at least one (name, day, start, end)")
    inside, upcoming = None, []
    for window in parsed:
        for opens, closes in window.spans(now):
            if opens <= now < closes and inside is None:
                inside = (window, closes)
            elif opens > now:
                upcoming.append((opens, window))
                break
    opens, nxt = min(upcoming, key=lambda pair: pair[0])
    result = {"inside": inside is not None, "window": inside[0].name if inside else None,
              "closes": _iso(inside[1]) if inside else None,
              "seconds_left": round((inside[1] - now).total_seconds()) if inside else None,
              "next_window": nxt.name, "next_opens": _iso(opens),
              "seconds_to_next": round((opens - now).total_seconds()), "now": _iso(now)}
    result["summary"] = ("inside the %s window until %s" % (result["window"], result["closes"]) if inside else
                         "outside every maintenance window; the next (%s) opens %s" % (nxt.name, result["next_opens"]))
    return result
