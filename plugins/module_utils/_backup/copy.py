# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offsite copies: backups copied from one repository to another as they are stored - never decrypted or
decompressed, so a copy needs no key. Every artifact's size and sha256 are proven on the way, before it is made
visible; the manifest (with its signature, whose bytes it keeps) is written last, under the destination's lock,
so a copy exists whole or not at all. Retention then applies to the destination by its own policy."""

import contextlib

from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._backup.config import BackupConfig, s3_options
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import BACKUP_KINDS, validate_source
from ansible_collections.keel.ops.plugins.module_utils._backup.pipeline import HashingWriter, copy as copy_stream
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import MANIFEST, SIGNATURE
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import apply_retention
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import check_repository, open_storage
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError

DESTINATION_PREFIX = "to_"


class CopyConfig(BackupConfig):
    """Options of backup_copy: the source repository as every backup module names it, the destination as the same
    options prefixed with to_, which backups, and the destination's retention."""

    @classmethod
    def from_params(cls, params):
        if params.get("kind") not in BACKUP_KINDS:
            raise ConfigError("kind must be one of %s" % ", ".join(BACKUP_KINDS))
        if params.get("source"):
            validate_source(params["source"])
        config = super(CopyConfig, cls).from_params(params)
        config.to_s3 = s3_options(destination_params(params))
        check_repository(params["to_repository"], config.to_s3)
        if params["to_repository"].rstrip("/") == params["repository"].rstrip("/") and config.to_s3 == config.s3:
            raise ConfigError("to_repository is the repository itself: name another one to copy to")
        return config

    def destination(self, reporter):
        """(the destination's storage, a function that opens its repository of one source). The copies keep the
        source's signatures; the destination checks only that a backup it already holds is the same one."""
        storage = open_storage(self.to_repository, self.to_s3)
        params = dict(self.__dict__, signer=None, trust=None)
        return storage, lambda source: lifecycle.open_repository(params, self.kind, source, reporter, storage)


def destination_params(params):
    """The to_s3_* options under the names s3_options() reads."""
    return dict((key[len(DESTINATION_PREFIX):], value) for key, value in params.items()
                if key.startswith(DESTINATION_PREFIX + "s3_"))


def _raw(repo, backup_id, name):
    try:
        return repo.storage.get(repo.key(backup_id, name))
    except NotFound:
        return None


def chosen_backups(config, repo):
    """The source's backups to copy: the one named, the latest, or all of them (oldest first, so retention on the
    destination sees them in time order)."""
    if config.backup_id == "all":
        return sorted(repo.list(), key=lambda backup: backup.id)
    return [repo.select(config.backup_id or "latest", config.before)]


def _state_at(destination, backup):
    """'missing', 'present' (the same manifest is there), or an error when another backup holds that id."""
    existing = _raw(destination, backup.id, MANIFEST)
    if existing is None:
        return "missing"
    theirs = destination.load(backup.id)
    if [(a["name"], a["sha256"]) for a in theirs.manifest["artifacts"]] != \
            [(a["name"], a["sha256"]) for a in backup.manifest["artifacts"]]:
        raise IntegrityError("%s already holds a backup %s with other artifacts than %s's; it was not copied"
                             % (destination.describe(), backup.id, backup.manifest["source"].get("name")))
    return "present"


def copy_artifact(source, destination, backup_id, artifact):
    """Stream one artifact as stored; it becomes visible only when its size and sha256 are the manifest's."""
    with destination.artifact_writer(backup_id, artifact["name"]) as writer:
        hashed = HashingWriter(writer)
        with source.open_artifact(backup_id, artifact["name"]) as reader:
            copy_stream(reader, hashed)
        if hashed.size != artifact["size"] or hashed.sha256 != artifact["sha256"]:
            raise IntegrityError(
                "artifact %s of backup %s read %d bytes with sha256 %s, the manifest recorded %d bytes and %s: it "
                "was not copied, and neither was the backup" % (source.storage.describe(source.key(backup_id, artifact["name"])),
                                                                backup_id, hashed.size, hashed.sha256,
                                                                artifact["size"], artifact["sha256"]))
        writer.commit()
    return hashed.size


def copy_one(source, destination, backup, lock):
    """Copy a backup's artifacts, then its manifest (signature first, then the very bytes it signs)."""
    size = 0
    try:
        for artifact in backup.manifest["artifacts"]:
            size += copy_artifact(source, destination, backup.id, artifact)
        manifest = _raw(source, backup.id, MANIFEST)
        signature = _raw(source, backup.id, MANIFEST + SIGNATURE)
        lock.check()
        if signature is not None:
            destination.storage.put(destination.key(backup.id, MANIFEST + SIGNATURE), signature)
        destination.storage.put(destination.key(backup.id, MANIFEST), manifest)
    except BaseException:
        with contextlib.suppress(StorageError):  # the next run's cleanup removes what this cannot
            destination.abandon(backup.id)
        raise
    return size


def copy_source(config, reporter, source, destination):
    """Every chosen backup of one source copied (those already there left alone), then the destination's
    retention. Returns this source's part of the result."""
    backups = chosen_backups(config, source)
    done = {"source": source.source, "copied": [], "present": [], "bytes": 0, "retention": None, "cleaned_up": []}
    states = [(backup, _state_at(destination, backup)) for backup in backups]
    done["present"] = [backup.id for backup, state in states if state == "present"]
    missing = [backup for backup, state in states if state == "missing"]
    if reporter.check_mode:
        done["copied"] = [backup.id for backup in missing]
        done["retention"] = apply_retention(destination, config, reporter)
        return done
    with destination.lock(config.lock_timeout) as lock:
        done["cleaned_up"] = lifecycle.clean_up(destination, lock, reporter)
        for backup in missing:
            with source.hold(backup, "backup_copy to %s" % destination.describe()):
                done["bytes"] += copy_one(source, destination, backup, lock)
            done["copied"].append(backup.id)
        lock.check()
        done["retention"] = apply_retention(destination, config, reporter, exclude=done["copied"])
    return done


def copy_backups(config, reporter):
    """state=present of backup_copy: copy the chosen backups of one source, or of every source of the kind."""
    storage = lifecycle.open_repository_storage(config.__dict__)
    names = [config.source] if config.source else sorted(storage.list_children(config.kind))
    to_storage, to_repo = config.destination(reporter)
    parts = []
    for name in names:
        source = lifecycle.open_repository(config.__dict__, config.kind, name, reporter, storage)
        parts.append(copy_source(config, reporter, source, to_repo(name)))
    copied = [backup_id for part in parts for backup_id in part["copied"]]
    deleted = [backup_id for part in parts for backup_id in (part["retention"] or {}).get("deleted", [])]
    size, where = sum(part["bytes"] for part in parts), to_storage.describe("")
    return dict(changed=bool(copied or deleted), sources=parts, copied=copied, deleted=deleted, bytes=size,
                destination=where,
                msg="%s %d backups (%d bytes) to %s; %d already there; retention %s %d"
                % ("would copy" if reporter.check_mode else "copied", len(copied), size, where,
                   sum(len(part["present"]) for part in parts), "would delete" if reporter.check_mode else "deleted",
                   len(deleted)))
