# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup repository: layout, manifests, one writer per source, selection and retention.

    <repo>/<kind>/<source>/<backup_id>/manifest.json   written last: present = the backup exists
    <repo>/<kind>/<source>/<backup_id>/<artifact>      each listed in the manifest with size and sha256
    <repo>/<kind>/<source>/<backup_id>/verified.json   the last successful verification, if any
    <repo>/<kind>/<source>/.lock                       one writer at a time per source

It works on any Storage from _storage.py (local directory or S3), so both behave the same.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._pipeline import IntegrityError, sha256_of

MANIFEST = "manifest.json"
VERIFIED = "verified.json"
LOCK = ".lock"
FORMAT_VERSION = 1
KINDS = ("postgres", "redis", "files")
ID_TIME_FORMAT = "%Y%m%dT%H%M%S"
_ID_PATTERN = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")
_SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BackupNotFound(KeelError):
    """No backup matches what was asked for."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def new_backup_id(now=None):
    """A backup id that sorts by time: UTC time to the millisecond, then a random suffix against collisions."""
    now = now or utcnow()
    return "%s%03dZ-%s" % (now.strftime(ID_TIME_FORMAT), now.microsecond // 1000, os.urandom(3).hex())


def backup_time(backup_id):
    stamp = backup_id.split("-")[0]
    moment = datetime.datetime.strptime(stamp[:15], ID_TIME_FORMAT)
    return moment.replace(microsecond=int(stamp[15:18]) * 1000, tzinfo=datetime.timezone.utc)


def is_backup_id(name):
    return bool(_ID_PATTERN.match(name))


def isoformat(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text, option):
    """Parse an ISO 8601 timestamp (naive means UTC) for options like 'before'."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise ConfigError("%s must be an ISO 8601 timestamp such as 2026-11-23T04:00:00Z, got %r" % (option, text))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def validate_source(name):
    if not _SOURCE_PATTERN.match(name or ""):
        raise ConfigError("source %r is not usable as a repository folder name: use letters, digits, '.', '_' "
                          "and '-' (at most 128, not starting with '.' or '-')" % name)
    return name


class Backup:
    """One complete backup: its id, time, manifest and last verification."""

    def __init__(self, manifest, verified=None):
        self.manifest = manifest
        self.id = manifest["id"]
        self.time = backup_time(self.id)
        self.verified = verified

    @property
    def size(self):
        return sum(artifact["size"] for artifact in self.manifest["artifacts"])

    def summary(self):
        manifest = self.manifest
        encryption = manifest.get("encryption")
        return {
            "backup_id": self.id,
            "time": isoformat(self.time),
            "source": manifest["source"],
            "size": self.size,
            "artifacts": [artifact["name"] for artifact in manifest["artifacts"]],
            "format": manifest.get("format"),
            "compression": manifest.get("compression", {}).get("algorithm"),
            "encrypted": bool(encryption),
            "encryption": encryption,
            "duration": manifest.get("duration"),
            "labels": manifest.get("labels", {}),
            "last_verified": (self.verified or {}).get("time"),
            "verification": self.verified,
        }


