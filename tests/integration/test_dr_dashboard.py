"""The Disaster Recovery Dashboard in a real browser: headless Chromium renders the sample drill
(tools/dashboard_sample.py: postgres, redis and files sources, five drills of history, two backup locations of
which one is unreachable), the DOM it builds holds the figures, and the page says nothing on its console.

Console messages come over the DevTools protocol on a pipe (tools/headless_chromium.py); the check is shown to
catch an uncaught exception and a script refused by the dashboard's Content-Security-Policy, so a clean result
means something. Each test has its own --user-data-dir under tmp_path, so pytest-xdist workers never share a
browser profile.
"""

import re

import dashboard_sample  # tools/, put on sys.path by conftest.py
import headless_chromium
import pytest
from conftest import unavailable

from ansible_collections.keel.ops.plugins.module_utils._dr.dashboard import render_dashboard


@pytest.fixture(name="chromium")
def fixture_chromium():
    if headless_chromium.find_chromium() is None:
        unavailable("chromium is not installed (apt-get install chromium)")


def _page(tmp_path, html, name="dashboard.html"):
    path = tmp_path / name
    path.write_text(html, encoding="utf-8")
    return path.as_uri()


def _sample_page(tmp_path):
    return _page(tmp_path, render_dashboard(*dashboard_sample.sample()))


def _text_of(dom):
    """The DOM's text, tags dropped and whitespace folded, as a reader sees it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_the_browser_builds_the_dashboard_with_every_figure(chromium, tmp_path):
    dom = headless_chromium.dump_dom(_sample_page(tmp_path), tmp_path / "profile")
    text = _text_of(dom)
    assert 'id="result">PASSED<' in dom
    assert "Recovery time (RTO) 12.3 s objective 2 h 00 min: met" in text
    assert "Recovery point (RPO) 1 h 00 min objective 4 h 00 min: met" in text
    for source in ("postgres shop", "redis sessions", "files uploads"):
        assert source in text
    for figure in ("700.0 MiB", "50.0 MiB", "2.5 GiB", "9.1 s", "1.4 s", "1.8 s", "amcheck: ok"):
        assert figure in text
    assert "/srv/backups yes 42 45 min 00 s no" in text
    assert "s3://keel-offsite/db1 no" in text and "cannot reach the S3 endpoint: connection refused" in text
    assert dom.count("<circle") == 2 * len(dashboard_sample.HISTORY) and dom.count("<polyline") == 2
    assert "20261111T054500Z FAILED 2 h 15 min 5 h 30 min" in text


def test_the_dashboard_says_nothing_on_the_console(chromium, tmp_path):
    said = headless_chromium.console_messages(_sample_page(tmp_path), tmp_path / "profile")
    assert said == []  # not even a warning: no script, nothing fetched, nothing refused


def test_the_console_check_catches_an_uncaught_exception(chromium, tmp_path):
    page = _page(tmp_path, '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>x</title></head>'
                           '<body><p>broken</p><script>throw new Error("x")</script></body></html>', "broken.html")
    errors = headless_chromium.console_errors(page, tmp_path / "profile")
    assert [(e["origin"], e["text"].splitlines()[0]) for e in errors] == [("exception", "Error: x")]


def test_a_script_slipped_into_the_dashboard_is_refused_and_reported(chromium, tmp_path):
    html = render_dashboard(*dashboard_sample.sample()).replace(
        "</body>", '<script>throw new Error("x")</script></body>')
    errors = headless_chromium.console_errors(_page(tmp_path, html), tmp_path / "profile")
    assert [e["origin"] for e in errors] == ["security"]  # the CSP refused it: it never ran
    assert "Content Security Policy" in errors[0]["text"] and "inline script" in errors[0]["text"]
