# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup as its manifest describes it: ids that sort by time, the times and source names a repository uses,
the Backup record, and the shape a manifest read from a repository must have before anything believes it
(a repository is data from elsewhere)."""

import datetime
import os
import re

from ansible_collections.keel.ops.plugins.module_utils._backup.compression import COMPRESSIONS
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError


FORMAT_VERSION = 1
BACKUP_KINDS = ("postgres", "redis", "files", "pgbase")
ID_TIME_FORMAT = "%Y%m%dT%H%M%S"


_ID_PATTERN = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")


_SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


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


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _artifact_ok(artifact):
    return (isinstance(artifact, dict) and isinstance(artifact.get("name"), str) and artifact["name"]
            and "/" not in artifact["name"] and not artifact["name"].startswith(".")
            and isinstance(artifact.get("kind"), str) and artifact["kind"] and _is_int(artifact.get("size"))
            and bool(_SHA256_PATTERN.match(str(artifact.get("sha256")))))


def _has_artifact(manifest, *kinds):
    return any(artifact["kind"] in kinds for artifact in manifest["artifacts"])


def _encryption_ok(encryption):
    return encryption is None or (
        isinstance(encryption, dict) and isinstance(encryption.get("recipients"), list)
        and all(isinstance(recipient, str) for recipient in encryption["recipients"])
        and isinstance(encryption.get("passphrase", False), bool))


# What each kind's logic reads from its manifests, beyond what every manifest has.
_KIND_CHECKS = {
    "postgres": lambda m: isinstance(m.get("statistics"), dict)
    and m["source"].get("scope") in ("database", "cluster", "globals") and _has_artifact(m, "database", "globals"),
    "redis": lambda m: isinstance(m.get("statistics"), dict) and _is_int(m["statistics"].get("rdb_version"))
    and _is_int(m["statistics"].get("keys")) and _has_artifact(m, "rdb"),
    "files": lambda m: isinstance(m.get("statistics"), dict) and _is_int(m["statistics"].get("files"))
    and isinstance(m["source"].get("paths"), list) and all(isinstance(p, str) for p in m["source"]["paths"])
    and _has_artifact(m, "files") and _has_artifact(m, "index"),
    "pgbase": lambda m: isinstance(m.get("statistics"), dict) and _is_int(m["statistics"].get("timeline"))
    and all(isinstance(m["statistics"].get(name), str) for name in ("start_lsn", "end_lsn", "start_wal"))
    and _is_int(m["source"].get("segment_size")) and isinstance(m["source"].get("system_identifier"), str)
    and _has_artifact(m, "base"),
}


def _manifest_problem(manifest, backup_id, kind):
    if manifest.get("id") != backup_id or not is_backup_id(backup_id):
        return "its id %r does not match its folder %s" % (manifest.get("id"), backup_id)
    if not isinstance(manifest.get("artifacts"), list) or not manifest["artifacts"]:
        return "it lists no artifacts"
    bad = [artifact for artifact in manifest["artifacts"] if not _artifact_ok(artifact)]
    if bad:
        return "artifact entry %r is malformed (name, kind, size and sha256 are required)" % (bad[0],)
    if not [artifact for artifact in manifest["artifacts"] if artifact["kind"] != "key"]:
        return "it lists only a key, no data"
    compression = manifest.get("compression")
    if not isinstance(compression, dict) or compression.get("algorithm") not in COMPRESSIONS:
        return "its compression %r is not one of %s" % (compression, ", ".join(COMPRESSIONS))
    if not _encryption_ok(manifest.get("encryption")):
        return "its encryption entry is malformed (recipients, a list of strings, is required)"
    if not isinstance(manifest.get("source"), dict) or not _KIND_CHECKS.get(kind, lambda m: True)(manifest):
        return "the source or statistics a %s backup records are missing or malformed" % kind
    return None


def check_manifest(manifest, backup_id, location, kind=None):
    """A manifest read from a repository is data from elsewhere: prove its shape before anything relies on it."""
    problem = _manifest_problem(manifest, backup_id, kind)
    if problem:
        raise IntegrityError("the manifest of backup %s is not one keel.ops wrote: %s; the backup cannot be trusted"
                             % (location, problem))
