import hashlib
import io
import os
import stat
import tarfile

import pytest
from pyrage import x25519

from ansible_collections.keel.ops.plugins.module_utils._backup import compression, dirstream, encryption, pipeline
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DecryptionKeyError, IntegrityError

DATA = os.urandom(3 * 1024 * 1024 + 17) + b"compressible " * 200000


def store(data, algorithm, recipients=()):
    """Run the backup direction: returns (stored bytes, raw size, stored size, sha256)."""
    source = pipeline.CountingReader(io.BytesIO(data))
    out = io.BytesIO()
    hashed = pipeline.HashingWriter(out)
    compressed = compression.compressing_reader(source, algorithm, compression.DEFAULT_LEVELS[algorithm])
    if recipients:
        encryption.encrypt(compressed, hashed, list(recipients))
    else:
        pipeline.copy(compressed, hashed)
    return out.getvalue(), source.size, hashed.size, hashed.sha256


def load(stored, algorithm, identities=()):
    out = io.BytesIO()
    sink = compression.decompressing_writer(out, algorithm)
    if identities:
        encryption.decrypt(io.BytesIO(stored), sink, list(identities))
    else:
        pipeline.copy(io.BytesIO(stored), sink)
    sink.close()
    return out.getvalue()


@pytest.mark.parametrize("algorithm", compression.COMPRESSIONS)
def test_round_trip_with_and_without_encryption(algorithm):
    identity = x25519.Identity.generate()
    for recipients, identities in (((), ()), ((identity.to_public(),), (identity,))):
        stored, raw, size, digest = store(DATA, algorithm, recipients)
        assert raw == len(DATA) and size == len(stored)
        assert digest == hashlib.sha256(stored).hexdigest()
        assert load(stored, algorithm, identities) == DATA


def test_compression_shrinks_compressible_data():
    stored, _raw, _size, _digest = store(b"x" * 10 ** 6, "zstd")
    assert len(stored) < 1000


@pytest.mark.parametrize("algorithm", ["zstd", "gzip"])
def test_truncated_compressed_stream_is_detected(algorithm):
    stored, _raw, _size, _digest = store(DATA, algorithm)
    with pytest.raises(IntegrityError, match="truncated|does not decompress"):
        load(stored[:-100], algorithm)


def test_wrong_key_flipped_byte_and_truncation_are_told_apart():
    identity = x25519.Identity.generate()
    stored, _raw, _size, _digest = store(DATA, "zstd", [identity.to_public()])
    with pytest.raises(DecryptionKeyError, match="none of the decryption keys"):
        load(stored, "zstd", [x25519.Identity.generate()])
    flipped = bytearray(stored)
    flipped[len(flipped) // 2] ^= 1
    with pytest.raises(IntegrityError, match="modified or truncated"):
        load(bytes(flipped), "zstd", [identity])
    with pytest.raises(IntegrityError):
        load(stored[:-50], "zstd", [identity])


def test_a_failing_consumer_keeps_its_own_error():
    identity = x25519.Identity.generate()
    stored, _raw, _size, _digest = store(DATA, "none", [identity.to_public()])

    class Broken:
        def write(self, data):
            raise BrokenPipeError("consumer went away")

    with pytest.raises(BrokenPipeError, match="consumer went away"):
        encryption.decrypt(io.BytesIO(stored), compression.decompressing_writer(Broken(), "none"), [identity])


def test_passphrase_wraps_a_per_backup_identity():
    identity, wrapped = encryption.new_passphrase_identity("s3cret phrase")
    assert b"s3cret" not in wrapped and str(identity).encode() not in wrapped
    assert str(encryption.open_passphrase_identity(wrapped, "s3cret phrase")) == str(identity)
    with pytest.raises(DecryptionKeyError, match="wrong passphrase"):
        encryption.open_passphrase_identity(wrapped, "guess")


def test_recipients_and_identities_parsing():
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    assert str(encryption.parse_recipient(public, "r")) == public
    with pytest.raises(ConfigError, match="never give a secret key here"):
        encryption.parse_recipient(str(identity), "encryption_recipients[0]")
    assert encryption.fingerprint(public) == encryption.fingerprint(public + "\n") and encryption.fingerprint(public).startswith("sha256:")
    assert len(encryption.parse_identities("# comment\n\n%s\n" % identity, "f")) == 1
    with pytest.raises(DecryptionKeyError, match="line 1 is not an age identity"):
        encryption.parse_identities("not a key\n", "f")
    with pytest.raises(DecryptionKeyError, match="holds no age identity"):
        encryption.parse_identities("# only comments\n", "f")


@pytest.mark.parametrize("algorithm, level, message", [
    ("lz4", None, "compression must be one of zstd, gzip, none"),
    ("zstd", 23, "compression_level for zstd must be 1 to 22"),
    ("gzip", 0, "compression_level for gzip must be 1 to 9"),
    ("none", 3, "compression_level needs a compression"),
])
def test_compression_validation(algorithm, level, message):
    with pytest.raises(ConfigError, match=message):
        compression.validate_compression(algorithm, level)


def test_default_levels():
    assert compression.validate_compression("zstd", None) == 1 and compression.validate_compression("gzip", None) == 6


def _tar_with(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, mode, data in members:
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.uid, info.gid, info.uname = mode, len(data), 0, 0, "root"
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_directory_artifacts_are_extracted_as_plain_data(tmp_path):
    """A repository is data: a directory artifact cannot plant a setuid binary or files owned by someone else."""
    writer = dirstream.DirectoryWriter(str(tmp_path / "out"))
    writer.write(_tar_with(("toc.dat", 0o4755, b"#!/bin/sh\n"), ("1.dat", 0o600, b"rows")))
    writer.close()
    info = os.stat(tmp_path / "out" / "toc.dat")
    assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID) and info.st_uid == os.getuid()
    assert (tmp_path / "out" / "1.dat").read_bytes() == b"rows"


@pytest.mark.parametrize("name", ["../escape.dat", "a/../../escape.dat", "/etc/escape.dat"])
def test_directory_artifacts_cannot_reach_outside(tmp_path, name):
    writer = dirstream.DirectoryWriter(str(tmp_path / "out"))
    with pytest.raises(IntegrityError, match="unexpected entry"):
        writer.write(_tar_with((name, 0o644, b"x")))
        writer.close()
    assert not (tmp_path / "escape.dat").exists()
