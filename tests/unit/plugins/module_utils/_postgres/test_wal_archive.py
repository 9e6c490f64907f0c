import io
import json
import os
import struct
import time

import pytest
from pyrage import x25519

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError
from ansible_collections.keel.ops.plugins.module_utils._postgres import wal_command
from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_archive import ArchiveMismatch, WalArchive

SEG = 16 * 1024 * 1024


def segment(path, sysid=7000000000000000001, fill=b"w"):
    """A file shaped like a WAL segment: a long page header naming its cluster, then data."""
    header = struct.pack("<HHIQI4xQII", 0xD118, 0x0002, 1, 0, 0, sysid, SEG, 8192)
    with open(path, "wb") as handle:
        handle.write(header + fill * (1024 * 1024 - len(header)))
    return str(path)


@pytest.fixture
def archive(tmp_path):
    return WalArchive(LocalStorage(str(tmp_path / "repo")), "db1")


def test_a_pushed_segment_comes_back_identical_and_a_second_push_stores_nothing(archive, tmp_path):
    name = "000000010000000000000003"
    source = segment(tmp_path / name)
    assert archive.push(source, name) == "stored"
    assert archive.push(source, name) == "already archived"
    assert len(archive.stored(name)) == 1
    assert archive.fetch(name, str(tmp_path / "RECOVERYXLOG"))
    assert open(tmp_path / "RECOVERYXLOG", "rb").read() == open(source, "rb").read()
    assert not archive.fetch("000000010000000000000004", str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()


def test_a_different_file_under_an_archived_name_is_refused(archive, tmp_path):
    name = "000000010000000000000003"
    archive.push(segment(tmp_path / "a"), name)
    with pytest.raises(ArchiveMismatch, match="already archived with other content"):
        archive.push(segment(tmp_path / "b", fill=b"x"), name)


def test_wal_of_another_cluster_is_refused(archive, tmp_path):
    archive.push(segment(tmp_path / "a"), "000000010000000000000003")
    with pytest.raises(ArchiveMismatch, match="system identifier 7000000000000000001"):
        archive.push(segment(tmp_path / "b", sysid=42), "000000010000000000000004")


def test_a_flipped_byte_in_the_repository_is_caught_and_nothing_is_left(archive, tmp_path):
    name = "000000010000000000000003"
    archive.push(segment(tmp_path / name), name)
    stored = os.path.join(str(tmp_path / "repo"), archive.stored(name)[0].key)
    data = bytearray(open(stored, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(stored, "wb").write(bytes(data))
    with pytest.raises(IntegrityError):
        archive.fetch(name, str(tmp_path / "RECOVERYXLOG"))
    assert sorted(os.listdir(tmp_path)) == [name, "repo"]  # neither RECOVERYXLOG nor its temporary file


def test_encrypted_segments_need_the_key(tmp_path):
    identity = x25519.Identity.generate()
    storage = LocalStorage(str(tmp_path / "repo"))
    name = "000000010000000000000003"
    WalArchive(storage, "db1", recipients=[identity.to_public()]).push(segment(tmp_path / name), name)
    with pytest.raises(IntegrityError, match="no decryption key"):
        WalArchive(storage, "db1").fetch(name, str(tmp_path / "out"))
    assert WalArchive(storage, "db1", identities=[identity]).fetch(name, str(tmp_path / "out"))


def test_expiry_keeps_history_and_everything_from_the_oldest_backup(archive, tmp_path):
    for number in range(3, 8):
        name = "0000000100000000000000%02X" % number
        archive.push(segment(tmp_path / name), name)
    (tmp_path / "00000002.history").write_text("1\t0/7000000\tno recovery target specified\n")
    archive.push(str(tmp_path / "00000002.history"), "00000002.history")
    assert archive.expire(5, SEG) == ["000000010000000000000003", "000000010000000000000004"]
    files = archive.files()
    assert [item.name for item in files["segment"]] == ["0000000100000000000000%02X" % n for n in (5, 6, 7)]
    assert archive.histories() == {2: [(1, 0x7000000)]}


def _config(tmp_path, **extra):
    path = tmp_path / "wal.json"
    path.write_text(json.dumps(dict({"repository": str(tmp_path / "repo"), "source": "db1"}, **extra)))
    return str(path)


def test_the_command_pushes_and_fetches_with_postgresql_exit_codes(tmp_path):
    name = "000000010000000000000003"
    config = _config(tmp_path)
    source = segment(tmp_path / name)
    assert wal_command.main(["push", "--config", config, source, name]) == 0
    assert wal_command.main(["fetch", "--config", config, name, str(tmp_path / "back")]) == 0
    assert wal_command.main(["fetch", "--config", config, "000000010000000000000009", str(tmp_path / "x")]) == 1
    errors = io.StringIO()
    assert wal_command.main(["fetch", "--config", config, "../../etc/passwd", "x"], errors) == 126
    assert "not the name of a WAL file" in errors.getvalue()
    assert wal_command.main(["push", "--config"], errors) == 126


LAUNCHER = """import sys
sys.path.insert(0, %r)
from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_command import main
sys.exit(main(sys.argv[1:]))
"""


def _wait(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_an_async_push_starts_a_worker_that_archives_the_ready_segments_ahead(tmp_path):
    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    names = ["0000000100000000000000%02X" % n for n in range(3, 7)]
    for name in names:
        segment(pg_wal / name)
        (pg_wal / "archive_status" / (name + ".ready")).write_text("")
    config_path = _config(tmp_path, **{"async": True, "batch": 3, "workers": 2})
    launcher = tmp_path / "keel-wal"
    launcher.write_text(LAUNCHER % wal_command.__file__.split("/ansible_collections/", maxsplit=1)[0])
    spool = pg_wal / "keel-spool"
    archive = wal_command.open_archive(wal_command.load_config(config_path))

    assert wal_command.main(["push", "--config", config_path, str(pg_wal / names[0]), names[0]],
                            launcher=str(launcher)) == 0
    assert archive.stored(names[0])
    os.rename(pg_wal / "archive_status" / (names[0] + ".ready"), pg_wal / "archive_status" / (names[0] + ".done"))
    assert _wait(lambda: all((spool / (name + ".ok")).exists() for name in names[1:])), os.listdir(spool)
    assert all(archive.stored(name) for name in names)  # a mark only once the segment is in the archive
    for name in names[1:]:  # PostgreSQL's own calls: acknowledged from the marks
        assert wal_command.main(["push", "--config", config_path, str(pg_wal / name), name]) == 0
        assert not (spool / (name + ".ok")).exists()
    assert _wait(lambda: not wal_command.worker_running(str(spool)), 15), "the worker exits once idle"


def test_a_fetch_starts_a_worker_that_fetches_the_next_segments_ahead_and_proves_them(tmp_path):
    names = ["0000000100000000000000%02X" % n for n in range(3, 9)]
    config_path = _config(tmp_path, prefetch=3)
    archive = wal_command.open_archive(wal_command.load_config(config_path))
    for name in names:
        archive.push(segment(tmp_path / name, fill=name[-1].encode()), name)
    launcher = tmp_path / "keel-wal"
    launcher.write_text(LAUNCHER % wal_command.__file__.split("/ansible_collections/", maxsplit=1)[0])
    pg_wal = tmp_path / "restored" / "pg_wal"
    pg_wal.mkdir(parents=True)
    ahead = pg_wal / wal_command.PREFETCH

    def fetch(name):
        return wal_command.main(["fetch", "--config", config_path, name, str(pg_wal / "RECOVERYXLOG")],
                                launcher=str(launcher))

    assert fetch(names[0]) == 0
    assert _wait(lambda: sorted(p.name for p in ahead.glob("0*")) == names[1:4]), os.listdir(ahead)
    for name in names[1:]:  # replay takes them one by one; the worker keeps three ahead until the archive ends
        assert fetch(name) == 0
        assert (pg_wal / "RECOVERYXLOG").read_bytes() == (tmp_path / name).read_bytes()
    assert fetch("0000000100000000000000%02X" % 9) == 1
    assert _wait(lambda: not wal_command.worker_running(str(ahead)), 20)
