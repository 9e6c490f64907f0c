# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle every backup kind shares: lock -> clean up -> take -> commit -> retention, with the lock proven
before each irreversible step, and state=absent's retention under the same lock. A kind (pg_dump, RDB
snapshots, ...) writes only what is specific to it: the function that takes its artifacts and returns the
manifest."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib

from ansible_collections.keel.ops.plugins.module_utils._backup.config import s3_options, signing_from_params
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import (
    RETENTION_OPTIONS,
    apply_retention,
    policy_of,
    retention_configured,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


def run_backup(repo, config, reporter, take):
    """The lifecycle every backup kind shares: lock -> clean up -> take -> commit -> retention.

    take(backup_id) writes the artifacts and returns the manifest. It is committed only after the lock proves,
    then and there, that this run still holds it; retention runs after a second proof and never deletes the
    backup just committed. Returns (manifest, what cleanup removed, retention result)."""
    with repo.lock(config.lock_timeout) as lock:
        cleaned = _clean_up(repo, lock, reporter)
        backup_id = new_backup_id()
        try:
            manifest = take(backup_id)
            lock.check()
            repo.commit(manifest)
        except BaseException:
            with contextlib.suppress(StorageError):  # the next run's cleanup removes what this cannot
                repo.abandon(backup_id)
            raise
        try:
            lock.check()
        except StorageError as error:
            reporter.warn("backup %s is complete, but retention was skipped: %s" % (backup_id, error))
            return manifest, cleaned, {"applied": False, "kept": [], "deleted": [], "skipped": str(error)}
        return manifest, cleaned, apply_retention(repo, config, reporter, exclude=(backup_id,))


def prune(repo, config, reporter):
    """state=absent of every backup kind: retention only, under the lock; without a keep_* option there is nothing
    to do, which is an error. Returns (retention result, what cleanup removed)."""
    if not retention_configured(policy_of(config)):
        raise ConfigError("state=absent applies retention: set at least one of %s" % ", ".join(RETENTION_OPTIONS))
    if reporter.check_mode:
        return apply_retention(repo, config, reporter), []
    with repo.lock(config.lock_timeout) as lock:
        cleaned = _clean_up(repo, lock, reporter)
        lock.check()
        return apply_retention(repo, config, reporter), cleaned


def _clean_up(repo, lock, reporter):
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
