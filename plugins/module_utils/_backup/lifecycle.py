# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle every backup kind shares: lock -> clean up -> take -> commit -> retention, with the lock proven
before each irreversible step, and state=absent's retention under the same lock. A kind (pg_dump, RDB
snapshots, ...) writes only what is specific to it: the function that takes its artifacts and returns the
manifest."""

import contextlib
import shutil
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process

from ansible_collections.keel.ops.plugins.module_utils._backup.config import (
    VERSION,
    Reporter,
    s3_options,
    signing_from_params,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.encoding import (
    Encoder,
    open_identities,
    store_artifact,
    store_key,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, new_backup_id, utcnow
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import (
    RETENTION_OPTIONS,
    apply_retention,
    policy_of,
    retention_configured,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, module_failures


class BackupRun:
    """One backup being taken: what every artifact writer of a kind needs, handed around as one object.

    run_backup() fills in backup_id, workdir and the clock, and stores the passphrase-sealed key first when there
    is one; a kind's take(run) stores its artifacts with store() and returns manifest(...) with what is its own.
    """

    def __init__(self, config, reporter, repo, tool):
        self.config, self.reporter, self.repo, self.tool = config, reporter, repo, tool
        self.encoder = Encoder(config)
        self.backup_id = self.workdir = None
        self.artifacts = []
        self.cleaned, self.retention = [], None
        self._started = self._clock = None

    def begin(self, workdir):
        self.backup_id, self.workdir = new_backup_id(), workdir
        self._started, self._clock = utcnow(), time.monotonic()
        if self.encoder.wrapped_key:
            self.artifacts.append(store_key(self.repo, self.backup_id, self.encoder))

    def store(self, stem, source, **fields):
        """Stream `source` into the artifact named after `stem` (plus the encoder's extensions)."""
        artifact = store_artifact(self.repo, self.backup_id, self.encoder.artifact_name(stem), self.encoder, source)
        artifact.update(fields)
        self.artifacts.append(artifact)
        return artifact

    def manifest(self, kind, format_name, source, statistics, tool_details=None, **extra):
        """The manifest of this backup: what every kind records, plus `extra`."""
        duration = round(time.monotonic() - self._clock, 3)
        return dict(self.encoder.manifest(), id=self.backup_id, kind=kind, format=format_name,
                    source=dict(source, name=self.repo.source),
                    tool=dict(tool_details or {}, name=self.tool, version=VERSION),
                    started=isoformat(self._started), finished=isoformat(utcnow()), duration=duration,
                    labels=self.config.labels or {}, artifacts=self.artifacts, statistics=statistics, **extra)

    def result(self, manifest, plan):
        """The module result every kind returns for a backup taken (its msg is the kind's to add)."""
        artifacts = manifest["artifacts"]
        raw = sum(artifact["raw_size"] for artifact in artifacts)
        return dict(changed=True, backup_id=manifest["id"], location=self.repo.describe(manifest["id"]),
                    source=self.repo.source, size=sum(artifact["size"] for artifact in artifacts), raw_size=raw,
                    duration=manifest["duration"],
                    throughput_mb_s=round(raw / 1e6 / manifest["duration"], 1) if manifest["duration"] else None,
                    artifacts=artifacts, statistics=manifest["statistics"], compression=manifest["compression"],
                    encryption=manifest["encryption"], retention=self.retention, cleaned_up=self.cleaned, plan=plan)


def run_backup(run, take):
    """The lifecycle every backup kind shares: lock -> clean up -> take -> commit -> retention.

    take(run) writes the artifacts and returns the manifest. It is committed only after the lock proves, then
    and there, that this run still holds it; retention runs after a second proof and never deletes the backup
    just committed. Returns the manifest; run.cleaned and run.retention say what cleanup and retention did."""
    repo, config, reporter = run.repo, run.config, run.reporter
    workdir = process.workdir()
    try:
        with repo.lock(config.lock_timeout) as lock:
            run.cleaned = clean_up(repo, lock, reporter)
            try:
                run.begin(workdir)
                manifest = take(run)
                lock.check()
                repo.commit(manifest)
            except BaseException:
                if run.backup_id:
                    with contextlib.suppress(StorageError):  # the next run's cleanup removes what this cannot
                        repo.abandon(run.backup_id)
                raise
            try:
                lock.check()
            except StorageError as error:
                reporter.warn("backup %s is complete, but retention was skipped: %s" % (run.backup_id, error))
                run.retention = {"applied": False, "kept": [], "deleted": [], "skipped": str(error)}
            else:
                run.retention = apply_retention(repo, config, reporter, exclude=(run.backup_id,))
            return manifest
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def reading(repo, backup, config, purpose, hold=True):
    """What every restore and verification does before it reads a backup: hold it against retention, prove every
    artifact's checksum, and prove the key opens it. Yields (the artifacts checked, the identities). A check-mode
    restore proves the same (a dry run that says it would work has read the backup) without the hold, which is a
    write to the repository."""
    with repo.hold(backup, purpose) if hold else contextlib.nullcontext():
        checked = repo.check_artifacts(backup)
        yield checked, open_identities(config, repo, backup)


def proven(repo, backup, config):
    """The check-mode half of reading(): the artifacts whose checksums were proven, the key proven to open them."""
    with reading(repo, backup, config, "check mode", hold=False) as (checked, _identities):
        return checked


def prune(repo, config, reporter, noun="backups"):
    """state=absent of every backup kind: retention only, under the lock; without a keep_* option there is nothing
    to do, which is an error. Returns the module result (retention, deleted, what cleanup removed)."""
    if not retention_configured(policy_of(config)):
        raise ConfigError("state=absent applies retention: set at least one of %s" % ", ".join(RETENTION_OPTIONS))
    if reporter.check_mode:
        retention, cleaned = apply_retention(repo, config, reporter), []
    else:
        with repo.lock(config.lock_timeout) as lock:
            cleaned = clean_up(repo, lock, reporter)
            lock.check()
            retention = apply_retention(repo, config, reporter)
    deleted = retention["deleted"]
    return dict(changed=bool(deleted), retention=retention, deleted=deleted, cleaned_up=cleaned,
                msg="%s %d %s" % ("would delete" if reporter.check_mode else "deleted", len(deleted), noun))


def clean_up(repo, lock, reporter):
    for warning in lock.warnings:
        reporter.warn(warning)
    cleaned, left = repo.cleanup(lock.settle)
    for text in left:
        reporter.warn(text)
    return cleaned


def open_repository_storage(params):
    return open_storage(params["repository"], s3_options(params))


def open_repository(params, kind, source, reporter=None, storage=None):
    """The one way every module opens the backups of a source: storage, signing and trust from the options
    (already loaded when `params` is a config's __dict__)."""
    signer, trust = (params["signer"], params["trust"]) if "signer" in params else signing_from_params(params)
    return Repository(storage or open_repository_storage(params), kind, source, signer=signer, trust=trust,
                      warn=reporter.warn if reporter else None)


def run_module(module, name, config_class, actions):
    """The main() of every backup module: its options into a config, the action of its state, one result."""
    reporter = Reporter(check_mode=module.check_mode, warn=module.warn)
    state = module.params.get("state")
    with module_failures(module, "%s (state=%s)" % (name, state) if state else name):
        state = state or "present"  # a module with one action has no state option
        config = config_class.from_params(module.params)
        module.exit_json(**actions[state](config, reporter))
