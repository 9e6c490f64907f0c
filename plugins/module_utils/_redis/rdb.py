# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Looking at an RDB as it streams past, never holding it nor writing it to disk: redis-check-rdb fed the same
stream (checksum, structure, key totals), the RESIZEDB records that give each database's exact key count, and
the readers and writers that put the inspection in a pipeline.
"""

import contextlib
import os
import re
import subprocess

from ansible_collections.keel.ops.plugins.module_utils import _process as process

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import failing_as, os_reason


RESIZEDB_RECORDS_MAX = 100000


# SELECTDB (0xFE) <database as a 6- or 14-bit length> RESIZEDB (0xFB): where each database's key counts are.
_SELECT_RESIZE = re.compile(b"\xfe(?:[\x00-\x3f]|[\x40-\x7f][\x00-\xff])\xfb", re.S)


_SCAN_TAIL = 24  # a match (4 bytes at most) and two lengths (9 bytes each at most)


def read_length(data, pos):
    """An RDB length-encoded integer at data[pos:]: (value, next position), None if the data ends first, or
    False if the bytes there hold a special encoding rather than a length."""
    if pos >= len(data):
        return None
    first = data[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, pos + 1
    if kind == 1:
        return (((first & 0x3F) << 8) | data[pos + 1], pos + 2) if pos + 2 <= len(data) else None
    width = {0x80: 4, 0x81: 8}.get(first)
    if width is None:
        return False
    end = pos + 1 + width
    return (int.from_bytes(data[pos + 1:end], "big"), end) if end <= len(data) else None


class ResizeDbScanner:
    """Every place that looks like SELECTDB+RESIZEDB, by offset. Values in the data can look like one too: only
    the offsets redis-check-rdb reports as "Selecting DB" are used in the end."""

    def __init__(self):
        self.records = {}
        self.offset = 0
        self.tail = b""
        self.overflow = False

    def feed(self, data):
        # The chunk itself, then the seam with the previous one (its tail and our head), without copying the chunk.
        self._scan(data, self.offset)
        self._scan(self.tail + data[:2 * _SCAN_TAIL], self.offset - len(self.tail))
        self.offset += len(data)
        self.tail = (self.tail + data)[-_SCAN_TAIL:] if len(data) < _SCAN_TAIL else data[-_SCAN_TAIL:]

    def _scan(self, window, base):
        for match in _SELECT_RESIZE.finditer(window):
            at = base + match.end() - 1
            if at in self.records:
                continue
            sizes = self._sizes(window, match.end())
            if sizes is None:
                continue  # cut off at the end of the window: the next seam sees it whole
            if sizes is not False and len(self.records) < RESIZEDB_RECORDS_MAX:
                self.records[at] = sizes
            elif sizes is not False:
                self.overflow = True

    @staticmethod
    def _sizes(window, pos):
        keys = read_length(window, pos)
        if not keys:
            return keys
        expires = read_length(window, keys[1])
        if not expires:
            return expires
        return keys[0], expires[0]


_REPORT_LINE = re.compile(r"^\[offset (\d+)\] (.*)$")


def parse_check_report(text):
    """redis-check-rdb's report: verdict, checksum, aux fields, where each database starts, key totals, errors."""
    report = {"ok": False, "checksum": None, "aux": {}, "databases_at": [], "keys": None, "expires": None,
              "already_expired": None, "errors": []}
    failed = False
    for line in text.splitlines():
        line = line.rstrip()
        match = _REPORT_LINE.match(line)
        if match:
            _parse_offset_line(report, int(match.group(1)), match.group(2), failed)
        elif line.startswith("[info] "):
            count, _space, what = line[len("[info] "):].partition(" ")
            field = {"keys read": "keys", "expires": "expires", "already expired": "already_expired"}.get(what)
            if field and count.isdigit():
                report[field] = int(count)
        elif line.startswith("--- RDB ERROR DETECTED ---"):
            failed = True
        elif line.startswith("[additional info] "):
            report["errors"].append(line[len("[additional info] "):])
    report["ok"] = report["ok"] and not failed
    return report


def _parse_offset_line(report, offset, message, failed):
    if failed:
        report["errors"].insert(0, "at byte %d: %s" % (offset, message))
    elif message.startswith("AUX FIELD "):
        name, _sep, value = message[len("AUX FIELD "):].partition(" = ")
        report["aux"][name] = value.strip("'")
    elif message.startswith("Selecting DB ID "):
        report["databases_at"].append((offset, int(message.split()[-1])))
    elif message == "Checksum OK":
        report["checksum"] = "ok"
    elif "checksum disabled" in message:
        report["checksum"] = "disabled"
    elif "RDB looks OK" in message:
        report["ok"] = True


