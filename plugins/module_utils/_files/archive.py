# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A file set as one tar stream (POSIX pax: owners, modes, mtimes, symbolic and hard links, long names), written
on a thread into a pipe that the backup pipeline reads, with an index beside it: one JSON line per entry with its
type, attributes and the sha256 of its content, which verification and restores check every file against. The
way back, TarConsumer, reads a tar stream written into it and hands each member to a handler."""

import hashlib
import json
import os
import tarfile

from ansible_collections.keel.ops.plugins.module_utils._backup.dirstream import PipeReader, PipeWriter
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import sqlite

BLOCK = 1024 * 1024
COUNTS = ("files", "directories", "symlinks", "hardlinks", "sqlite", "changed_while_read")


class _SizedReader:
    """Exactly `size` bytes of an open file, as the tar header promised, hashed on the way. A file that shrank
    while it was read is padded with zeros and one that grew is cut at its size; either is marked `changed`."""

    def __init__(self, handle, size):
        self.handle, self.left = handle, size
        self.digest = hashlib.sha256()
        self.changed = False

    def read(self, size):
        size = min(size, self.left)
        data = self.handle.read(size)
        if len(data) < size:
            self.changed = True
            data += b"\0" * (size - len(data))
        self.left -= size
        if not self.left and self.handle.read(1):
            self.changed = True
        self.digest.update(data)
        return data


def _open_nofollow(path):
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def index_record(info, **fields):
    record = {"name": info.name, "type": _TYPES.get(info.type, "file"), "mode": info.mode, "uid": info.uid,
              "gid": info.gid, "user": info.uname or None, "group": info.gname or None, "mtime": info.mtime}
    if info.issym() or info.islnk():
        record["link"] = info.linkname
    record.update(fields)
    return record


_TYPES = {tarfile.DIRTYPE: "directory", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}


class ArchiveReader(PipeReader):
    """The entries of a Selection read as one tar stream. SQLite databases go in as their online backup copy
    (made in `workdir`, checked by integrity_check, deleted as soon as it is in the stream). After close(),
    `counts` and `bytes` describe what was stored and `index_path` holds the index."""

    what = "reading the file set"

    def __init__(self, selection, workdir, sqlite_timeout=30):
        self.selection, self.workdir, self.sqlite_timeout = selection, workdir, sqlite_timeout
        self.index_path = os.path.join(workdir, "index.jsonl")
        self.counts = dict.fromkeys(COUNTS, 0)
        self.bytes = 0
        self.changed = []
        PipeReader.__init__(self, self._produce)

    def _produce(self):
        with self._write as out, open(self.index_path, "w", encoding="utf-8") as index:
            # tarfile's default record buffer: a 1 MiB one is copied whole on every small write (4x slower).
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                for entry in self.selection.walk():
                    record = self._add(archive, entry)
                    archive.members = []  # tarfile keeps every TarInfo; memory would grow with the file count
                    if record is not None:
                        index.write(json.dumps(record, sort_keys=True) + "\n")

    def _add(self, archive, entry):
        try:
            return self._add_entry(archive, entry)
        except FileNotFoundError:  # removed since the walk found it
            return None
        except BrokenPipeError:  # the reading end gave up: its own error is the one to report
            raise
        except OSError as error:
            raise KeelError("cannot read %s: %s; run the task as a user that can read it (become: true), or leave it "
                            "out with exclude" % (entry.path, error.strerror or error))

    def _add_entry(self, archive, entry):
        info = archive.gettarinfo(entry.path, arcname=entry.name)
        if info is None:  # became a socket or device since the walk
            return None
        info.mtime = int(info.mtime)  # whole seconds, as tar keeps them: a fractional one costs a pax header per file
        if info.isdir():
            self.counts["directories"] += 1
            archive.addfile(info)
            return index_record(info)
        if not info.isreg():
            self.counts["hardlinks" if info.islnk() else "symlinks"] += 1
            archive.addfile(info)
            return index_record(info)
        if entry.sqlite:
            return self._add_sqlite(archive, entry, info)
        with _open_nofollow(entry.path) as handle:
            return self._add_file(archive, info, handle, entry.path)

    def _add_file(self, archive, info, handle, path, **fields):
        reader = _SizedReader(handle, info.size)
        archive.addfile(info, reader)
        self.counts["files"] += 1
        self.bytes += info.size
        if reader.changed:
            self.counts["changed_while_read"] += 1
            self.changed.append(path)
        return index_record(info, size=info.size, sha256=reader.digest.hexdigest(), changed=reader.changed, **fields)

    def _add_sqlite(self, archive, entry, info):
        copy = os.path.join(self.workdir, "sqlite-copy.db")
        try:
            sqlite.snapshot(entry.path, copy, self.sqlite_timeout)
            sqlite.integrity_check(copy, "the online backup copy of %s" % entry.path)
            info.size = os.path.getsize(copy)
            with open(copy, "rb") as handle:
                record = self._add_file(archive, info, handle, entry.path, sqlite=True)
            self.counts["sqlite"] += 1
            return record
        finally:
            if os.path.exists(copy):
                os.unlink(copy)


class Record:
    """One entry of the index, read back: the fields restores use, in slots (a restore holds one per entry, and a
    dict per entry took 1.5 KB). Read like the dict it was written from: record["name"], record.get("link")."""

    __slots__ = ("name", "type", "mode", "uid", "gid", "user", "group", "mtime", "size", "sha256", "link", "sqlite",
                 "changed")

    def __init__(self, fields):
        for slot in self.__slots__:
            setattr(self, slot, fields.get(slot))

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        value = getattr(self, key, None)
        return default if value is None else value


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def parse_record(line, number):
    """One JSON line of the index, checked for the fields restores rely on (an index is read from a repository:
    data from elsewhere)."""
    try:
        fields = json.loads(line)
    except ValueError:
        fields = None
    if not (isinstance(fields, dict) and isinstance(fields.get("name"), str)
            and fields.get("type") in ("file", "directory", "symlink", "hardlink")
            and all(_is_int(fields.get(key)) for key in ("mode", "uid", "gid", "mtime"))
            and (fields["type"] not in ("symlink", "hardlink") or isinstance(fields.get("link"), str))
            and (fields["type"] != "file" or (isinstance(fields.get("sha256"), str) and _is_int(fields.get("size"))))):
        raise IntegrityError("line %d of the file set's index is not one keel.ops writes" % number)
    return Record(fields)


def read_index(lines):
    """{name: Record} from the index's JSON lines."""
    collector = IndexCollector()
    for line in lines:
        collector.add(line)
    return collector.records


