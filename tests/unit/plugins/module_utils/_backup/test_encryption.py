"""age in the pipeline: a wrong key, a flipped byte and truncation are told apart; passphrase-sealed keys;
recipients and identities parsed with precise errors."""

import pytest
from pyrage import x25519

from ansible_collections.keel.ops.plugins.module_utils._backup import encryption
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DecryptionKeyError, IntegrityError

from .helpers import DATA, load, store


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
