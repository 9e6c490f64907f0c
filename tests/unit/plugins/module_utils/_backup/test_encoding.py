"""Artifacts through a local repository: stored compressed (and age-encrypted), read back whole, and a key proven
on the backup before anything is restored."""

import io
import os

import pytest
from pyrage import x25519

from ansible_collections.keel.ops.plugins.module_utils._backup.compression import DEFAULT_LEVELS
from ansible_collections.keel.ops.plugins.module_utils._backup.config import BackupConfig
from ansible_collections.keel.ops.plugins.module_utils._backup.encoding import (
    KEY_ARTIFACT,
    Encoder,
    open_identities,
    store_artifact,
    store_key,
    stream_into,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.encryption import fingerprint
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id
from ansible_collections.keel.ops.plugins.module_utils._errors import DecryptionKeyError

DATA = b"".join(b"INSERT INTO t VALUES (%d);\n" % n for n in range(20000)) + os.urandom(64 * 1024)


def config(compression="zstd", recipients=(), passphrase=None, identity_file=None, passphrase_file=None):
    return BackupConfig(compression=compression, compression_level=DEFAULT_LEVELS[compression], passphrase=passphrase,
                        recipients=[(str(recipient), recipient) for recipient in recipients],
                        decryption_identity_file=identity_file, decryption_passphrase_file=passphrase_file)


def back_up(repo, encoder, data=DATA):
    """What a backup kind does with the encoder: the sealed key first, then its data, then the manifest."""
    backup_id = new_backup_id()
    artifacts = [store_key(repo, backup_id, encoder)] if encoder.wrapped_key else []
    stored = store_artifact(repo, backup_id, encoder.artifact_name("db.dump"), encoder, io.BytesIO(data))
    artifacts.append(dict(stored, kind="database"))
    repo.commit(dict(encoder.manifest(), id=backup_id, kind="postgres", artifacts=artifacts,
                     source={"scope": "database"}, statistics={}))
    return repo.load(backup_id)


def restored(repo, backup, identities):
    out = io.BytesIO()
    stream_into(repo, backup, backup.manifest["artifacts"][-1], identities, out)
    return out.getvalue()


def stored_bytes(repo, backup, name):
    with repo.open_artifact(backup.id, name) as reader:
        return reader.read()


@pytest.mark.parametrize("algorithm, name", [("zstd", "db.dump.zst"), ("gzip", "db.dump.gz"), ("none", "db.dump")])
def test_an_unencrypted_artifact_is_stored_compressed_and_comes_back_whole(repo, algorithm, name):
    backup = back_up(repo, Encoder(config(algorithm)))
    [artifact] = backup.manifest["artifacts"]
    assert artifact["name"] == name and artifact["raw_size"] == len(DATA)
    assert backup.manifest["encryption"] is None and backup.manifest["compression"]["algorithm"] == algorithm
    assert (artifact["size"] < len(DATA)) == (algorithm != "none")
    assert repo.check_artifacts(backup) == [name]  # size and sha256 are those of the stored bytes
    assert open_identities(config(), repo, backup) is None
    assert restored(repo, backup, None) == DATA


def test_an_artifact_encrypted_to_a_recipient_opens_only_with_its_identity(repo, tmp_path):
    identity = x25519.Identity.generate()
    backup = back_up(repo, Encoder(config(recipients=[identity.to_public()])))
    [artifact] = backup.manifest["artifacts"]
    assert artifact["name"] == "db.dump.zst.age" and repo.check_artifacts(backup) == ["db.dump.zst.age"]
    assert backup.manifest["encryption"] == {"method": "age", "recipients": [fingerprint(str(identity.to_public()))],
                                             "passphrase": False}
    assert b"INSERT INTO" not in stored_bytes(repo, backup, artifact["name"])
    key_file = tmp_path / "identity.txt"
    key_file.write_text("# the restore key\n%s\n" % identity)
    identities = open_identities(config(identity_file=str(key_file)), repo, backup)
    assert restored(repo, backup, identities) == DATA


def test_a_wrong_identity_is_refused_before_anything_is_restored(repo, tmp_path):
    backup = back_up(repo, Encoder(config(recipients=[x25519.Identity.generate().to_public()])))
    key_file = tmp_path / "other.txt"
    key_file.write_text("%s\n" % x25519.Identity.generate())
    with pytest.raises(DecryptionKeyError, match="none of the decryption keys given can decrypt this backup"):
        open_identities(config(identity_file=str(key_file)), repo, backup)


def test_a_passphrase_backup_stores_its_sealed_key_first_and_opens_with_the_passphrase(repo, tmp_path):
    """One backup (scrypt is slow on purpose); a wrong passphrase is test_encryption.py's."""
    recipient = x25519.Identity.generate().to_public()
    backup = back_up(repo, Encoder(config("gzip", recipients=[recipient], passphrase="correct horse")))
    key, data = backup.manifest["artifacts"]
    assert key["name"] == KEY_ARTIFACT and key["kind"] == "key" and data["name"] == "db.dump.gz.age"
    assert backup.manifest["encryption"] == {"method": "age", "recipients": [fingerprint(str(recipient))],
                                             "passphrase": True}
    assert repo.check_artifacts(backup) == [KEY_ARTIFACT, "db.dump.gz.age"]
    assert b"correct horse" not in stored_bytes(repo, backup, KEY_ARTIFACT)
    with pytest.raises(DecryptionKeyError) as caught:
        open_identities(config(), repo, backup)
    assert str(caught.value) == ("backup %s is encrypted (recipients %s, passphrase): give decryption_identity_file "
                                 "or decryption_passphrase_file" % (backup.id, fingerprint(str(recipient))))
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse\n")
    identities = open_identities(config(passphrase_file=str(passphrase)), repo, backup)
    assert restored(repo, backup, identities) == DATA


def test_a_backup_encrypted_to_recipients_only_asks_for_an_identity_file(repo):
    backup = back_up(repo, Encoder(config(recipients=[x25519.Identity.generate().to_public()])))
    with pytest.raises(DecryptionKeyError, match=r"\(recipients sha256:[0-9a-f]{16}\): give decryption_identity_file$"):
        open_identities(config(), repo, backup)