class IndexCollector:
    """A sink for the decompressed index: each line parsed as it arrives, never all of them held as text."""

    def __init__(self):
        self._pending, self._number, self.records = b"", 0, {}

    def add(self, line):
        self._number += 1
        record = parse_record(line, self._number)
        self.records[record.name] = record

    def write(self, data):
        self._pending += data
        *complete, self._pending = self._pending.split(b"\n")
        for line in complete:
            if line:
                self.add(line.decode("utf-8"))
        return len(data)

    def flush(self):
        pass

    def close(self):
        if self._pending:
            self.add(self._pending.decode("utf-8"))
            self._pending = b""


class TarConsumer(PipeWriter):
    """A sink for a tar stream: each member is handed to handler(member, archive) on a thread; close() raises
    what the handler raised."""

    what = "reading the stored file set"

    def __init__(self, handler):
        PipeWriter.__init__(self, self._consume, handler)

    def _consume(self, handler):
        with self._read as source:
            with tarfile.open(fileobj=source, mode="r|") as archive:
                for member in archive:
                    handler(member, archive)
                    archive.members = []  # as above: a stream is read once, no TarInfo is needed again
            while source.read(BLOCK):  # the zero blocks after the end marker
                pass


def digest_of(reader):
    """sha256 of everything a reader holds (a file, or a member read from the stream)."""
    digest = hashlib.sha256()
    for block in iter(lambda: reader.read(BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()
