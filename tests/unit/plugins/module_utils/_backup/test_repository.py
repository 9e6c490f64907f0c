"""The repository where other writers, readers and forgers meet it: holds against retention, leftovers of
writers that may still run, and manifests that are not what they claim."""

import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import BackupNotFound, Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import holder_record
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError

from .helpers import make_backup


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
    (lambda m: dict(m, artifacts=[{"name": "db.dump", "kind": "database", "size": "1", "sha256": "0" * 64}]),
     "malformed"),
    (lambda m: dict(m, artifacts=[dict(m["artifacts"][0], kind=None)]), "name, kind, size and sha256 are required"),
    (lambda m: dict(m, artifacts=[dict(m["artifacts"][0], kind="key")]), "only a key, no data"),
    (lambda m: dict(m, artifacts=[dict(m["artifacts"][0], kind="rdb")]), "source or statistics a postgres backup"),
    (lambda m: dict(m, encryption={"method": "age"}), "encryption entry is malformed"),
    (lambda m: dict(m, encryption={"method": "age", "recipients": [1]}), "encryption entry is malformed"),
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
