"""A file set as a tar stream with its index, and the way back."""

import io
import json
import os
import tarfile

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError
from ansible_collections.keel.ops.plugins.module_utils._files import archive, selection


def _read_all(reader):
    data = b"".join(iter(lambda: reader.read(65536), b""))
    reader.close()
    return data


def test_the_stream_and_the_index_agree_on_every_entry(tmp_path):
    root = tmp_path / "set"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_bytes(b"content")
    os.symlink("d/f.txt", str(root / "l"))
    os.link(str(root / "d" / "f.txt"), str(root / "h"))
    work = tmp_path / "work"
    work.mkdir()
    reader = archive.ArchiveReader(selection.Selection([str(root)]), str(work))
    data = _read_all(reader)
    with open(reader.index_path) as handle:
        index = archive.read_index(handle.read().splitlines())
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(data))}
    assert set(members) == set(index)
    name = selection.arcname(str(root / "d" / "f.txt"))
    assert index[name]["sha256"] == archive.digest_of(io.BytesIO(b"content")) and index[name]["size"] == 7
    assert [index[selection.arcname(str(root / n))]["type"] for n in ("l", "h")] == ["symlink", "hardlink"]
    assert reader.counts["files"] == 1 and reader.counts["hardlinks"] == 1 and reader.bytes == 7


def test_a_file_that_shrank_or_grew_while_read_is_stored_at_its_header_size_and_marked():
    shrank = archive._SizedReader(io.BytesIO(b"abc"), 5)  # pylint: disable=protected-access
    assert shrank.read(5) == b"abc\0\0" and shrank.changed
    grew = archive._SizedReader(io.BytesIO(b"abcdef"), 3)  # pylint: disable=protected-access
    assert grew.read(10) == b"abc" and grew.changed
    same = archive._SizedReader(io.BytesIO(b"abc"), 3)  # pylint: disable=protected-access
    assert same.read(3) == b"abc" and not same.changed


@pytest.mark.parametrize("line", [
    "not json", "[1]", json.dumps({"name": "a", "type": "fifo", "mode": 0}),
    json.dumps({"name": "a", "type": "file", "mode": 420, "uid": 0, "gid": 0, "mtime": 1}),  # no sha256, no size
    json.dumps({"name": "a", "type": "directory", "mode": 493, "uid": "root", "gid": 0, "mtime": 1}),
    json.dumps({"name": 5, "type": "directory", "mode": 493}),
])
def test_an_index_line_keel_did_not_write_is_refused(line):
    with pytest.raises(IntegrityError, match="line 1 of the file set's index"):
        archive.read_index([line])


def test_index_lines_are_parsed_across_writes():
    line = json.dumps({"name": "a/b", "type": "directory", "mode": 493, "uid": 0, "gid": 0, "mtime": 1}).encode()
    collector = archive.IndexCollector()
    for part in (line[:5], line[5:] + b"\n" + line[:3].replace(b"a/b", b"a/c"), line[3:].replace(b"a/b", b"a/c")):
        collector.write(part)
    collector.close()
    assert sorted(collector.records) == ["a/b", "a/c"] and collector.records["a/b"]["mode"] == 493
    assert collector.records["a/b"].get("link") is None and collector.records["a/b"].get("sqlite", False) is False


def test_a_handler_failure_reaches_the_writer_of_the_stream():
    def refuse(member, _archive):
        raise IntegrityError("refused %s" % member.name)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("x"), io.BytesIO(b""))
    consumer = archive.TarConsumer(refuse)
    consumer.write(buffer.getvalue())
    with pytest.raises(IntegrityError, match="refused x"):
        consumer.close()
