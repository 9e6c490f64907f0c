"""What the _backup unit tests share: data, a backup stream stored and loaded back through the pipeline, and
UTC times."""

import datetime
import hashlib
import io
import os

from ansible_collections.keel.ops.plugins.module_utils._backup import compression, encryption, pipeline
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import RETENTION_OPTIONS


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


UTC = datetime.timezone.utc


def at(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def make_backup(repo, data=b"dump bytes", backup_id=None, **extra):
    backup_id = backup_id or new_backup_id()
    with repo.artifact_writer(backup_id, "db.dump") as writer:
        writer.write(data)
        writer.commit()
    artifact = {"name": "db.dump", "kind": "database", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = dict(id=backup_id, kind=repo.kind, artifacts=[artifact],
                    compression={"algorithm": "none"}, encryption=None, source={"scope": "database"},
                    statistics={}, **extra)
    repo.commit(manifest)
    return backup_id


class Policy:
    def __init__(self, **keep):
        for option in RETENTION_OPTIONS:
            setattr(self, option, keep.get(option))
