# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifacts: the stored files of a backup. The Encoder turns a stream into stored bytes (compress, encrypt,
hash) and store_artifact() writes them through the repository; on the way back, open_identities() proves the
key opens a backup before anything is touched, and stream_into() runs the pipeline backwards into a consumer."""

from ansible_collections.keel.ops.plugins.module_utils._backup import compression, encryption, pipeline
from ansible_collections.keel.ops.plugins.module_utils._backup.config import read_secret_file, read_text
from ansible_collections.keel.ops.plugins.module_utils._errors import DecryptionKeyError


KEY_ARTIFACT = "key.age"


class Encoder:
    """Compression and encryption of one backup: where its artifacts' bytes are turned into stored bytes."""

    def __init__(self, config):
        self.algorithm = config.compression or compression.DEFAULT_COMPRESSION
        self.level = config.compression_level
        self.recipients = [recipient for _text, recipient in config.recipients]
        self.fingerprints = [encryption.fingerprint(text) for text, _recipient in config.recipients]
        self.passphrase = config.passphrase
        self.wrapped_key = None
        if self.passphrase:
            identity, self.wrapped_key = encryption.new_passphrase_identity(self.passphrase)
            self.recipients.append(identity.to_public())

    @property
    def encrypted(self):
        return bool(self.recipients)

    def artifact_name(self, stem):
        return stem + compression.EXTENSIONS[self.algorithm] + (".age" if self.encrypted else "")

    def manifest(self):
        sealed = None
        if self.encrypted:
            sealed = {"method": "age", "recipients": self.fingerprints, "passphrase": bool(self.passphrase)}
        return {"compression": {"algorithm": self.algorithm, "level": self.level}, "encryption": sealed}

    def write(self, source, writer):
        """Stream source into writer; return (bytes read from source, bytes stored, sha256 of stored)."""
        counted = pipeline.CountingReader(source)
        hashed = pipeline.HashingWriter(writer)
        background = pipeline.BackgroundWriter(hashed)  # hashing and storage I/O off the producing thread
        compressed = compression.compressing_reader(counted, self.algorithm, self.level)
        try:
            if self.encrypted:
                encryption.encrypt(pipeline.buffered(compressed), background, self.recipients)
            else:
                pipeline.copy(compressed, background)
        finally:
            background.close()
        return counted.size, hashed.size, hashed.sha256


def store_key(repo, backup_id, encoder):
    """Store the passphrase-sealed key of an encrypted backup beside its data."""
    with repo.artifact_writer(backup_id, KEY_ARTIFACT) as writer:
        hashed = pipeline.HashingWriter(writer)
        hashed.write(encoder.wrapped_key)
        writer.commit()
    return {"name": KEY_ARTIFACT, "size": hashed.size, "sha256": hashed.sha256, "raw_size": 0, "kind": "key"}


def store_artifact(repo, backup_id, name, encoder, source):
    """Write one artifact through the encoder; it only becomes visible on commit."""
    with repo.artifact_writer(backup_id, name) as writer:
        raw, size, digest = encoder.write(source, writer)
        writer.commit()
    return {"name": name, "size": size, "sha256": digest, "raw_size": raw}


class _KeyWorks(Exception):
    """Raised by the probe writer at the first decrypted byte: the key opens the backup."""


class _ProbeWriter:
    def write(self, data):
        raise _KeyWorks()

    def flush(self):
        pass


def open_identities(config, repo, backup):
    """The keys that open an encrypted backup, proven on its first artifact before anything is touched."""
    sealed = backup.manifest.get("encryption")
    if not sealed:
        return None
    identities = []
    if config.decryption_identity_file:
        identities += encryption.parse_identities(read_text(config.decryption_identity_file, "decryption_identity_file"),
                                                  config.decryption_identity_file)
    passphrase = read_secret_file(config.decryption_passphrase_file, "decryption_passphrase_file")
    if passphrase and sealed.get("passphrase"):
        with repo.open_artifact(backup.id, KEY_ARTIFACT) as reader:
            identities.append(encryption.open_passphrase_identity(reader.read(), passphrase))
    if not identities:
        raise DecryptionKeyError(
            "backup %s is encrypted (recipients %s%s): give decryption_identity_file%s"
            % (backup.id, ", ".join(sealed["recipients"]) or "none",
               ", passphrase" if sealed.get("passphrase") else "",
               " or decryption_passphrase_file" if sealed.get("passphrase") else ""))
    data_artifact = next(a for a in backup.manifest["artifacts"] if a["kind"] != "key")
    with repo.open_artifact(backup.id, data_artifact["name"]) as reader:
        try:
            encryption.decrypt(reader, _ProbeWriter(), identities)
        except _KeyWorks:
            return identities
    return identities


def stream_into(repo, backup, artifact, identities, consumer_stdin):
    """Storage -> (decrypt) -> decompress -> a child's stdin."""
    algorithm = backup.manifest["compression"]["algorithm"]
    sink = compression.decompressing_writer(consumer_stdin, algorithm)
    with repo.open_artifact(backup.id, artifact["name"]) as reader:
        if identities:
            encryption.decrypt(reader, sink, identities)
        else:
            pipeline.copy(reader, sink)
    sink.close()
