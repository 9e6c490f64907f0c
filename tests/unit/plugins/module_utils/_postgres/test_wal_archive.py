import io
import json
import os
import struct

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


def test_async_push_archives_ready_segments_ahead_and_acknowledges_them_from_the_spool(tmp_path):
    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    names = ["0000000100000000000000%02X" % n for n in range(3, 7)]
    for name in names:
        segment(pg_wal / name)
        (pg_wal / "archive_status" / (name + ".ready")).write_text("")
    config = wal_command.load_config(_config(tmp_path, **{"async": True, "batch": 3}))
    assert wal_command.push(config, str(pg_wal / names[0]), names[0]) == "stored"
    archive = wal_command.open_archive(config)
    assert [bool(archive.stored(name)) for name in names] == [True, True, True, False]
    assert sorted(os.listdir(pg_wal / "keel-spool")) == [names[1] + ".ok", names[2] + ".ok"]
    assert wal_command.push(config, str(pg_wal / names[1]), names[1]) == "archived ahead"
    assert sorted(os.listdir(pg_wal / "keel-spool")) == [names[2] + ".ok"]
