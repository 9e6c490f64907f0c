# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WAL archive of one cluster inside a backup repository: pushing a segment, fetching it back, listing,
checking continuity and expiring what no kept backup needs.

    <repo>/pgwal/<source>/archive.json                       the cluster it belongs to (system id, segment size)
    <repo>/pgwal/<source>/<timeline+log id>/<name>-<sha256><ext>   one WAL file, compressed (and encrypted)
    <repo>/pgwal/<source>/timelines/<tli>.history-<sha256><ext>    timeline history, compressed, never encrypted

The sha256 in each name is that of the file as PostgreSQL wrote it: a push of a file already there with the same
digest succeeds without writing, one with another digest is refused, and a fetch proves the digest of what it
hands back. Each object is written under a temporary name and appears whole once durable (storage/), which is
when the push returns and PostgreSQL may recycle the segment. Timeline history files are left unencrypted (they
hold switch positions, no data) so that continuity can be checked without the decryption key.
"""

import hashlib
import json
import os
import re
import struct

from ansible_collections.keel.ops.plugins.module_utils._backup import compression, pipeline
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import NotFound
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._postgres import wal


KIND = "pgwal"
INFO = "archive.json"
_STORED = re.compile(r"^(?P<name>[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history))"
                     r"-(?P<sha>[0-9a-f]{64})(?P<ext>(?:\.zst|\.gz)?(?:\.age)?)$")
# XLogLongPageHeaderData: magic, info, timeline, page address, remaining length, (pad), system id, segment size
_LONG_HEADER = struct.Struct("<HHIQI4xQI")
_XLP_LONG_HEADER = 0x0002


def _encryption():
    """pyrage, imported only by a push or fetch that encrypts: keel-wal starts once per segment."""
    from ansible_collections.keel.ops.plugins.module_utils._backup import encryption
    return encryption


class ArchiveMismatch(KeelError):
    """A WAL file belongs to another cluster, or differs from the copy already archived under its name."""


def segment_identity(path):
    """(system identifier, segment size) from a segment's first page header, or None for a file without one."""
    with open(path, "rb") as handle:
        header = handle.read(_LONG_HEADER.size)
    if len(header) < _LONG_HEADER.size:
        return None
    _magic, info, _tli, _addr, _rem, sysid, seg_size = _LONG_HEADER.unpack(header)
    return (str(sysid), seg_size) if info & _XLP_LONG_HEADER else None


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(pipeline.CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class StoredFile:
    """One WAL file in the archive, as its key names it."""

    def __init__(self, key, name, sha256, ext):
        self.key, self.name, self.sha256, self.ext = key, name, sha256, ext

    @property
    def encrypted(self):
        return self.ext.endswith(".age")

    @property
    def algorithm(self):
        return {".zst": "zstd", ".gz": "gzip"}.get(self.ext.replace(".age", ""), "none")


def parse_stored(key):
    match = _STORED.match(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return StoredFile(key, match.group("name"), match.group("sha"), match.group("ext"))


class WalArchive:
    """The archive of one source. `recipients` are pyrage recipients (encryption on when given); `identities`
    open it for fetches."""

    # One thread per segment: a 16 MB segment compresses in milliseconds, and worker threads cost more to start
    # than they save; async pushes run segments side by side instead.
    def __init__(self, storage, source, algorithm="zstd", level=1, recipients=(), identities=(), threads=0):
        self.storage, self.source = storage, source
        self.prefix = "%s/%s" % (KIND, source)
        self.algorithm, self.level, self.threads = algorithm, level, threads
        self.recipients, self.identities = list(recipients), list(identities)

    def key(self, *parts):
        return "/".join((self.prefix,) + parts)

    def describe(self, *parts):
        return self.storage.describe(self.key(*parts))

    # -- the cluster this archive belongs to ------------------------------------------------------------ #

    def info(self):
        try:
            record = json.loads(self.storage.get(self.key(INFO)).decode("utf-8"))
        except NotFound:
            return None
        except ValueError:
            raise IntegrityError("%s is not valid JSON: the WAL archive cannot be trusted" % self.describe(INFO))
        if not isinstance(record, dict) or not isinstance(record.get("system_identifier"), str) \
                or not isinstance(record.get("segment_size"), int):
            raise IntegrityError("%s is not a record keel.ops wrote" % self.describe(INFO))
        return record

    def claim(self, system_identifier, segment_size):
        """Record the cluster this archive is for, or prove it is this one: WAL of two clusters in one archive
        would make every restore from it a gamble."""
        record = self.info()
        if record is None:
            record = {"system_identifier": str(system_identifier), "segment_size": int(segment_size), "version": 1}
            self.storage.put(self.key(INFO), json.dumps(record, sort_keys=True).encode())
            return record
        if record["system_identifier"] != str(system_identifier):
            raise ArchiveMismatch("the WAL archive %s belongs to the cluster with system identifier %s, not to this "
                                  "one (%s): give this cluster a source of its own"
                                  % (self.describe(), record["system_identifier"], system_identifier))
        if record["segment_size"] != int(segment_size):
            raise ArchiveMismatch("the WAL archive %s holds %d-byte segments, this cluster writes %d-byte ones"
                                  % (self.describe(), record["segment_size"], segment_size))
        return record

    # -- push ---------------------------------------------------------------------------------------------- #

    def stored(self, name):
        """The copies archived under a WAL file name (normally none or one)."""
        try:
            keys = self.storage.list(self.key(wal.directory_of(name)))
        except NotFound:
            return []
        found = [parse_stored(key) for key in keys]
        return [item for item in found if item is not None and item.name == name]

    def push(self, path, name):
        """Archive the file PostgreSQL hands over; returns 'stored' or 'already archived'. Raises
        ArchiveMismatch when a different file is already archived under that name."""
        kind = wal.classify(name)
        identity = segment_identity(path) if kind in ("segment", "partial") else None
        if identity is not None:
            self.claim(*identity)
        digest = file_sha256(path)
        for existing in self.stored(name):
            if existing.sha256 == digest:
                return "already archived"
            raise ArchiveMismatch(
                "%s is already archived with other content (sha256 %s, this file's is %s): two clusters archive "
                "into source %s, or the archive was restored from elsewhere; refusing to overwrite it"
                % (name, existing.sha256, digest, self.source))
        encrypt = bool(self.recipients) and kind != "history"
        algorithm = self.algorithm if kind != "history" or self.algorithm != "none" else "none"
        ext = compression.EXTENSIONS[algorithm] + (".age" if encrypt else "")
        key = self.key(wal.directory_of(name), "%s-%s%s" % (name, digest, ext))
        with open(path, "rb") as raw, self.storage.writer(key) as writer:
            stored = compression.compressing_reader(raw, algorithm, self.level, threads=self.threads)
            sink = pipeline.HashingWriter(writer)  # pyrage wants write() to return the count
            if encrypt:
                _encryption().encrypt(stored, sink, self.recipients)
            else:
                pipeline.copy(stored, sink)
            writer.commit()
        return "stored"

    # -- fetch --------------------------------------------------------------------------------------------- #

    def fetch(self, name, destination):
        """Write the archived file `name` to `destination` (through a temporary name beside it); False when
        the archive does not have it. Its digest is proven before it is renamed into place."""
        wal.classify(name)
        copies = self.stored(name)
        if not copies:
            return False
        item = copies[0]
        temporary = "%s.keel-%s" % (destination, os.getpid())
        try:
            with open(temporary, "wb") as handle:
                hashed = pipeline.HashingWriter(handle)
                sink = compression.decompressing_writer(hashed, item.algorithm)
                with self.storage.reader(item.key) as reader:
                    if item.encrypted:
                        if not self.identities:
                            raise IntegrityError("%s is encrypted and no decryption key was given" % name)
                        _encryption().decrypt(reader, sink, self.identities)
                    else:
                        pipeline.copy(reader, sink)
                sink.close()
            if hashed.sha256 != item.sha256:
                raise IntegrityError("%s from %s does not match its checksum (sha256 %s, archived as %s): it was "
                                     "modified in the repository" % (name, self.describe(), hashed.sha256,
                                                                     item.sha256))
            os.rename(temporary, destination)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return True

    def read_history(self, item):
        """The text of a timeline history file (never encrypted, small)."""
        buffer = pipeline.LimitedBuffer(1024 * 1024, "timeline history files")
        sink = compression.decompressing_writer(buffer, item.algorithm)
        with self.storage.reader(item.key) as reader:
            pipeline.copy(reader, sink)
        sink.close()
        if hashlib.sha256(buffer.getvalue()).hexdigest() != item.sha256:
            raise IntegrityError("%s in %s does not match its checksum" % (item.name, self.describe()))
        return buffer.getvalue().decode("utf-8", "replace")

    # -- listing, continuity, expiry ----------------------------------------------------------------------- #

    def files(self):
        """Every WAL file archived, by kind: {'segment': [StoredFile], 'partial': [...], ...}."""
        listed = {"segment": [], "partial": [], "backup": [], "history": []}
        try:
            keys = self.storage.list(self.prefix)
        except NotFound:
            return listed
        for key in keys:
            item = parse_stored(key)
            if item is not None:
                listed[wal.classify(item.name)].append(item)
        return listed

    def histories(self, files=None):
        files = files or self.files()
        return {wal.timeline_of(item.name): wal.parse_history(self.read_history(item), wal.timeline_of(item.name))
                for item in files["history"]}

    def continuity(self, timeline, start_lsn, segment_size, files=None):
        """check_continuity() from a backup's start position over what this archive holds."""
        files = files or self.files()
        present = set(wal.parse_segment(item.name, segment_size) for item in files["segment"])
        return wal.check_continuity(timeline, wal.segment_of(start_lsn, segment_size), present,
                                    self.histories(files), segment_size, start_lsn)

    def expire(self, keep_from_segno, segment_size, dry_run=False):
        """Delete the segments (and .partial and .backup files) before segment number `keep_from_segno`, which
        no kept backup needs; history files stay. Returns the names deleted."""
        doomed = []
        for kind in ("segment", "partial", "backup"):
            for item in self.files()[kind]:
                if wal.parse_segment(item.name[:24], segment_size)[1] < keep_from_segno:
                    doomed.append(item)
        if doomed and not dry_run:
            self.storage.delete([item.key for item in doomed])
        return sorted(item.name for item in doomed)

    def newest_change(self):
        return self.storage.newest_change(self.prefix)