def named_link(binary, workdir, name):
    """A link called `name` to a Redis binary: one executable is redis-server or redis-check-rdb by argv[0]."""
    link = os.path.join(workdir, "bin-%s" % os.urandom(4).hex(), name)
    os.makedirs(os.path.dirname(link), mode=0o700)
    os.symlink(binary, link)
    return link


def child_env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}


class RdbCheck:
    """redis-check-rdb reading an RDB on its stdin; its report is read when the stream ends (or it stops)."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.report_path = os.path.join(workdir, "redis-check-rdb.%s.out" % os.urandom(4).hex())
        with failing_as("starting %s" % binary.describe("redis-check-rdb"),
                        "check that it runs here, and that TMPDIR has room"):
            with open(self.report_path, "wb") as out:
                self.child = process.Child([named_link(binary.path, workdir, "redis-check-rdb"), "/dev/stdin"],
                                           child_env(), workdir, stdin=subprocess.PIPE, stdout=out)

    def write(self, data):
        try:
            self.child.proc.stdin.write(data)
        except BrokenPipeError:
            # It stopped reading: it found something wrong, and its report says what.
            self.finish()
            raise IntegrityError("redis-check-rdb stopped before the end of the RDB")
        except OSError as error:
            raise RedisError("feeding the RDB to %s failed: %s"
                             % (self.binary.describe("redis-check-rdb"), os_reason(error)))

    def finish(self):
        with contextlib.suppress(BrokenPipeError):
            self.child.proc.stdin.close()
        code = self.child.proc.wait()
        with failing_as("reading the report of %s" % self.binary.describe("redis-check-rdb"), "check TMPDIR"):
            with open(self.report_path, "r", errors="replace") as handle:
                report = parse_check_report(handle.read())
        if code != 0 or not report["ok"]:
            detail = "; ".join(report["errors"][:4]) or self.child.stderr_tail() or "exit status %d" % code
            raise IntegrityError("the RDB is not valid according to %s: %s"
                                 % (self.binary.describe("redis-check-rdb"), detail))
        return report

    def kill(self):
        self.child.kill()


class RdbInspector:
    """What an RDB says about itself as it streams past: its header, redis-check-rdb's verdict, and each
    database's key counts from its RESIZEDB record (exact: the saving child wrote its frozen dict sizes)."""

    def __init__(self, checker):
        self.checker = checker
        self.scanner = ResizeDbScanner()
        self.head = b""
        self.size = 0
        self.aux = {}  # the RDB's AUX fields, once finish() has the report

    def feed(self, data):
        if len(self.head) < 9:
            self.head += data[:9 - len(self.head)]
        self.scanner.feed(data)
        self.checker.write(data)
        self.size += len(data)

    def rdb_version(self):
        if len(self.head) < 9 or not self.head.startswith(b"REDIS") or not self.head[5:9].isdigit():
            raise IntegrityError("the stream does not start like an RDB (REDISnnnn): %r" % self.head)
        return int(self.head[5:9])

    def finish(self):
        """The RDB's statistics for the manifest; raises IntegrityError when redis-check-rdb found it broken."""
        report = self.checker.finish()
        databases = self._databases(report)
        aux = self.aux = report["aux"]
        return {"rdb_version": self.rdb_version(), "redis_version": aux.get("redis-ver"),
                "used_memory": int(aux["used-mem"]) if aux.get("used-mem", "").isdigit() else None,
                "ctime": int(aux["ctime"]) if aux.get("ctime", "").isdigit() else None,
                "keys": report["keys"], "expires": report["expires"],
                "already_expired": report["already_expired"], "databases": databases,
                "checksum": report["checksum"] or "absent",
                "checked_by": self.checker.binary.describe("redis-check-rdb"),
                "rdb_size": self.size}

    def _databases(self, report):
        found = {}
        for offset, db in report["databases_at"]:
            sizes = self.scanner.records.get(offset)
            if sizes is None:
                break
            found[str(db)] = {"keys": sizes[0], "expires": sizes[1]}
        else:
            if (sum(v["keys"] for v in found.values()) == report["keys"]
                    and sum(v["expires"] for v in found.values()) == report["expires"]):
                return found
        if len(report["databases_at"]) == 1:  # one database: the totals are its counts
            return {str(report["databases_at"][0][1]): {"keys": report["keys"], "expires": report["expires"]}}
        return None


class InspectingReader:
    """A reader that shows every chunk to an RdbInspector on its way through."""

    def __init__(self, source, inspector):
        self.source = source
        self.inspector = inspector

    def read(self, size=-1):
        data = self.source.read(size)
        if data:
            self.inspector.feed(data)
        return data


class InspectingWriter:
    """A writer that shows every chunk to an RdbInspector before passing it on."""

    def __init__(self, sink, inspector):
        self.sink = sink
        self.inspector = inspector

    def write(self, data):
        self.inspector.feed(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        pass


class NullSink:
    def write(self, data):
        return len(data)

    def flush(self):
        pass
