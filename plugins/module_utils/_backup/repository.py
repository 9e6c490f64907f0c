# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup repository: its layout, one writer per source, selecting, committing and deleting backups, and
the holds that keep retention off a backup while it is read.

    <repo>/<kind>/<source>/<backup_id>/manifest.json   written last: present = the backup exists
    <repo>/<kind>/<source>/<backup_id>/<artifact>      each listed in the manifest with size and sha256
    <repo>/<kind>/<source>/<backup_id>/verified.json   the last successful verification, if any
    <repo>/<kind>/<source>/<backup_id>/*.sig           ed25519 signatures of those two, when signing is on
    <repo>/<kind>/<source>/.lock                       one writer at a time per source
    <repo>/<kind>/<source>/.holds/<backup_id>.<token>  a restore or verification reading that backup: retention
                                                       leaves it alone while the hold is live

It works on any Storage of _backup/storage (local directory or S3), so both behave the same. What a manifest
holds, and what it must hold to be believed, is manifest.py's; which backups retention keeps, retention.py's.
"""

import contextlib
import datetime
import json
import threading
import time

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import (
    BACKUP_KINDS,
    FORMAT_VERSION,
    Backup,
    check_manifest,
    is_backup_id,
    isoformat,
    parse_timestamp,
    utcnow,
    validate_source,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.pipeline import sha256_of
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import (
    describe_holder,
    holder_record,
    parse_record,
    process_gone,
)
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError


MANIFEST = "manifest.json"
VERIFIED = "verified.json"
SIGNATURE = ".sig"
LOCK = ".lock"
HOLDS = ".holds"
HOLD_TTL = 600


class BackupNotFound(KeelError):
    """No backup matches what was asked for."""


def _hold_expired(record):
    try:
        return parse_timestamp(record["expires"], "expires") < utcnow()
    except (KeyError, TypeError, AttributeError, ConfigError):
        return True  # not a hold record of ours: it holds nothing


class Repository:
    """The backups of one kind and source inside a storage.

    signer signs what this run writes (manifests, verification records); trust, when set, makes every manifest
    prove its signature before it is believed (see _signing.py). warn receives what list() had to skip."""

    def __init__(self, storage, kind, source, signer=None, trust=None, warn=None):
        if kind not in BACKUP_KINDS:
            raise ConfigError("kind must be one of %s" % ", ".join(BACKUP_KINDS))
        self.storage = storage
        self.kind = kind
        self.source = validate_source(source)
        self.prefix = "%s/%s" % (kind, source)
        self.signer, self.trust = signer, trust
        self._warn = warn or (lambda text: None)

    def key(self, backup_id, name=None):
        return "/".join(part for part in (self.prefix, backup_id, name) if part)

    def describe(self, backup_id=None):
        return self.storage.describe(self.key(backup_id))

    def lock(self, timeout):
        """Exclusive right to write this source; two backups of one source never interleave."""
        return self.storage.lock(self.key(LOCK), timeout)

    def backup_ids(self):
        return [name for name in self.storage.list_children(self.prefix) if is_backup_id(name)]

    def cleanup(self, settle=0):
        """Remove what interrupted writers left, once it is `settle` seconds old (see LockInfo.settle): only safe
        while holding the lock. Returns what was removed, and what was left because it is younger."""
        removed = list(self.storage.cleanup_incomplete(self.prefix, settle))
        left = []
        for backup_id in self.backup_ids():
            if self.storage.exists(self.key(backup_id, MANIFEST)):
                continue
            changed = self.storage.newest_change(self.key(backup_id))
            if settle and changed is not None and time.time() - changed < settle:
                left.append("left incomplete backup %s alone: it was written %ds ago, less than the lock's ttl of %ds, "
                            "so the run that wrote it may still be going" % (self.describe(backup_id),
                                                                             time.time() - changed, settle))
                continue
            self.storage.delete_prefix(self.key(backup_id))
            removed.append("incomplete backup %s" % self.describe(backup_id))
        return removed, left

    def _read_json(self, backup_id, name, what):
        """A JSON record of a backup, its signature proven first when trust is configured."""
        data = self.storage.get(self.key(backup_id, name))
        if self.trust is not None:
            try:
                signature = self.storage.get(self.key(backup_id, name + SIGNATURE))
            except NotFound:
                signature = None
            self.trust.verify(data, signature, "the %s of backup %s" % (what, self.describe(backup_id)))
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError as error:  # UnicodeDecodeError too
            raise IntegrityError("the %s of backup %s is not valid JSON (%s): the backup cannot be trusted"
                                 % (what, self.describe(backup_id), error))
        if not isinstance(record, dict):
            raise IntegrityError("the %s of backup %s is not a JSON object: the backup cannot be trusted"
                                 % (what, self.describe(backup_id)))
        return record

    def load(self, backup_id):
        manifest = self._read_json(backup_id, MANIFEST, "manifest")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise KeelError("backup %s was written by a newer keel.ops (manifest format %s); upgrade the collection"
                            % (backup_id, manifest.get("format_version")))
        check_manifest(manifest, backup_id, self.describe(backup_id), self.kind)
        verified = None
        if self.storage.exists(self.key(backup_id, VERIFIED)):
            try:
                verified = self._read_json(backup_id, VERIFIED, "verification record")
            except IntegrityError as error:
                self._warn("%s; the backup is listed as not verified" % error)
        return Backup(manifest, verified)

    def list(self):
        """Complete backups, newest first; a folder without a manifest is not a backup, and one whose manifest
        cannot be trusted is skipped with a warning (so one damaged backup never hides the others)."""
        backups = []
        for backup_id in sorted(self.backup_ids(), reverse=True):
            if not self.storage.exists(self.key(backup_id, MANIFEST)):
                continue
            try:
                backups.append(self.load(backup_id))
            except (IntegrityError, NotFound) as error:
                self._warn("skipped backup %s: %s" % (self.describe(backup_id), error))
        return backups

    def select(self, backup_id="latest", before=None):
        """The backup named by id, else the newest one (at or before `before`, when given)."""
        if backup_id and backup_id != "latest":
            if not is_backup_id(backup_id) or not self.storage.exists(self.key(backup_id, MANIFEST)):
                raise BackupNotFound("no complete backup %s in %s; pg_backup_info lists the backups there"
                                     % (backup_id, self.describe()))
            return self.load(backup_id)
        candidates = self.list()
        if before is not None:
            candidates = [backup for backup in candidates if backup.time <= before]
        if not candidates:
            when = " at or before %s" % isoformat(before) if before else ""
            raise BackupNotFound("no complete backup%s in %s" % (when, self.describe()))
        return candidates[0]

    def artifact_writer(self, backup_id, name):
        return self.storage.writer(self.key(backup_id, name))

    def _put_json(self, backup_id, name, record):
        """Store a JSON record; with a signer, its signature goes first, so the record never appears unsigned."""
        data = json.dumps(record, indent=2, sort_keys=True).encode("utf-8")
        if self.signer is not None:
            self.storage.put(self.key(backup_id, name + SIGNATURE), self.signer.sign(data))
        self.storage.put(self.key(backup_id, name), data)

    def commit(self, manifest):
        """Write the manifest: from this moment the backup exists."""
        manifest = dict(manifest, format_version=FORMAT_VERSION)
        self._put_json(manifest["id"], MANIFEST, manifest)
        return Backup(manifest)

    def abandon(self, backup_id):
        """Remove a backup that failed before its manifest was written."""
        self.storage.delete_prefix(self.key(backup_id))

    def record_verification(self, backup_id, verification):
        self._put_json(backup_id, VERIFIED, verification)

    def open_artifact(self, backup_id, name):
        return self.storage.reader(self.key(backup_id, name))

    def check_artifacts(self, backup, names=None):
        """Read every artifact back and compare size and sha256 with the manifest, before anything uses it."""
        checked = []
        for artifact in backup.manifest["artifacts"]:
            if names is not None and artifact["name"] not in names:
                continue
            location = self.storage.describe(self.key(backup.id, artifact["name"]))
            if not self.storage.exists(self.key(backup.id, artifact["name"])):
                raise IntegrityError("artifact %s of backup %s is missing" % (location, backup.id))
            with self.open_artifact(backup.id, artifact["name"]) as reader:
                digest, size = sha256_of(reader)
            if size != artifact["size"] or digest != artifact["sha256"]:
                raise IntegrityError(
                    "artifact %s of backup %s is corrupt: sha256 %s and %d bytes, the manifest recorded %s and %d "
                    "bytes; nothing was restored" % (location, backup.id, digest, size, artifact["sha256"],
                                                     artifact["size"]))
            checked.append(artifact["name"])
        return checked

    def delete(self, backup_ids):
        """Delete backups, except those a restore holds; returns the ids deleted.

        The manifest goes first, so an interrupted delete leaves an incomplete backup, never a broken one. Holds
        are looked at after that: a reader that placed its hold earlier is seen and the manifest is put back; one
        that places it later finds no manifest and stops before reading (see hold())."""
        deleted = []
        for backup_id in backup_ids:
            manifest_key = self.key(backup_id, MANIFEST)
            try:
                saved = [(name, self.storage.get(self.key(backup_id, name)))
                         for name in (MANIFEST + SIGNATURE, MANIFEST) if self.storage.exists(self.key(backup_id, name))]
            except NotFound:
                continue  # deleted meanwhile
            self.storage.delete([manifest_key])
            if self.live_holds(backup_id):
                for name, data in saved:
                    self.storage.put(self.key(backup_id, name), data)
                continue
            self.storage.delete_prefix(self.key(backup_id))
            deleted.append(backup_id)
        return deleted

    # -- holds: readers that retention must wait for ---------------------------------------------------- #

    def _hold_keys(self):
        try:
            return self.storage.list(self.key(HOLDS))
        except NotFound:
            return []

    def live_holds(self, backup_id=None):
        """{backup_id: [holder descriptions]} of the holds that are still live (not expired, holder not gone)."""
        held = {}
        for key in self._hold_keys():
            name = key.rsplit("/", 1)[-1]
            held_id = name.split(".", 1)[0]
            if backup_id is not None and held_id != backup_id:
                continue
            try:
                record = parse_record(self.storage.get(key))
            except NotFound:
                continue
            if _hold_expired(record) or process_gone(record):
                continue
            held.setdefault(held_id, []).append(describe_holder(record))
        return held

    @contextlib.contextmanager
    def hold(self, backup, purpose):
        """Keep retention off `backup` while reading it: a hold record renewed by a heartbeat, removed at the
        end. The manifest is looked at once the hold is in place, so a backup that retention deleted just
        before is reported, never read half-way."""
        record = holder_record(purpose, HOLD_TTL)
        key = self.key(HOLDS, "%s.%s" % (backup.id, record["token"]))
        self.storage.put(key, json.dumps(record).encode())
        stop = threading.Event()
        beat = threading.Thread(target=self._renew_hold, args=(key, record, stop), name="keel-hold-heartbeat")
        beat.daemon = True
        beat.start()
        try:
            if not self.storage.exists(self.key(backup.id, MANIFEST)):
                raise BackupNotFound("backup %s was deleted (by retention in another run) before it could be read"
                                     % self.describe(backup.id))
            yield
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(StorageError):  # an expired hold is ignored by everyone anyway
                self.storage.delete([key])

    def _renew_hold(self, key, record, stop):
        while not stop.wait(HOLD_TTL / 3.0):
            renewed = dict(record, expires=isoformat(utcnow() + datetime.timedelta(seconds=HOLD_TTL)))
            with contextlib.suppress(StorageError):
                self.storage.put(key, json.dumps(renewed).encode())
