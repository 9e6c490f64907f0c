# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tar streams of a base backup: reading a few small members (backup_label, the end of backup_manifest) as
the stream passes on its way to the repository, and unpacking one into a directory that nothing in it can escape.
"""

import os
import re
import tarfile

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError


BLOCK = 512
CAPTURE_LIMIT = 64 * 1024


def _octal_size(field):
    if field[0] & 0x80:  # base-256, for members of 8 GiB and more
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.rstrip(b"\0 ").strip()
    return int(text, 8) if text else 0


class TarSniffer:
    """A reader that passes a tar stream through unchanged while keeping the whole of the small members named in
    `whole` and the last CAPTURE_LIMIT bytes of those named in `tail`: memory stays bounded whatever goes by."""

    def __init__(self, source, whole=("backup_label", "tablespace_map"), tail=("backup_manifest",)):
        self.source = source
        self.whole, self.tail = set(whole), set(tail)
        self.captured = {}
        self._header = b""
        self._data_left = self._pad_left = 0
        self._member = None
        self._ended = False

    def read(self, size=-1):
        data = self.source.read(size)
        if data and not self._ended:
            self._feed(memoryview(data))
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _feed(self, view):
        index = 0
        while index < len(view) and not self._ended:
            if self._data_left:
                count = min(self._data_left, len(view) - index)
                self._keep(view[index:index + count])
                self._data_left -= count
                index += count
            elif self._pad_left:
                count = min(self._pad_left, len(view) - index)
                self._pad_left -= count
                index += count
            else:
                count = min(BLOCK - len(self._header), len(view) - index)
                self._header += bytes(view[index:index + count])
                index += count
                if len(self._header) == BLOCK:
                    self._start_member(self._header)
                    self._header = b""

    def _start_member(self, header):
        if not header.strip(b"\0"):
            self._ended = True
            return
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        size = _octal_size(header[124:136])
        self._member = name if header[156:157] in (b"0", b"\0") and name in self.whole | self.tail else None
        if self._member is not None:
            self.captured[self._member] = b""
        self._data_left, self._pad_left = size, (-size) % BLOCK

    def _keep(self, chunk):
        if self._member is None:
            return
        kept = self.captured[self._member] + bytes(chunk)
        self.captured[self._member] = kept[-CAPTURE_LIMIT:] if self._member in self.tail else kept[:CAPTURE_LIMIT]

    def text(self, name):
        return self.captured.get(name, b"").decode("utf-8", "replace")


_LABEL_LINE = re.compile(r"^([A-Z][A-Z ]+): (.*)$")


def parse_backup_label(text):
    """backup_label -> {'START WAL LOCATION': ..., 'START TIMELINE': ..., ...}."""
    fields = {}
    for line in text.splitlines():
        match = _LABEL_LINE.match(line.strip())
        if match:
            fields[match.group(1)] = match.group(2).strip()
    if "START WAL LOCATION" not in fields:
        raise IntegrityError("the base backup carries no backup_label with its start position: it cannot be "
                             "restored")
    return fields


_WAL_RANGE = re.compile(r'"Timeline"\s*:\s*(\d+)\s*,\s*"Start-LSN"\s*:\s*"([0-9A-F/]+)"\s*,'
                        r'\s*"End-LSN"\s*:\s*"([0-9A-F/]+)"')


def manifest_wal_ranges(tail_text):
    """The WAL-Ranges of a backup_manifest, from its last bytes: [(timeline, start LSN, end LSN)]."""
    return [(int(tli), start, end) for tli, start, end in _WAL_RANGE.findall(tail_text)]


def _safe_member(member, root):
    """data_filter's rules (no absolute names, nothing outside root, no device files) and ours: a base backup
    holds directories and regular files only, so a link of any kind means the stream is not one."""
    if member.name.startswith("/") or ".." in member.name.split("/"):
        raise IntegrityError("the base backup holds %r, which would land outside the data directory: refusing to "
                             "unpack it" % member.name)
    if not (member.isdir() or member.isreg()):
        raise IntegrityError("the base backup holds %r, which is neither a file nor a directory: refusing to unpack "
                             "it" % member.name)
    try:
        return tarfile.data_filter(member, root)
    except tarfile.FilterError as error:
        raise IntegrityError("the base backup holds a member that would land outside the data directory (%s): "
                             "refusing to unpack it" % error)


def unpack(stream, root, owner=None):
    """Unpack a tar stream (read sequentially, never seeked) into `root`, which must exist; directories 0700 and
    files 0600 as PostgreSQL wants them, owned by `owner` (uid, gid) when given. Returns files and bytes."""
    files = size = 0
    with tarfile.open(fileobj=stream, mode="r|", bufsize=1024 * 1024) as archive:
        archive.copybufsize = 1024 * 1024
        for member in archive:
            member = _safe_member(member, root)
            archive.extract(member, root, set_attrs=False, filter="fully_trusted")
            path = os.path.join(root, member.name)
            os.chmod(path, 0o700 if member.isdir() else 0o600)
            if owner is not None:
                os.chown(path, *owner)
            if member.isreg():
                files, size = files + 1, size + member.size
    return files, size
