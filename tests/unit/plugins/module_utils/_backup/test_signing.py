"""Signed manifests: believed when a trusted key signed them, refused when forged, unsigned or signed by another
key; and keys that are not ed25519 refused clearly."""

import json

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.repository import Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.signing import Signer, Trust
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError

from .helpers import make_backup


@pytest.fixture
def keys(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    def pair(name):
        key = ed25519.Ed25519PrivateKey.generate()
        private = tmp_path / (name + ".pem")
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return str(private), public.decode()

    return pair("ours"), pair("theirs")


def test_signed_manifests_are_believed_and_forged_or_unsigned_ones_are_not(tmp_path, keys):
    (ours, ours_public), (theirs, _theirs_public) = keys
    storage = LocalStorage(str(tmp_path / "repo"))
    signed = make_backup(Repository(storage, "postgres", "db1", signer=Signer.from_file(ours)))
    unsigned = make_backup(Repository(storage, "postgres", "db1"))
    foreign = make_backup(Repository(storage, "postgres", "db1", signer=Signer.from_file(theirs)))
    warnings = []
    trusting = Repository(storage, "postgres", "db1", trust=Trust.from_option([ours_public]), warn=warnings.append)
    assert [b.id for b in trusting.list()] == [signed]
    assert trusting.select("latest").id == signed  # newer forged or unsigned backups never win "latest"
    with pytest.raises(IntegrityError, match="is not signed, and trusted_signing_keys requires a signature"):
        trusting.load(unsigned)
    with pytest.raises(IntegrityError, match="is signed by key SHA256:.* which is not among trusted_signing_keys"):
        trusting.load(foreign)
    manifest = json.loads(storage.get(trusting.key(signed, "manifest.json")))
    storage.put(trusting.key(signed, "manifest.json"), json.dumps(dict(manifest, labels={"x": "y"})).encode())
    with pytest.raises(IntegrityError, match="does not match its signature"):
        trusting.load(signed)
    assert len(warnings) == 4  # the unsigned and the foreign backup, skipped by list() and by select()


def test_signing_keys_that_are_not_ed25519_are_refused_clearly(tmp_path):
    from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
    bad = tmp_path / "not-a-key.pem"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ConfigError, match="is not an unencrypted ed25519 private key"):
        Signer.from_file(str(bad))
    with pytest.raises(ConfigError, match="not an ed25519 public key"):
        Trust.from_option(["ssh-ed25519 AAAA-not-base64"])
