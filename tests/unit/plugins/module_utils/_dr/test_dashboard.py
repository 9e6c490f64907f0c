"""The DR dashboard: the figures a reader looks for, untrusted values escaped, the history chart with 0, 1 and
many drills, a failed drill said plainly, and nothing fetched from anywhere."""

import copy
import re
from html.parser import HTMLParser

import pytest

from ansible_collections.keel.ops.plugins.module_utils._dr import dashboard
from ansible_collections.keel.ops.plugins.module_utils._dr.dashboard import render_dashboard

HOSTILE = "<script>alert(1)</script>"
DRILL = {
    "id": "20261202T054500Z", "host": "db1", "started": "2026-12-02T05:45:00Z", "finished": "2026-12-02T05:45:30Z",
    "result": "passed", "objectives": {"rto_seconds": 7200, "rpo_seconds": 14400},
    "measured": {"rto_seconds": 12.3, "rpo_seconds": 3600.0}, "met": {"rto": True, "rpo": True},
    "sources": [
        {"kind": "postgres", "source": "shop", "backup_id": "20261202T044500000Z-3f9a1c",
         "backup_time": "2026-12-02T04:45:00Z", "age_seconds": 3600.0, "size": 123456, "restore_seconds": 4.2,
         "checks": {"checksums": "ok", "statistics": "ok", "amcheck": "ok"}, "result": "passed", "error": None},
        {"kind": "redis", "source": "sessions", "backup_id": "20261202T050000000Z-b27e04",
         "backup_time": "2026-12-02T05:00:00Z", "age_seconds": 2700.0, "size": 52428800, "restore_seconds": 1.4,
         "checks": {"checksums": "ok"}, "result": "passed", "error": None},
    ],
    "failures": [],
}
LOCATIONS = [
    {"repository": "s3://bucket/prefix", "reachable": True, "error": None, "count": 12, "newest_age_hours": 1.5,
     "stale": False},
    {"repository": "/srv/offsite", "reachable": False, "error": "no such directory", "count": None,
     "newest_age_hours": None, "stale": None},
]


def _history(count):
    return [{"id": "2026110%dT054500Z-%02d" % (i % 10, i), "started": "2026-11-%02dT05:45:00Z" % (i % 28 + 1),
             "result": "failed" if i == 1 else "passed", "rto_seconds": 10.0 + i, "rpo_seconds": 3000.0 + 60 * i}
            for i in range(count)]


def _page(drill=None, history=None, locations=None):
    return render_dashboard(drill or copy.deepcopy(DRILL), _history(3) if history is None else history,
                            LOCATIONS if locations is None else locations)


class _Balance(HTMLParser):
    """Every element that is opened is closed, in order: the page is one well-formed document."""
    VOID = {"meta", "br", "line", "circle", "polyline", "img", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
        else:
            self.stack.pop()


def _balanced(page):
    parser = _Balance()
    parser.feed(page)
    parser.close()
    return parser.errors + ["<%s> never closed" % tag for tag in parser.stack]


@pytest.mark.parametrize("seconds, text", [(12.3, "12.3 s"), (0, "0.0 s"), (59.94, "59.9 s"), (61, "1 min 01 s"),
                                           (3900, "1 h 05 min"), (7200, "2 h 00 min"), (90000, "1 d 01 h"),
                                           (-5, "-5.0 s"), (None, dashboard.MISSING), ("12", dashboard.MISSING),
                                           (True, dashboard.MISSING), (float("nan"), dashboard.MISSING)])
def test_durations_read_as_people_say_them(seconds, text):
    assert dashboard.duration(seconds) == text


@pytest.mark.parametrize("count, text", [(0, "0 B"), (1023, "1023 B"), (123456, "120.6 KiB"),
                                         (52428800, "50.0 MiB"), (2684354560, "2.5 GiB"), (5 * 1024 ** 5, "5120.0 TiB"),
                                         (None, dashboard.MISSING)])
def test_sizes_are_in_binary_units(count, text):
    assert dashboard.size(count) == text


def test_the_page_shows_the_drill_its_objectives_and_every_source_and_location():
    page = _page()
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">") and page.rstrip().endswith("</html>")
    assert _balanced(page) == []
    assert '<div class="badge ok" id="result">PASSED</div>' in page
    for text in ("20261202T054500Z", "db1", "2026-12-02T05:45:00Z", "2026-12-02T05:45:30Z"):
        assert text in page
    assert re.search(r'id="rto">.*?12\.3 s.*?objective 2 h 00 min: <span class="ok">met', page)
    assert re.search(r'id="rpo">.*?1 h 00 min.*?objective 4 h 00 min: <span class="ok">met', page)
    for text in ("postgres", "shop", "20261202T044500000Z-3f9a1c", "120.6 KiB", "4.2 s", "1 h 00 min",
                 "redis", "sessions", "50.0 MiB", "45 min 00 s", "amcheck: <span class=\"ok\">ok"):
        assert text in page
    assert "s3://bucket/prefix" in page and "1 h 30 min" in page and "no such directory" in page
    assert '<span class="bad">no</span>' in page  # the unreachable location


