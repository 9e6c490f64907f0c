import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError
from ansible_collections.keel.ops.plugins.module_utils._postgres import wal

SEG = 16 * 1024 * 1024


def test_lsns_and_segment_names_round_trip():
    assert wal.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert wal.format_lsn(wal.parse_lsn("0/3000028")) == "0/3000028"
    segno = wal.segment_of(wal.parse_lsn("1/FF000028"), SEG)
    assert wal.segment_name(1, segno, SEG) == "0000000100000001000000FF"
    assert wal.parse_segment("0000000100000001000000FF", SEG) == (1, segno)
    assert wal.segment_name(1, segno + 1, SEG) == "000000010000000200000000"


@pytest.mark.parametrize("text", ["", "0/", "x/1", "1/2/3", "123456789/0"])
def test_a_bad_lsn_is_refused_with_its_shape(text):
    with pytest.raises(ConfigError, match="0/3000028"):
        wal.parse_lsn(text)


@pytest.mark.parametrize("name,kind", [("000000010000000000000003", "segment"),
                                       ("000000010000000000000003.partial", "partial"),
                                       ("000000010000000000000003.00000028.backup", "backup"),
                                       ("00000002.history", "history")])
def test_wal_file_kinds(name, kind):
    assert wal.classify(name) == kind


@pytest.mark.parametrize("name", ["../000000010000000000000003", "00000001000000000000000g", "RECOVERYXLOG",
                                  "000000010000000000000003/x", "", None])
def test_anything_else_is_never_a_wal_file_name(name):
    with pytest.raises(ConfigError, match="not the name of a WAL file"):
        wal.classify(name)


def test_a_segment_number_past_the_log_id_is_not_a_segment():
    with pytest.raises(IntegrityError):
        wal.parse_segment("000000010000000000000100", SEG)


def test_history_files_are_parsed_strictly():
    assert wal.parse_history("1\t0/5000060\tbefore 2026-12-02\n\n# comment\n2\t0/7000000\tno target\n", 3) == \
        [(1, 0x5000060), (2, 0x7000000)]
    with pytest.raises(IntegrityError, match="line 1"):
        wal.parse_history("rm -rf /\n", 2)
    with pytest.raises(IntegrityError, match="out of order"):
        wal.parse_history("2\t0/1\tx\n1\t0/2\ty\n", 3)


def _present(*names):
    return set(wal.parse_segment(name, SEG) for name in names)


def test_continuity_finds_a_gap_and_names_the_missing_segment():
    present = _present("000000010000000000000004", "000000010000000000000005", "000000010000000000000007")
    result = wal.check_continuity(1, 4, present, {}, SEG)
    assert result["missing"] == ["000000010000000000000006"]
    assert result["found"] == 3
    assert result["unbroken_until"] == "000000010000000000000005"
    assert result["last"] == "000000010000000000000007"


def test_continuity_follows_a_timeline_switch():
    present = _present("000000010000000000000004", "000000010000000000000005", "000000020000000000000006",
                       "000000020000000000000007")
    histories = {2: [(1, wal.parse_lsn("0/60000A0"))]}
    result = wal.check_continuity(1, 4, present, histories, SEG)
    assert result["missing"] == []
    assert result["timelines"] == [1, 2]
    assert result["switches"] == [{"timeline": 2, "from_lsn": "0/60000A0"}]


def test_a_sibling_timeline_that_does_not_descend_from_the_backup_is_not_followed():
    present = _present("000000020000000000000004", "000000030000000000000009")
    histories = {3: [(1, wal.parse_lsn("0/9000000"))]}  # 3 forked from 1, not from the backup's 2
    assert wal.timeline_path(2, histories) == [(2, None)]
    assert wal.check_continuity(2, 4, present, histories, SEG)["missing"] == []


def test_a_timeline_that_forked_before_the_backup_started_is_not_followed():
    # An earlier restore forked timeline 2 at 0/5000000; the old server went on on timeline 1 and took this backup
    # later, at 0/7000028: its WAL stays on timeline 1.
    histories = {2: [(1, wal.parse_lsn("0/5000000"))]}
    present = _present("000000010000000000000007", "000000010000000000000008", "000000020000000000000005")
    result = wal.check_continuity(1, 7, present, histories, SEG, start_lsn=wal.parse_lsn("0/7000028"))
    assert result["timelines"] == [1] and result["missing"] == []
    assert wal.timeline_path(1, histories, wal.parse_lsn("0/4000028")) == [(1, None), (2, wal.parse_lsn("0/5000000"))]
