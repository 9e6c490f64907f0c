"""The lifecycle every backup kind shares, on a real local repository, with a take() of the test's own."""

import io
import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._backup.config import BackupConfig, Reporter
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import StorageError
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError

from .helpers import make_backup


def config(**options):
    defaults = dict(lock_timeout=0, compression="none", compression_level=None, recipients=[], passphrase=None,
                    labels={"team": "db"}, keep_last=None, keep_daily=None, keep_weekly=None, keep_monthly=None)
    return BackupConfig(**dict(defaults, **options))


def take_two_artifacts(run):
    run.store("a.dump", io.BytesIO(b"first"), kind="database")
    run.store("b.dump", io.BytesIO(b"second artifact"), kind="database")
    return run.manifest("postgres", "test", source={"scope": "database"}, statistics={"rows": 2},
                        tool_details={"client": "16.4"}, options={"x": 1})


def test_a_backup_is_committed_with_what_every_kind_records(repo):
    run = lifecycle.BackupRun(config(), Reporter(), repo, "keel.ops.test")
    manifest = lifecycle.run_backup(run, take_two_artifacts)
    assert [b.id for b in repo.list()] == [manifest["id"]] == [run.backup_id]
    assert manifest["tool"] == {"name": "keel.ops.test", "version": "0.1.0", "client": "16.4"}
    assert manifest["source"] == {"scope": "database", "name": "db1"} and manifest["labels"] == {"team": "db"}
    assert [a["name"] for a in manifest["artifacts"]] == ["a.dump", "b.dump"] and manifest["options"] == {"x": 1}
    result = run.result(manifest, plan={"p": 1})
    assert result["size"] == result["raw_size"] == len(b"first") + len(b"second artifact")
    assert result["retention"] == {"applied": False, "kept": [], "deleted": []} and result["plan"] == {"p": 1}
    assert not os.path.exists(run.workdir)  # the work dir is gone once the run ends


def test_a_take_that_fails_leaves_nothing_behind(repo):
    def failing(run):
        run.store("a.dump", io.BytesIO(b"half of it"))
        raise ConfigError("pg_dump failed half-way")

    run = lifecycle.BackupRun(config(), Reporter(), repo, "keel.ops.test")
    with pytest.raises(ConfigError, match="half-way"):
        lifecycle.run_backup(run, failing)
    assert repo.list() == [] and repo.backup_ids() == []


def test_nothing_is_committed_once_the_lock_cannot_be_proven(repo):
    def lose_the_lock(run):
        manifest = take_two_artifacts(run)
        os.unlink(os.path.join(repo.storage.root, "postgres", "db1", ".lock"))  # another run may now lock anew
        return manifest

    run = lifecycle.BackupRun(config(), Reporter(), repo, "keel.ops.test")
    with pytest.raises(StorageError, match="was removed while this run held it"):
        lifecycle.run_backup(run, lose_the_lock)
    assert repo.list() == []


def test_retention_runs_after_the_commit_and_spares_this_run(repo):
    older = [make_backup(repo, backup_id="2026010%dT000000000Z-aaaaaa" % day) for day in (1, 2)]
    run = lifecycle.BackupRun(config(keep_last=1), Reporter(), repo, "keel.ops.test")
    manifest = lifecycle.run_backup(run, take_two_artifacts)
    assert sorted(run.retention["deleted"]) == sorted(older) and [b.id for b in repo.list()] == [manifest["id"]]


def test_state_absent_without_a_keep_option_is_refused_before_anything_is_locked(repo):
    with pytest.raises(ConfigError, match="set at least one of keep_last, keep_daily, keep_weekly, keep_monthly"):
        lifecycle.prune(repo, config(), Reporter())
    assert not os.path.exists(os.path.join(repo.storage.root, "postgres", "db1", ".lock"))


def test_reading_holds_the_backup_and_proves_its_checksums_first(repo):
    backup = repo.load(make_backup(repo, data=b"the dump"))
    with lifecycle.reading(repo, backup, config(decryption_identity_file=None, decryption_passphrase_file=None),
                           "a test restore") as (checked, identities):
        assert checked == ["db.dump"] and identities is None and backup.id in repo.live_holds()
    assert repo.live_holds() == {}
    with open(os.path.join(repo.storage.root, "postgres", "db1", backup.id, "db.dump"), "wb") as handle:
        handle.write(b"the dumq")
    with pytest.raises(IntegrityError, match="is corrupt"):
        with lifecycle.reading(repo, backup, config(), "a test restore"):
            pass
    assert repo.live_holds() == {}