def test_a_failed_drill_says_failed_and_which_objective_it_missed():
    drill = copy.deepcopy(DRILL)
    drill.update(result="failed", measured={"rto_seconds": 9000, "rpo_seconds": 3600}, met={"rto": False, "rpo": True},
                 failures=["RTO 2 h 30 min is over the objective of 2 h 00 min"])
    drill["sources"][1].update(result="failed", error="key counts differ", checks={"checksums": "failed"})
    page = _page(drill)
    assert '<div class="badge bad" id="result">FAILED</div>' in page
    assert re.search(r'id="rto">.*?2 h 30 min.*?objective 2 h 00 min: <span class="bad">missed', page)
    assert re.search(r'id="rpo">.*?objective 4 h 00 min: <span class="ok">met', page)
    assert "RTO 2 h 30 min is over the objective" in page and "key counts differ" in page
    assert 'checksums: <span class="bad">failed' in page


def test_met_is_worked_out_from_the_figures_when_the_drill_does_not_say():
    drill = copy.deepcopy(DRILL)
    drill.pop("met")
    drill["measured"]["rpo_seconds"] = 20000
    page = _page(drill)
    assert re.search(r'id="rto">.*?: <span class="ok">met', page)
    assert re.search(r'id="rpo">.*?: <span class="bad">missed', page)


def test_untrusted_values_are_escaped_everywhere():
    drill = copy.deepcopy(DRILL)
    drill.update(id=HOSTILE, host=HOSTILE, started=HOSTILE, result=HOSTILE, failures=[HOSTILE])
    drill["sources"][0].update(kind=HOSTILE, source=HOSTILE, backup_id=HOSTILE, error=HOSTILE,
                               checks={HOSTILE: HOSTILE})
    locations = [{"repository": '" onmouseover="alert(1)', "reachable": True, "error": HOSTILE, "count": 1}]
    history = [{"id": HOSTILE, "started": HOSTILE, "result": HOSTILE, "rto_seconds": 1.0, "rpo_seconds": 2.0}]
    page = render_dashboard(drill, history, locations, title=HOSTILE)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '" onmouseover=' not in page and "&quot; onmouseover=&quot;alert(1)" in page
    assert _balanced(page) == []


def test_nothing_is_fetched_and_no_script_runs():
    page = _page()
    lowered = page.lower()
    for needle in ("http://", "https://", "src=", "href=", "url(", "@import", "<script", "<link", "<img"):
        assert needle not in lowered, needle
    assert "default-src 'none'" in page  # the browser refuses anything that slipped through


def test_without_history_the_page_says_there_were_no_earlier_drills():
    page = _page(history=[])
    assert "no earlier drills" in page and "<svg" not in page
    assert _balanced(page) == []


def test_one_drill_of_history_is_a_point_per_series_without_lines():
    page = _page(history=_history(1))
    chart = re.search(r"<svg.*?</svg>", page).group(0)
    assert chart.count("<circle") == 2 and "<polyline" not in chart
    assert "no earlier drills" in page and "2026110" in page
    assert _balanced(page) == []


def test_many_drills_draw_two_lines_the_objectives_and_list_the_last_ten():
    history = _history(40)
    page = _page(history=history)
    chart = re.search(r"<svg.*?</svg>", page).group(0)
    assert chart.count("<polyline") == 2 and chart.count("<circle") == 2 * dashboard.HISTORY_CHART
    assert "RTO objective 2 h 00 min" in chart and "RPO objective 4 h 00 min" in chart
    assert "seconds (log scale)" in chart and "drills, oldest to newest" in chart
    table = page[page.index("</svg>"):]
    listed = re.findall(r"<tr><td><code>([^<]+)</code>", table)
    assert listed == [entry["id"] for entry in reversed(history[-10:])]  # newest first
    assert "no earlier drills" not in page


def test_the_chart_keeps_every_point_inside_its_plot():
    history = _history(5) + [{"id": "odd", "result": "passed", "rto_seconds": 0, "rpo_seconds": 10 ** 9}]
    chart = re.search(r"<svg.*?</svg>", _page(history=history)).group(0)
    for cx, cy in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', chart):
        assert dashboard.CHART["left"] <= float(cx) <= dashboard.CHART["width"] - dashboard.CHART["right"]
        assert dashboard.CHART["top"] <= float(cy) <= dashboard.CHART["height"] - dashboard.CHART["bottom"]


def test_missing_keys_and_odd_values_still_make_a_page():
    page = render_dashboard({}, [{"id": "x"}, "not a dict"], [{}, None])
    assert "UNKNOWN" in page and "no source was restored" in page and "not measured" in page
    assert _balanced(page) == []
    page = render_dashboard({"sources": [{"size": "big", "checks": None, "age_seconds": "old"}]}, None, None)
    assert "no backup location was checked" in page and "no earlier drills" in page
