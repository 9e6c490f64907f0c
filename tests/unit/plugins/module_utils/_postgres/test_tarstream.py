import io
import os
import tarfile

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError
from ansible_collections.keel.ops.plugins.module_utils._postgres import tarstream


def _tar(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Trickle:
    """Hands the stream over in odd-sized pieces, as a pipe would."""

    def __init__(self, data, size):
        self.data, self.size = data, size

    def read(self, size=-1):
        chunk, self.data = self.data[:self.size], self.data[self.size:]
        return chunk


LABEL = b"START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\nSTART TIMELINE: 1\nLABEL: keel\n"
MANIFEST_END = b'"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/4000028", "End-LSN": "0/4000120" }\n],\n'


@pytest.mark.parametrize("piece", [1, 511, 512, 4096, 1 << 20])
def test_the_sniffer_passes_the_stream_unchanged_and_keeps_the_label_and_the_manifest_end(piece):
    data = _tar([("base", None), ("base/1", os.urandom(70000)), ("backup_label", LABEL),
                 ("backup_manifest", b"x" * 200000 + MANIFEST_END)])
    sniffer = tarstream.TarSniffer(_Trickle(data, piece))
    out = b"".join(iter(lambda: sniffer.read(piece), b""))
    assert out == data
    assert tarstream.parse_backup_label(sniffer.text("backup_label"))["START TIMELINE"] == "1"
    assert len(sniffer.captured["backup_manifest"]) == tarstream.CAPTURE_LIMIT
    assert tarstream.manifest_wal_ranges(sniffer.text("backup_manifest")) == [(1, "0/4000028", "0/4000120")]


def test_a_stream_without_a_label_cannot_be_restored():
    with pytest.raises(IntegrityError, match="backup_label"):
        tarstream.parse_backup_label("")


def test_unpack_writes_private_files_and_directories(tmp_path):
    data = _tar([("base", None), ("base/1", b"page"), ("PG_VERSION", b"18\n")])
    files, size = tarstream.unpack(io.BytesIO(data), str(tmp_path))
    assert (files, size) == (2, 7)
    assert oct(os.stat(tmp_path / "base").st_mode & 0o777) == "0o700"
    assert oct(os.stat(tmp_path / "base" / "1").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("name", ["../escape", "/etc/evil", "base/../../escape"])
def test_unpack_refuses_a_member_outside_the_directory(tmp_path, name):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(IntegrityError, match="outside"):
        tarstream.unpack(io.BytesIO(_tar([(name, b"x")])), str(root))
    assert not (tmp_path / "escape").exists()


def test_unpack_refuses_links(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("pg_wal")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        archive.addfile(info)
    with pytest.raises(IntegrityError, match="neither a file nor a directory"):
        tarstream.unpack(io.BytesIO(buffer.getvalue()), str(tmp_path))
