# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write-ahead log names and positions: LSNs, segment names and numbers, timeline history, and the continuity
check of an archive (which segments a backup needs, which are there, which are missing).

Every name here comes from PostgreSQL or from a repository, so each is matched against its exact shape before it
is used as part of a storage key; nothing else is ever accepted as a WAL file name.
"""

import re

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError


DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
_PARTIAL = re.compile(r"^([0-9A-F]{24})\.partial$")
_BACKUP_FILE = re.compile(r"^([0-9A-F]{24})\.[0-9A-F]{8}\.backup$")
_HISTORY = re.compile(r"^([0-9A-F]{8})\.history$")
_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text, what="LSN"):
    """'16/B374D848' -> an integer position."""
    match = _LSN.match(str(text).strip())
    if not match:
        raise ConfigError("%s must look like 0/3000028 (two hexadecimal numbers around a slash), got %r"
                          % (what, text))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(position):
    return "%X/%X" % (position >> 32, position & 0xFFFFFFFF)


def segments_per_id(segment_size):
    return 0x100000000 // segment_size


def segment_name(timeline, segno, segment_size):
    per_id = segments_per_id(segment_size)
    return "%08X%08X%08X" % (timeline, segno // per_id, segno % per_id)


def segment_of(position, segment_size):
    """The number of the segment holding an LSN."""
    return position // segment_size


def parse_segment(name, segment_size):
    """A full segment name -> (timeline, segment number)."""
    match = _SEGMENT.match(name)
    if not match:
        raise IntegrityError("%r is not a WAL segment name" % name)
    timeline, log, seg = (int(part, 16) for part in match.groups())
    if seg >= segments_per_id(segment_size) or timeline == 0:
        raise IntegrityError("%r is not a WAL segment name for %d MiB segments" % (name, segment_size >> 20))
    return timeline, log * segments_per_id(segment_size) + seg


def classify(name):
    """What PostgreSQL hands the archive: 'segment', 'partial', 'backup' (a backup history file) or 'history'
    (a timeline history file). Anything else is refused: it would never be a WAL file, and it will become part of
    a key."""
    for kind, pattern in (("segment", _SEGMENT), ("partial", _PARTIAL), ("backup", _BACKUP_FILE),
                          ("history", _HISTORY)):
        if pattern.match(name or ""):
            return kind
    raise ConfigError("%r is not the name of a WAL file (a segment such as 000000010000000000000003, a .partial, "
                      ".backup or .history file): refusing it" % (name,))


def directory_of(name):
    """The archive folder of a WAL file: segments by timeline and log id (like PostgreSQL's own numbering), so
    no folder grows past 256 files per GB of WAL; timeline history files in one folder of their own."""
    return "timelines" if classify(name) == "history" else name[:16]


def timeline_of(name):
    return int(name[:8], 16)


def parse_history(text, timeline):
    """A timeline history file -> [(parent timeline, switch LSN)], oldest first. The file is data from a
    repository: every line must have its exact shape."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        try:
            parent, switch = int(fields[0]), parse_lsn(fields[1])
        except (ValueError, IndexError, ConfigError):
            raise IntegrityError("line %d of the history file of timeline %d is not '<timeline> <LSN> <reason>': "
                                 "%r" % (number, timeline, line[:200]))
        if parent >= timeline or (entries and parent <= entries[-1][0]):
            raise IntegrityError("the history file of timeline %d lists timeline %d out of order" % (timeline, parent))
        entries.append((parent, switch))
    return entries


def timeline_path(start_timeline, histories, start_lsn=0):
    """The timelines replay follows from a backup's timeline to the newest one descending from it:
    [(timeline, the switch LSN where it began, or None)]. `histories` maps a timeline to its parsed history. A
    timeline that forked from the backup's before the backup started is no descendant of the backup (the old
    server went on after the fork and took the backup later): replay cannot follow it."""
    descendants = [tli for tli, history in histories.items()
                   if tli > start_timeline and any(parent == start_timeline and switch >= start_lsn
                                                   for parent, switch in history)]
    if not descendants:
        return [(start_timeline, None)]
    newest = max(descendants)
    path = [(start_timeline, None)]
    history = histories[newest]
    for index, (parent, _switch) in enumerate(history):
        if parent > start_timeline:
            path.append((parent, history[index - 1][1]))
    path.append((newest, history[-1][1]))
    return path


def check_continuity(start_timeline, start_segno, present, histories, segment_size, start_lsn=None):
    """Which segments replay needs from a backup's first segment to the newest one archived, along the timelines
    that descend from it; `present` is a set of (timeline, segno). Returns found, missing (names), the timeline
    switches and the last segment of the unbroken run."""
    path = timeline_path(start_timeline, histories, start_segno * segment_size if start_lsn is None else start_lsn)
    switch_segnos = [(tli, segment_of(switch, segment_size) if switch is not None else start_segno)
                     for tli, switch in path]
    on_path = [segno for tli, segno in present if any(tli == step for step, _first in path)]
    newest = max(on_path + [start_segno])
    found, missing, unbroken = 0, [], None
    for segno in range(start_segno, newest + 1):
        timeline = [tli for tli, first in switch_segnos if first <= segno][-1]
        if (timeline, segno) in present:
            found += 1
            if not missing:
                unbroken = segment_name(timeline, segno, segment_size)
        else:
            missing.append(segment_name(timeline, segno, segment_size))
    switches = [{"timeline": tli, "from_lsn": format_lsn(switch)} for tli, switch in path if switch is not None]
    return {"found": found, "missing": missing, "timelines": [tli for tli, _switch in path], "switches": switches,
            "first": segment_name(start_timeline, start_segno, segment_size),
            "last": segment_name(switch_segnos[-1][0], newest, segment_size), "unbroken_until": unbroken}
