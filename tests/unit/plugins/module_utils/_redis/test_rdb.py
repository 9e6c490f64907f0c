"""Looking at an RDB as it streams: lengths, RESIZEDB records, and redis-check-rdb's report."""

import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError
from ansible_collections.keel.ops.plugins.module_utils._redis import rdb as redis_rdb
from ansible_collections.keel.ops.plugins.module_utils._redis import server as redis_server


@pytest.mark.parametrize("data, expected", [
    (b"\x05", (5, 1)),
    (b"\x41\x02", (258, 2)),
    (b"\x80\x00\x01\x00\x00", (65536, 5)),
    (b"\x81" + (2 ** 40).to_bytes(8, "big"), (2 ** 40, 9)),
    (b"\x41", None),
    (b"\x80\x00", None),
    (b"\xc0\x01", False),
])
def test_rdb_lengths(data, expected):
    assert redis_rdb.read_length(data, 0) == expected


def test_resizedb_records_are_found_across_chunk_boundaries():
    noise = bytes(b for b in os.urandom(5000) if b != 0xFE)
    stream = noise + b"\xfe\x03\xfb\x41\x00\x07" + noise + b"\xfe\x41\x2c\xfb\x05\x80\x00\x00\x00\x02" + noise
    for size in (1, 3, 7, 1000, len(stream)):
        scanner = redis_rdb.ResizeDbScanner()
        for start in range(0, len(stream), size):
            scanner.feed(stream[start:start + size])
        assert scanner.records == {len(noise) + 2: (256, 7), 2 * len(noise) + 6 + 3: (5, 2)}


OK_REPORT = """[offset 0] Checking RDB file /dev/stdin
[offset 27] AUX FIELD redis-ver = '7.0.15'
[offset 68] AUX FIELD used-mem = '1018328'
[offset 82] Selecting DB ID 0
[offset 108] Selecting DB ID 3
[offset 258] Checksum OK
[offset 258] \\o/ RDB looks OK! \\o/
[info] 11 keys read
[info] 1 expires
[info] 0 already expired
"""


BAD_REPORT = """[offset 0] Checking RDB file /dev/stdin
[offset 82] Selecting DB ID 0
--- RDB ERROR DETECTED ---
[offset 115] RDB CRC error
[additional info] While doing: check-sum
[info] 3 keys read
[info] 0 expires
[info] 0 already expired
"""


def test_check_report_parsing():
    report = redis_rdb.parse_check_report(OK_REPORT)
    assert report["ok"] and report["checksum"] == "ok" and report["aux"]["redis-ver"] == "7.0.15"
    assert report["databases_at"] == [(82, 0), (108, 3)] and (report["keys"], report["expires"]) == (11, 1)
    bad = redis_rdb.parse_check_report(BAD_REPORT)
    assert not bad["ok"] and bad["errors"] == ["at byte 115: RDB CRC error", "While doing: check-sum"]


class FakeChecker:
    binary = redis_server.Binary("/usr/bin/redis-check-rdb", (7, 0, 15))

    def __init__(self, report):
        self.report = redis_rdb.parse_check_report(report)
        self.fed = b""

    def write(self, data):
        self.fed += data

    def finish(self):
        return self.report


def inspect(report, stream):
    inspector = redis_rdb.RdbInspector(FakeChecker(report))
    for start in range(0, len(stream), 5):
        inspector.feed(stream[start:start + 5])
    return inspector.finish()


def rdb_with(db0, db3):
    """An RDB-like stream whose SELECTDB+RESIZEDB records sit where OK_REPORT says (offsets 82 and 108), and a
    look-alike elsewhere that must be ignored."""
    return (b"REDIS0010" + b"\x00" * 71 + b"\xfe\x00\xfb" + db0 + b"." * 21 + b"\xfe\x03\xfb" + db3
            + b"\xfe\x00\xfb\x63\x63" + b"." * 200)


def test_per_database_counts_come_from_the_resizedb_records_check_rdb_points_at():
    stats = inspect(OK_REPORT, rdb_with(b"\x08\x01", b"\x03\x00"))
    assert stats["databases"] == {"0": {"keys": 8, "expires": 1}, "3": {"keys": 3, "expires": 0}}
    assert (stats["rdb_version"], stats["redis_version"], stats["used_memory"]) == (10, "7.0.15", 1018328)
    assert stats["checksum"] == "ok" and "7.0.15" in stats["checked_by"]


def test_per_database_counts_are_dropped_when_they_do_not_add_up():
    stream = rdb_with(b"\x09\x01", b"\x03\x00")
    assert inspect(OK_REPORT, stream)["databases"] is None  # 9 + 3 keys, but check-rdb read 11
    one_db = OK_REPORT.replace("[offset 108] Selecting DB ID 3\n", "")
    assert inspect(one_db, stream)["databases"] == {"0": {"keys": 11, "expires": 1}}


def test_a_stream_that_is_no_rdb_is_refused():
    with pytest.raises(IntegrityError, match="does not start like an RDB"):
        inspect(OK_REPORT, b"<html>" + b"." * 300)
