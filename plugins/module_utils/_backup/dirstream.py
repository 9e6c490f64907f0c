# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming: source -> compress -> encrypt -> sha256 -> sink, and back, in bounded memory.

A backup is pulled from its source (a child's stdout) through a compressing reader and pushed into the sink
through a hashing writer; encryption sits between the two (age, via pyrage, which streams reader to
writer). A restore runs the other way: pulled from storage, decrypted and pushed through a decompressing
writer into the consumer (a child's stdin). Nothing is ever held whole in memory: at most a few chunks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tarfile
import threading
import zlib

from ansible.module_utils.six.moves import queue

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, KeelError

try:
    import zstandard
except ImportError:
    zstandard = None

try:
    import pyrage
    from pyrage import passphrase as age_passphrase
    from pyrage import ssh as age_ssh
    from pyrage import x25519
except ImportError:
    pyrage = None

CHUNK = 1024 * 1024
COMPRESSIONS = ("zstd", "gzip", "none")
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
# zstd level 1: at backup time the dump rate matters more than the last few percent of ratio (on random-ish
# data level 3 with worker threads even came out larger here); raise compression_level for archives.
DEFAULT_LEVELS = {"zstd": 1, "gzip": 6, "none": None}


class IntegrityError(KeelError):
    """Stored bytes do not match their checksum, or do not decrypt or decompress."""


class DecryptionKeyError(KeelError):
    """The key given cannot decrypt the backup (wrong or missing)."""


def require_zstd():
    if zstandard is None:
        raise DependencyError("zstd compression needs the Python library 'zstandard' where the module runs "
                              "(pip install zstandard), or choose compression: gzip or none")


def require_age():
    if pyrage is None:
        raise DependencyError("age encryption needs the Python library 'pyrage' where the module runs "
                              "(pip install pyrage)")


# --- counting and hashing ---------------------------------------------------------------------------

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
    and compressing instead of stalling the producer. close() drains it and re-raises the sink's error."""

    DEPTH = 4

    def __init__(self, sink):
        self.sink = sink
        self.error = None
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
        self._queue.put(bytes(data))
        return len(data)

    def flush(self):
        pass

    def close(self):
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


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


# --- directories as streams -------------------------------------------------------------------------

class _PipeThread:
    """A pipe with a thread on the far end; close() joins it and re-raises what it failed with."""

    def __init__(self, work, *args):
        read_fd, write_fd = os.pipe()
        self._read, self._write = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(work,) + args)
        self._thread.daemon = True
        self._thread.start()

    def _run(self, work, *args):
        try:
            work(*args)
        except Exception as error:  # pylint: disable=broad-except
            self.error = error

    def _finish(self, mine, theirs):
        mine.close()  # an early close makes the far end fail fast instead of blocking forever
        self._thread.join()
        theirs.close()
        if self.error is not None:
            raise IntegrityError("directory stream failed: %s" % self.error)


class DirectoryReader(_PipeThread):
    """A directory read as a tar stream (pg_dump's directory format, stored as one artifact)."""

    def __init__(self, directory):
        _PipeThread.__init__(self, self._produce, directory)

    def _produce(self, directory):
        with self._write as out:
            with tarfile.open(fileobj=out, mode="w|") as archive:
                archive.add(directory, arcname=".")

    def read(self, size=-1):
        return self._read.read(size)

    def close(self):
        self._finish(self._read, self._write)


def _extract_as_data(archive, member, directory):
    """Extract with tarfile's 'data' filter: no setuid/setgid bits, no owners from the archive, nothing outside
    the directory. Pythons without extraction filters get the same effect by hand."""
    if hasattr(tarfile, "data_filter"):
        archive.extract(member, directory, filter="data")
        return
    member.mode &= 0o755 if member.isdir() else 0o644
    member.uid = member.gid = os.getuid()
    member.uname = member.gname = ""
    archive.extract(member, directory, set_attrs=False)


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


class DirectoryWriter(_PipeThread):
    """A tar stream written out as files under a directory (the way back for DirectoryReader)."""

    def __init__(self, directory):
        _PipeThread.__init__(self, self._consume, directory)

    def _consume(self, directory):
        with self._read as source:
            with tarfile.open(fileobj=source, mode="r|") as archive:
                for member in archive:
                    parts = member.name.split("/")
                    if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                        raise IntegrityError("unexpected entry %r in a directory artifact" % member.name)
                    _extract_as_data(archive, member, directory)

    def write(self, data):
        self._write.write(data)
        return len(data)

    def flush(self):
        pass

    def close(self):
        self._finish(self._write, self._read)


# --- compression ------------------------------------------------------------------------------------

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
        self.decompressor = zstandard.ZstdDecompressor().decompressobj()

    def write(self, data):
        try:
            self.sink.write(self.decompressor.decompress(data))
        except zstandard.ZstdError as error:
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
        compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        return compressor.stream_reader(source, read_size=CHUNK)
    if algorithm == "gzip":
        return _ZlibReader(source, level)
    return source


def decompressing_writer(sink, algorithm):
    """A writer that decompresses into sink; call close() at the end to detect truncation."""
    if algorithm == "zstd":
        require_zstd()
        return _ZstdWriter(sink)
    if algorithm == "gzip":
        return _ZlibWriter(sink)
    return _PassthroughWriter(sink)


# --- encryption -------------------------------------------------------------------------------------

def parse_recipient(text, where):
    """An age recipient (age1...) or an SSH public key (ssh-ed25519/ssh-rsa), as pyrage objects."""
    require_age()
    text = text.strip()
    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith("ssh-"):
            return age_ssh.Recipient.from_str(text)
    except pyrage.RecipientError as error:
        raise ConfigError("%s is not a valid recipient: %s" % (where, error))
    raise ConfigError("%s must be an age public key (age1...) or an SSH public key (ssh-ed25519 ..., ssh-rsa ...); "
                      "never give a secret key here" % where)


def fingerprint(recipient_text):
    """A short, stable, non-secret name for a public key, recorded in manifests."""
    return "sha256:" + hashlib.sha256(recipient_text.strip().encode()).hexdigest()[:16]


def parse_identities(text, where):
    """Identities from the text of an age identity file (AGE-SECRET-KEY-1... lines, # comments)."""
    require_age()
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise DecryptionKeyError("%s line %d is not an age identity (AGE-SECRET-KEY-1...)" % (where, number))
    if not identities:
        raise DecryptionKeyError("%s holds no age identity (AGE-SECRET-KEY-1... lines)" % where)
    return identities


def new_passphrase_identity(secret):
    """A fresh identity for one backup, plus its age-passphrase-wrapped form to store beside the data.

    age's passphrase mode (scrypt) only exists for whole buffers in pyrage, so the stream is encrypted to a
    random X25519 key and only that small key is sealed with the passphrase.
    """
    require_age()
    identity = x25519.Identity.generate()
    return identity, age_passphrase.encrypt(str(identity).encode(), secret)


def open_passphrase_identity(wrapped, secret):
    require_age()
    try:
        return x25519.Identity.from_str(age_passphrase.decrypt(wrapped, secret).decode())
    except pyrage.DecryptError:
        raise DecryptionKeyError("the passphrase does not open this backup's key: wrong passphrase file")


class _SinkFailed(Exception):
    """Carries a failure of the consumer (say, pg_restore exiting) out of pyrage untouched."""


class _GuardedWriter:
    def __init__(self, sink):
        self.sink = sink
        self.error = None

    def write(self, data):
        try:
            return self.sink.write(data)
        except Exception as error:  # pylint: disable=broad-except
            self.error = error
            raise _SinkFailed()

    def flush(self):
        pass


def encrypt(reader, writer, recipients):
    pyrage.encrypt_io(reader, writer, recipients)


def decrypt(reader, writer, identities):
    """Stream-decrypt; a wrong key, tampered or truncated data and a failing consumer are told apart."""
    require_age()
    guarded = _GuardedWriter(writer)
    try:
        pyrage.decrypt_io(reader, guarded, identities)
    except _SinkFailed:
        raise guarded.error
    except pyrage.DecryptError as error:
        if "No matching keys" in str(error):
            raise DecryptionKeyError("none of the decryption keys given can decrypt this backup: it was "
                                     "encrypted to other recipients (%s)" % error)
        raise IntegrityError("the backup does not decrypt: %s" % error)
    except OSError as error:
        raise IntegrityError("the backup does not decrypt: it was modified or truncated (%s)" % error)
