# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming: source -> compress -> encrypt -> sha256 -> sink, and back, in bounded memory.

A backup is pulled from its source (a child's stdout) through a compressing reader (compression.py) and pushed
into the sink through a hashing writer; encryption (encryption.py) sits between the two. A restore runs the
other way: pulled from storage, decrypted and pushed through a decompressing writer into the consumer (a
child's stdin). This file holds the stages that count, hash, copy and hand bytes to a background thread;
nothing is ever held whole in memory, at most a few chunks (LimitedBuffer, for the few small artifacts that
must be read whole, refuses more than its limit).
"""

import hashlib
import io
import queue
import threading

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError


CHUNK = 1024 * 1024


class HashingWriter:
    """Forward writes to a sink while counting bytes and computing their sha256."""

    def __init__(self, sink):
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        flush = getattr(self.sink, "flush", None)
        if flush:
            flush()

    @property
    def sha256(self):
        return self.digest.hexdigest()


class CountingReader:
    """Count the bytes read from a source (the size of the uncompressed dump)."""

    def __init__(self, source):
        self.source = source
        self.size = 0

    def read(self, size=-1):
        data = self.source.read(size)
        self.size += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class BackgroundWriter:
    """Hand writes to a thread through a short queue, so the sink's I/O (disk, network) overlaps with reading
    and compressing instead of stalling the producer. close() drains it and re-raises the sink's error.

    Small writes (age hands over 64 KiB at a time) are gathered into blocks of BLOCK bytes first: every block
    crossing the queue costs a wake-up and a GIL hand-off between the two threads, which on 2 cores cost more
    than the copy that gathering takes. Memory stays within (DEPTH + 1) blocks plus one write."""

    DEPTH = 4
    BLOCK = CHUNK

    def __init__(self, sink):
        self.sink = sink
        self.error = None
        self._pending = bytearray()
        self._queue = queue.Queue(self.DEPTH)
        self._thread = threading.Thread(target=self._drain)
        self._thread.daemon = True
        self._thread.start()

    def _drain(self):
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self.error is None:
                try:
                    self.sink.write(data)
                except Exception as error:  # pylint: disable=broad-except
                    self.error = error

    def write(self, data):
        if self.error is not None:
            raise self.error
        if not self._pending and isinstance(data, bytes) and len(data) >= self.BLOCK:
            self._queue.put(data)  # a whole block already, and immutable: no copy needed
        else:
            self._pending += data  # the one copy, which also frees the caller's buffer for reuse
            if len(self._pending) >= self.BLOCK:
                self._hand_over()
        return len(data)

    def _hand_over(self):
        block, self._pending = self._pending, bytearray()
        self._queue.put(block)

    def flush(self):
        pass

    def close(self):
        if self._pending and self.error is None:
            self._hand_over()
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class _RawReader(io.RawIOBase):
    """Any reader with readinto(), as the raw stream io.BufferedReader wants."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.source.readinto(buffer)


def buffered(reader, size=CHUNK):
    """A reader that pulls `size` bytes at a time from `reader` however little its caller asks for (pyrage asks
    for 8 KiB): the stage behind it then runs, and releases the GIL, once per `size` bytes instead of once per
    small read, each of which handed the GIL to another thread and waited to get it back."""
    return io.BufferedReader(_RawReader(reader), size)


def sha256_of(reader):
    """sha256 and size of everything a reader yields, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: reader.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def copy(reader, writer):
    for chunk in iter(lambda: reader.read(CHUNK), b""):
        writer.write(chunk)


class NullWriter:
    """A sink that discards: used to prove a stream decrypts and decompresses without keeping it."""

    size = 0

    def write(self, data):
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


class LimitedBuffer:
    """A sink that keeps what is written in memory, for the few artifacts that must be read whole before use
    (a globals script is checked before psql sees it); more than `limit` bytes is refused, not buffered."""

    def __init__(self, limit, what):
        self.limit, self.what = limit, what
        self._chunks, self._size = [], 0

    def write(self, data):
        self._size += len(data)
        if self._size > self.limit:
            raise IntegrityError("%s are larger than %d MiB, which no pg_dumpall output of roles and tablespaces "
                                 "is: refusing to load them" % (self.what, self.limit // (1024 * 1024)))
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass

    def getvalue(self):
        return b"".join(self._chunks)