class Repository:
    """The backups of one kind and source inside a storage."""

    def __init__(self, storage, kind, source):
        if kind not in KINDS:
            raise ConfigError("kind must be one of %s" % ", ".join(KINDS))
        self.storage = storage
        self.kind = kind
        self.source = validate_source(source)
        self.prefix = "%s/%s" % (kind, source)

    def key(self, backup_id, name=None):
        return "/".join(part for part in (self.prefix, backup_id, name) if part)

    def describe(self, backup_id=None):
        return self.storage.describe(self.key(backup_id))

    def lock(self, timeout):
        """Exclusive right to write this source; two backups of one source never interleave."""
        return self.storage.lock(self.key(LOCK), timeout)

    def backup_ids(self):
        return [name for name in self.storage.list_children(self.prefix) if is_backup_id(name)]

    def cleanup(self):
        """Remove what interrupted writers left: only safe while holding the lock."""
        removed = list(self.storage.cleanup_incomplete(self.prefix))
        for backup_id in self.backup_ids():
            if not self.storage.exists(self.key(backup_id, MANIFEST)):
                self.storage.delete_prefix(self.key(backup_id))
                removed.append("incomplete backup %s" % self.describe(backup_id))
        return removed

    def load(self, backup_id):
        try:
            manifest = json.loads(self.storage.get(self.key(backup_id, MANIFEST)).decode("utf-8"))
        except ValueError as error:
            raise IntegrityError("the manifest of backup %s is not valid JSON (%s): the backup cannot be trusted"
                                 % (self.describe(backup_id), error))
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise KeelError("backup %s was written by a newer keel.ops (manifest format %s); upgrade the collection"
                            % (backup_id, manifest.get("format_version")))
        verified = None
        if self.storage.exists(self.key(backup_id, VERIFIED)):
            verified = json.loads(self.storage.get(self.key(backup_id, VERIFIED)).decode("utf-8"))
        return Backup(manifest, verified)

    def list(self):
        """Complete backups, newest first; a folder without a manifest is not a backup."""
        backups = []
        for backup_id in sorted(self.backup_ids(), reverse=True):
            if self.storage.exists(self.key(backup_id, MANIFEST)):
                backups.append(self.load(backup_id))
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

    def commit(self, manifest):
        """Write the manifest: from this moment the backup exists."""
        manifest = dict(manifest, format_version=FORMAT_VERSION)
        data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        self.storage.put(self.key(manifest["id"], MANIFEST), data)
        return Backup(manifest)

    def abandon(self, backup_id):
        """Remove a backup that failed before its manifest was written."""
        self.storage.delete_prefix(self.key(backup_id))

    def record_verification(self, backup_id, verification):
        self.storage.put(self.key(backup_id, VERIFIED),
                         json.dumps(verification, indent=2, sort_keys=True).encode("utf-8"))

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
        for backup_id in backup_ids:
            # The manifest goes first, so an interrupted delete leaves an incomplete backup, never a broken one.
            self.storage.delete([self.key(backup_id, MANIFEST)])
            self.storage.delete_prefix(self.key(backup_id))


# --- retention --------------------------------------------------------------------------------------

RETENTION_OPTIONS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")

_PERIODS = {
    "keep_daily": lambda moment: moment.date().isoformat(),
    "keep_weekly": lambda moment: "%d-W%02d" % moment.isocalendar()[:2],
    "keep_monthly": lambda moment: moment.strftime("%Y-%m"),
}


def retention_configured(policy):
    return any(policy.get(option) is not None for option in RETENTION_OPTIONS)


def validate_retention(policy):
    for option in RETENTION_OPTIONS:
        value = policy.get(option)
        if value is not None and value < 0:
            raise ConfigError("%s must be 0 or more, got %s" % (option, value))


def plan_retention(backups, policy):
    """Grandfather-father-son: which backups to keep (with why) and which to delete.

    `backups` are (id, time) pairs in any order. keep_last keeps the N newest; keep_daily/weekly/monthly keep
    the newest backup of each of the N most recent days/ISO weeks/months that have one. The newest backup is
    always kept, whatever the policy says, and without any keep_* option nothing is deleted.
    """
    ordered = sorted(backups, key=lambda item: item[1], reverse=True)
    if not retention_configured(policy):
        return dict((backup_id, ["no retention policy"]) for backup_id, _moment in ordered), []
    reasons = dict((backup_id, []) for backup_id, _moment in ordered)
    for backup_id, _moment in ordered[:policy.get("keep_last") or 0]:
        reasons[backup_id].append("last")
    for option, period_of in _PERIODS.items():
        limit = policy.get(option) or 0
        seen = []
        for backup_id, moment in ordered:
            period = period_of(moment)
            if period not in seen and len(seen) < limit:
                seen.append(period)
                reasons[backup_id].append(option[len("keep_"):])
    if ordered:
        reasons[ordered[0][0]].append("newest")
    keep = dict((backup_id, why) for backup_id, why in reasons.items() if why)
    delete = [backup_id for backup_id, _moment in ordered if backup_id not in keep]
    return keep, delete
