# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Disaster Recovery Dashboard of a DR drill: one self-contained HTML page (inline CSS, an inline SVG chart,
no script, nothing fetched) that can be mailed, archived or opened from a file years later.

Everything taken from the drill, its history and the backup locations is data from outside (source names,
error messages, repository URLs): every value goes through _text() on its way into the page, and the page's
Content-Security-Policy refuses scripts and remote resources should a value ever slip through unescaped.
"""

import html
import math

HISTORY_CHART = 30  # drills drawn in the chart: enough to see a trend, few enough to tell the points apart
HISTORY_ROWS = 10  # drills listed in the table under it
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
# Log-scale ticks of the chart: an RTO of seconds and an RPO of hours must both be readable on one axis.
TICKS = ((0.1, "0.1 s"), (1, "1 s"), (10, "10 s"), (60, "1 min"), (600, "10 min"), (3600, "1 h"), (21600, "6 h"),
         (86400, "1 d"), (604800, "7 d"), (2592000, "30 d"))
CHART = {"width": 720, "height": 260, "left": 64, "right": 150, "top": 16, "bottom": 46}
SERIES = (("rto_seconds", "RTO", "#2f6fdd"), ("rpo_seconds", "RPO", "#c2571a"))
MISSING = "\u2013"  # what an empty cell shows, so that a missing value is not mistaken for zero

STYLE = """
body{margin:0;padding:18px 28px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}
h1{margin:0;font-size:24px}h2{margin:0 0 10px;font-size:16px;color:#424a53}
section,header.top{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 18px;margin:0 0 12px}
header.top{display:flex;justify-content:space-between;align-items:center;gap:16px}
.meta{margin:4px 0 0;color:#59636e}.meta code{color:#1f2328}
.badge{font-weight:700;font-size:20px;padding:6px 18px;border-radius:6px;color:#fff;background:#59636e}
.badge.ok{background:#1a7f37;color:#fff}.badge.bad{background:#cf222e;color:#fff}
.cards{display:flex;gap:14px}.card{flex:1;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px}
.card .big{font-size:26px;font-weight:700}.card.met{border-left:6px solid #1a7f37}
.card.missed{border-left:6px solid #cf222e}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:13px}code{font-size:12px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-size:12px;text-transform:uppercase;color:#59636e}.num{text-align:right;white-space:nowrap}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.muted{color:#59636e}
td code,.nowrap,.check{white-space:nowrap}.err{color:#cf222e;min-width:150px;max-width:360px;overflow-wrap:anywhere}
ul.failures{margin:0;padding-left:20px;color:#cf222e}.legend span{margin-right:16px}
.swatch{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
.history{display:flex;gap:18px;align-items:flex-start}.history .scroll{flex:1}
svg text{font:11px system-ui,sans-serif;fill:#424a53}
"""


def _text(value):
    """A value as escaped text for the page; None (or nothing) as a dash."""
    if value is None or value == "":
        return MISSING
    return html.escape(str(value), quote=True)


def _number(value):
    """A number, or None: the data may hold None, strings or booleans where a figure is expected."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def duration(seconds):
    """Seconds for people: "12.3 s", "4 min 05 s", "1 h 05 min", "2 d 03 h"."""
    seconds = _number(seconds)
    if seconds is None:
        return MISSING
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 60:
        return "%.1f s" % seconds
    whole = int(round(seconds))
    if whole < 3600:
        return "%d min %02d s" % (whole // 60, whole % 60)
    if whole < 86400:
        return "%d h %02d min" % (whole // 3600, whole % 3600 // 60)
    return "%d d %02d h" % (whole // 86400, whole % 86400 // 3600)


def size(count):
    """Bytes for people, in binary units: "512 B", "120.6 KiB", "1.5 GiB"."""
    count = _number(count)
    if count is None:
        return MISSING
    if abs(count) < 1024:
        return "%d B" % count
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024.0
        if abs(count) < 1024 or unit == "TiB":
            return "%.1f %s" % (count, unit)


def _passed(result):
    """(label, css class) of a result: only "passed" is good, anything else is shown as it came."""
    if result == "passed":
        return "PASSED", "ok"
    if result == "failed":
        return "FAILED", "bad"
    return _text(str(result).upper() if result else "UNKNOWN"), "muted"


def _yes_no(value, good):
    """yes/no coloured by whether `value` being true is the good case (reachable) or the bad one (stale)."""
    if value is None:
        return '<span class="muted">%s</span>' % MISSING
    return '<span class="%s">%s</span>' % ("ok" if bool(value) == good else "bad", "yes" if value else "no")


def _header(drill, title):
    label, css = _passed(drill.get("result"))
    return ('<header class="top"><div><h1>%s</h1><p class="meta">Drill <code>%s</code> on <b>%s</b>, '
            'started %s, finished %s</p></div><div class="badge %s" id="result">%s</div></header>'
            % (_text(title), _text(drill.get("id")), _text(drill.get("host")), _text(drill.get("started")),
               _text(drill.get("finished")), css, label))


def _failures(drill):
    failures = [item for item in drill.get("failures") or [] if item]
    if not failures:
        return ""
    items = "".join("<li>%s</li>" % _text(item) for item in failures)
    return '<section><h2>What failed</h2><ul class="failures">%s</ul></section>' % items


def _met(key, drill):
    """Whether an objective was met: as the drill said, or else measured against the objective."""
    said = (drill.get("met") or {}).get(key)
    if isinstance(said, bool):
        return said
    objective = _number((drill.get("objectives") or {}).get(key + "_seconds"))
    measured = _number((drill.get("measured") or {}).get(key + "_seconds"))
    return None if objective is None or measured is None else measured <= objective


def _objective_card(key, name, drill):
    met = _met(key, drill)
    css, verdict = {True: ("ok", "met"), False: ("bad", "missed"), None: ("muted", "not measured")}[met]
    card = {True: "met", False: "missed", None: "unknown"}[met]
    objective = (drill.get("objectives") or {}).get(key + "_seconds")
    measured = (drill.get("measured") or {}).get(key + "_seconds")
    return ('<div class="card %s" id="%s"><div class="muted">%s (%s)</div><div class="big">%s</div>'
            '<div>objective %s: <span class="%s">%s</span></div></div>'
            % (card, key, name, key.upper(), duration(measured), duration(objective), css, verdict))


def _objectives(drill):
    return ('<section><h2>Objectives against what the drill measured</h2><div class="cards">%s%s</div></section>'
            % (_objective_card("rto", "Recovery time", drill), _objective_card("rpo", "Recovery point", drill)))


def _checks(checks):
    """Each check as "name: ok" (green) or "name: failed" (red)."""
    if not isinstance(checks, dict) or not checks:
        return MISSING
    return "<br>".join('<span class="check">%s: <span class="%s">%s</span></span>'
                       % (_text(name), "ok" if status == "ok" else "bad", _text(status))
                       for name, status in checks.items())


def _source_row(source):
    label, css = _passed(source.get("result"))
    cells = (_text(source.get("kind")), "<b>%s</b>" % _text(source.get("source")),
             "<code>%s</code>" % _text(source.get("backup_id")),
             '<span class="nowrap">%s</span>' % _text(source.get("backup_time")))
    figures = (duration(source.get("age_seconds")), size(source.get("size")),
               duration(source.get("restore_seconds")))
    return "<tr>%s%s<td>%s</td><td class=\"%s\">%s</td><td class=\"err\">%s</td></tr>" % (
        "".join("<td>%s</td>" % cell for cell in cells), "".join('<td class="num">%s</td>' % f for f in figures),
        _checks(source.get("checks")), css, label, _text(source.get("error")) if source.get("error") else "")


def _table(headings, rows, empty, numeric=()):
    """A table with its headings (those in `numeric` right-aligned over their figures), or a line saying why
    there is none."""
    if not rows:
        return '<p class="muted">%s</p>' % empty
    head = "".join('<th class="num">%s</th>' % heading if heading in numeric else "<th>%s</th>" % heading
                   for heading in headings)
    # In a scrolling box: a long error or id widens its table, not the page.
    return ('<div class="scroll"><table><thead><tr>%s</tr></thead><tbody>%s</tbody></table></div>'
            % (head, "".join(rows)))


def _sources(drill):
    rows = [_source_row(source) for source in drill.get("sources") or [] if isinstance(source, dict)]
    table = _table(("Kind", "Source", "Backup id", "Backup time", "Age", "Size", "Restore", "Checks", "Result",
                    "Error"), rows, "no source was restored", ("Age", "Size", "Restore"))
    return '<section id="sources"><h2>Sources restored</h2>%s</section>' % table


def _location_row(location):
    newest = _number(location.get("newest_age_hours"))
    error = location.get("error")
    return ('<tr><td><code>%s</code></td><td>%s</td><td class="num">%s</td><td>%s</td><td>%s</td>'
            '<td class="err">%s</td></tr>'
            % (_text(location.get("repository")), _yes_no(location.get("reachable"), True),
               _text(_number(location.get("count"))), duration(None if newest is None else newest * 3600),
               _yes_no(location.get("stale"), False), _text(error) if error else ""))


def _locations(locations):
    rows = [_location_row(location) for location in locations or [] if isinstance(location, dict)]
    table = _table(("Repository", "Reachable", "Backups", "Newest backup age", "Stale", "Error"), rows,
                   "no backup location was checked", ("Backups",))
    return '<section id="locations"><h2>Backup locations</h2>%s</section>' % table


def _scale(values):
    """(low, high, ticks) of the log-scale axis: the ticks that frame every value."""
    positive = [value for value in values if value > 0] or [1]
    low = max([tick for tick, _label in TICKS if tick <= min(positive)] or [TICKS[0][0]])
    high = min([tick for tick, _label in TICKS if tick >= max(positive)] or [max(positive)])
    if high <= low:  # every value on one tick: give the axis a decade to stand on
        high = low * 10
    return low, high, [(tick, label) for tick, label in TICKS if low <= tick <= high]


def _plot(low, high, count):
    """Functions from (index, seconds) to SVG coordinates."""
    width = CHART["width"] - CHART["left"] - CHART["right"]
    height = CHART["height"] - CHART["top"] - CHART["bottom"]
    span = math.log10(high) - math.log10(low)

    def x_of(index):
        return CHART["left"] + (width * index / (count - 1) if count > 1 else width / 2.0)

    def y_of(seconds):
        share = (math.log10(min(max(seconds, low), high)) - math.log10(low)) / span
        return CHART["top"] + height * (1 - share)
    return x_of, y_of


def _axes(ticks, y_of):
    left, right = CHART["left"], CHART["width"] - CHART["right"]
    bottom = CHART["height"] - CHART["bottom"]
    parts = ['<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#8c959f"/>' % (left, CHART["top"], left, bottom),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#8c959f"/>' % (left, bottom, right, bottom)]
    for tick, label in ticks:
        y = y_of(tick)
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eaeef2"/>' % (left, y, right, y))
        parts.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (left - 6, y + 4, label))
    parts.append('<text transform="translate(14 %d) rotate(-90)" text-anchor="middle">seconds (log scale)</text>'
                 % ((CHART["top"] + bottom) // 2))
    parts.append('<text x="%d" y="%d" text-anchor="middle">drills, oldest to newest</text>'
                 % ((left + right) // 2, CHART["height"] - 6))
    return parts


def _objective_lines(objectives, y_of):
    """A dashed line per objective, in its series' colour, named at its right end."""
    parts, label_at = [], None
    right = CHART["width"] - CHART["right"]
    for key, name, colour in SERIES:
        objective = _number((objectives or {}).get(key))
        if objective is None or objective <= 0:
            continue
        y = y_of(objective)
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/>'
                     % (CHART["left"], y, right, y, colour))
        # Two objectives close together would print their names over each other: the second moves down a line.
        label_at = y + 4 if label_at is None or abs(y + 4 - label_at) >= 13 else label_at + 13
        parts.append('<text x="%d" y="%.1f">%s objective %s</text>' % (right + 6, label_at, name, duration(objective)))
    return parts


def _x_labels(history, x_of):
    """The date under at most six drills, first and last always, so the labels never overlap."""
    count = len(history)
    picked = sorted(set(int(round(i * (count - 1) / 5.0)) for i in range(6))) if count > 6 else range(count)
    bottom = CHART["height"] - CHART["bottom"]
    return ['<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
            % (x_of(i), bottom + 16, _text(str(history[i].get("started") or history[i].get("id") or "")[:10]))
            for i in picked]


def _series(history, key, name, colour, plot):
    """A series' line and its points; a point's tooltip names the drill, a failed drill's point is ringed red."""
    x_of, y_of = plot
    points = [(i, _number(entry.get(key)), entry) for i, entry in enumerate(history)]
    points = [(i, value, entry) for i, value, entry in points if value is not None]
    parts = []
    if len(points) > 1:
        parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
            colour, " ".join("%.1f,%.1f" % (x_of(i), y_of(value)) for i, value, _entry in points)))
    for i, value, entry in points:
        ring = "#cf222e" if entry.get("result") != "passed" else colour
        parts.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s" stroke="%s" stroke-width="2"><title>%s %s: %s'
                     '</title></circle>' % (x_of(i), y_of(value), colour, ring, _text(entry.get("id")), name,
                                            duration(value)))
    return parts


def history_chart(history, objectives):
    """The RTO and RPO of the last drills as an inline SVG line chart, with the objectives as dashed lines."""
    history = [entry for entry in history if isinstance(entry, dict)][-HISTORY_CHART:]
    values = [_number(entry.get(key)) for entry in history for key, _name, _colour in SERIES]
    values += [_number((objectives or {}).get(key)) for key, _name, _colour in SERIES]
    low, high, ticks = _scale([value for value in values if value is not None])
    plot = _plot(low, high, len(history))
    parts = _axes(ticks, plot[1]) + _objective_lines(objectives, plot[1]) + _x_labels(history, plot[0])
    for key, name, colour in SERIES:
        parts += _series(history, key, name, colour, plot)
    return ('<svg id="history-chart" role="img" width="%d" height="%d" '
            'viewBox="0 0 %d %d" aria-label="RTO and RPO of the last drills">%s</svg>'
            % (CHART["width"], CHART["height"], CHART["width"], CHART["height"], "".join(parts)))


def _history_row(entry):
    label, css = _passed(entry.get("result"))
    return '<tr><td><code>%s</code></td><td class="%s">%s</td><td class="num">%s</td><td class="num">%s</td></tr>' % (
        _text(entry.get("id")), css, label, duration(entry.get("rto_seconds")), duration(entry.get("rpo_seconds")))


def _history(history, objectives):
    history = [entry for entry in history or [] if isinstance(entry, dict)]
    if not history:
        return '<section id="history"><h2>Last drills</h2><p class="muted">no earlier drills</p></section>'
    legend = "".join('<span><i class="swatch" style="background:%s"></i>%s</span>' % (colour, name)
                     for _key, name, colour in SERIES)
    rows = [_history_row(entry) for entry in reversed(history[-HISTORY_ROWS:])]
    note = '<p class="muted">no earlier drills</p>' if len(history) == 1 else ""
    return ('<section id="history"><h2>Last drills</h2><div class="legend">%s<span class="muted">dashed: objective, '
            'red ring: failed drill</span></div><div class="history"><div>%s%s</div>%s</div></section>'
            % (legend, history_chart(history, objectives), note,
               _table(("Drill", "Result", "RTO", "RPO"), rows, "", ("RTO", "RPO"))))


def render_dashboard(drill, history, locations, title="Disaster Recovery Dashboard"):
    """The dashboard of one drill as a complete HTML5 document (a str)."""
    drill = drill if isinstance(drill, dict) else {}
    body = (_header(drill, title) + _failures(drill) + _objectives(drill) + _sources(drill)
            + _locations(locations) + _history(history, drill.get("objectives")))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="%s">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>%s %s</title><style>%s</style></head>\n<body>%s'
            '<footer class="muted">Rendered by keel.ops from the drill\'s own report.</footer></body></html>\n'
            % (CSP, _text(title), _text(drill.get("id")), STYLE, body))
