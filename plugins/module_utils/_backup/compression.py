# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression in the pipeline: zstd on worker threads (the default, level 1), gzip, or none; a pull-based
compressing reader for backups and a push-based decompressing writer for restores."""

import zlib

from ansible_collections.keel.ops.plugins.module_utils._backup.pipeline import CHUNK
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, IntegrityError


COMPRESSIONS = ("zstd", "gzip", "none")
DEFAULT_COMPRESSION = "zstd"  # the compression option's default, here and in its argument spec
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}


# zstd level 1: at backup time the dump rate matters more than the last few percent of ratio (on random-ish
# data level 3 with worker threads even came out larger here); raise compression_level for archives.
DEFAULT_LEVELS = {"zstd": 1, "gzip": 6, "none": None}


def require_zstd():
    """The zstandard library, imported on first use: health_probe and rolling_update import this file for its
    constants only, and must not pay for it."""
    try:
        import zstandard
    except ImportError:
        raise DependencyError("zstd compression needs the Python library 'zstandard' where the module runs "
                              "(pip install zstandard), or choose compression: gzip or none")
    return zstandard


class _ZlibReader:
    """Pull-based gzip compression of a source (the zlib module only offers push-based objects)."""

    def __init__(self, source, level):
        self.source = source
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.pending = b""
        self.done = False

    def read(self, size=-1):
        size = CHUNK if size is None or size < 0 else size
        while len(self.pending) < size and not self.done:
            chunk = self.source.read(CHUNK)
            if chunk:
                self.pending += self.compressor.compress(chunk)
            else:
                self.pending += self.compressor.flush()
                self.done = True
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _ZlibWriter:
    """Push-based gzip decompression into a sink; close() checks the stream ended properly."""

    def __init__(self, sink):
        self.sink = sink
        self.decompressor = zlib.decompressobj(31)

    def write(self, data):
        try:
            self.sink.write(self.decompressor.decompress(data))
        except zlib.error as error:
            raise IntegrityError("the backup does not decompress (gzip): %s" % error)
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.sink.write(self.decompressor.flush())
        if not self.decompressor.eof:
            raise IntegrityError("the backup ends before its gzip stream does: it is truncated")


class _PassthroughWriter:
    def __init__(self, sink):
        self.sink = sink

    def write(self, data):
        self.sink.write(data)
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


class _ZstdWriter:
    """Push-based zstd decompression; close() refuses a stream that stopped mid-frame."""

    def __init__(self, sink):
        self.sink = sink
        zstandard = require_zstd()
        self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._errors = zstandard.ZstdError

    def write(self, data):
        try:
            self.sink.write(self.decompressor.decompress(data))
        except self._errors as error:
            raise IntegrityError("the backup does not decompress (zstd): %s" % error)
        return len(data)

    def flush(self):
        pass

    def close(self):
        if not self.decompressor.eof:
            raise IntegrityError("the backup ends before its zstd frame does: it is truncated")


def validate_compression(algorithm, level):
    if algorithm not in COMPRESSIONS:
        raise ConfigError("compression must be one of %s, got %r" % (", ".join(COMPRESSIONS), algorithm))
    if algorithm == "zstd":
        require_zstd()
        if level is not None and not 1 <= level <= 22:
            raise ConfigError("compression_level for zstd must be 1 to 22, got %s" % level)
    if algorithm == "gzip" and level is not None and not 1 <= level <= 9:
        raise ConfigError("compression_level for gzip must be 1 to 9, got %s" % level)
    if algorithm == "none" and level is not None:
        raise ConfigError("compression_level needs a compression; with compression: none leave it unset")
    return level if level is not None else DEFAULT_LEVELS[algorithm]


def compressing_reader(source, algorithm, level, threads=-1):
    """A reader yielding the compressed form of source. zstd runs on worker threads (threads=-1: one per
    core) so compression overlaps with the producer instead of waiting for it."""
    if algorithm == "zstd":
        compressor = require_zstd().ZstdCompressor(level=level, threads=threads, write_checksum=True)
        return compressor.stream_reader(source, read_size=CHUNK)
    if algorithm == "gzip":
        return _ZlibReader(source, level)
    return source


def decompressing_writer(sink, algorithm):
    """A writer that decompresses into sink; call close() at the end to detect truncation."""
    if algorithm == "zstd":
        return _ZstdWriter(sink)
    if algorithm == "gzip":
        return _ZlibWriter(sink)
    return _PassthroughWriter(sink)
