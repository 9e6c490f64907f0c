"""The repository where other writers, readers and forgers meet it: holds against retention, leftovers of
writers that may still run, manifests that are not what they claim, and signatures."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import BackupNotFound, Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.signing import Signer, Trust
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import holder_record
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError


def make_backup(repo, data=b"dump bytes", backup_id=None, **extra):
    backup_id = backup_id or new_backup_id()
    with repo.artifact_writer(backup_id, "db.dump") as writer:
        writer.write(data)
        writer.commit()
    artifact = {"name": "db.dump", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = dict(id=backup_id, kind=repo.kind, artifacts=[artifact],
                    compression={"algorithm": "none"}, encryption=None, source={"scope": "database"},
                    statistics={}, **extra)
    repo.commit(manifest)
    return backup_id


@pytest.fixture
def repo(tmp_path):
    return Repository(LocalStorage(str(tmp_path / "repo")), "postgres", "db1")


class Policy:
    def __init__(self, **keep):
        for option in lifecycle.RETENTION_OPTIONS:
            setattr(self, option, keep.get(option))


def test_retention_never_deletes_the_backup_this_run_committed(repo):
    """Ids sort by the writer's clock: another writer whose clock runs ahead makes ours look old."""
    ahead = make_backup(repo, backup_id="20991231T235959000Z-ffffff")
    ours = make_backup(repo)
    result = lifecycle.apply_retention(repo, Policy(keep_last=1), Reporter(), exclude=(ours,))
    assert result["deleted"] == [] and result["reasons"][ours] == ["taken by this run"]
    assert sorted(b.id for b in repo.list()) == sorted([ahead, ours])


def test_a_held_backup_is_kept_by_retention_until_the_hold_ends(repo):
    old, new = make_backup(repo, backup_id="20260101T000000000Z-aaaaaa"), make_backup(repo)
    with repo.hold(repo.load(old), "a restore"):
        result = lifecycle.apply_retention(repo, Policy(keep_last=1), Reporter())
        assert result["deleted"] == [] and result["reasons"][old][0].startswith("held by host ")
        assert repo.live_holds() and old in repo.live_holds()
    assert repo.live_holds() == {}
    assert lifecycle.apply_retention(repo, Policy(keep_last=1), Reporter())["deleted"] == [old]
    assert [b.id for b in repo.list()] == [new]


def test_a_hold_placed_while_retention_deletes_puts_the_manifest_back(repo):
    """Retention deletes the manifest first, then looks for holds: a reader that got its hold in before that look
    keeps the backup whole."""
    old = make_backup(repo, backup_id="20260101T000000000Z-aaaaaa")
    make_backup(repo)
    record = holder_record("a restore that started meanwhile", 600)
    original_delete = repo.storage.delete

    def delete_then_a_hold_appears(keys):
        original_delete(keys)
        repo.storage.put(repo.key(".holds", "%s.%s" % (old, record["token"])), json.dumps(record).encode())

    repo.storage.delete = delete_then_a_hold_appears
    assert repo.delete([old]) == []
    repo.storage.delete = original_delete
    assert repo.load(old).id == old and repo.check_artifacts(repo.load(old)) == ["db.dump"]


def test_a_reader_that_comes_too_late_is_told_the_backup_is_gone(repo):
    old = make_backup(repo)
    backup = repo.load(old)
    repo.delete([old])
    with pytest.raises(BackupNotFound, match="was deleted .* before it could be read"):
        with repo.hold(backup, "a restore"):
            pass
    assert repo.live_holds() == {}


def test_holds_of_dead_processes_and_expired_holds_hold_nothing(repo):
    old = make_backup(repo)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = dict(holder_record("killed restore", 600), pid=child.pid)
    expired = dict(holder_record("old restore", 600), expires="2001-01-01T00:00:00Z", host="elsewhere")
    for record in (dead, expired):
        repo.storage.put(repo.key(".holds", "%s.%s" % (old, record["token"])), json.dumps(record).encode())
    assert repo.live_holds() == {}


def test_cleanup_leaves_young_incomplete_backups_when_their_writer_may_still_run(repo):
    young = new_backup_id()
    with repo.artifact_writer(young, "db.dump") as writer:
        writer.write(b"half")
        writer.commit()
    removed, left = repo.cleanup(settle=600)
    assert removed == [] and len(left) == 1 and "may still be going" in left[0]
    path = os.path.join(repo.storage.root, "postgres", "db1", young, "db.dump")
    os.utime(path, (time.time() - 700, time.time() - 700))
    removed, left = repo.cleanup(settle=600)
    assert left == [] and removed == ["incomplete backup %s" % repo.describe(young)]


@pytest.mark.parametrize("forge, problem", [
    (lambda m: dict(m, id="20200101T000000000Z-000000"), "does not match its folder"),
    (lambda m: dict(m, artifacts=[]), "lists no artifacts"),
    (lambda m: dict(m, artifacts=[{"name": "../../../etc/passwd", "size": 1, "sha256": "0" * 64}]), "malformed"),
    (lambda m: dict(m, artifacts=[{"name": "db.dump", "size": "1", "sha256": "0" * 64}]), "malformed"),
    (lambda m: ["not", "an", "object"], "not a JSON object"),
    (lambda m: dict(m, compression={"algorithm": "lz4"}), "compression"),
    (lambda m: dict(m, statistics=None), "source or statistics a postgres backup records"),
    (lambda m: dict(m, source="db"), "source or statistics"),
])
def test_a_manifest_is_data_its_shape_is_proven(repo, forge, problem):
    good = make_backup(repo)
    manifest = json.loads(repo.storage.get(repo.key(good, "manifest.json")))
    repo.storage.put(repo.key(good, "manifest.json"), json.dumps(forge(manifest)).encode())
    with pytest.raises(IntegrityError, match=problem):
        repo.load(good)


def test_a_corrupt_manifest_or_verification_is_skipped_with_a_warning_not_a_traceback(tmp_path):
    warnings = []
    repo = Repository(LocalStorage(str(tmp_path / "repo")), "postgres", "db1", warn=warnings.append)
    broken, fine = make_backup(repo, backup_id="20260101T000000000Z-aaaaaa"), make_backup(repo)
    repo.storage.put(repo.key(broken, "manifest.json"), b"\xff\xfe not json")
    repo.storage.put(repo.key(fine, "verified.json"), b"{truncated")
    assert [b.id for b in repo.list()] == [fine]
    assert repo.list()[0].verified is None
    assert any("skipped backup" in w and broken in w and "not valid JSON" in w for w in warnings)
    assert any("verification record" in w and "listed as not verified" in w for w in warnings)


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
