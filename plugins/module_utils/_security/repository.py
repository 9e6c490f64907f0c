# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security findings of the collection's own backup repositories: unreachable, empty, the newest backup of a source
unencrypted or not verified for N days, and every copy on one machine (a local repository with no offsite one)."""

import datetime

from ansible_collections.keel.ops.plugins.module_utils._backup.lifecycle import open_repository, open_repository_storage
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import BACKUP_KINDS, parse_timestamp
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import StorageError
from ansible_collections.keel.ops.plugins.module_utils._redact import mask_url
from ansible_collections.keel.ops.plugins.module_utils._security.findings import finding


def source_findings(summary, where, now, verify_days):
    found = []
    if not summary["encrypted"]:
        found.append(finding("backups.unencrypted", "high", where, "the newest backup %s is not encrypted"
                             % summary["backup_id"], "set encryption_recipients (age) on the backup tasks"))
    verified = parse_timestamp(summary["last_verified"], "last_verified") if summary.get("last_verified") else None
    if verified is None or (now - verified).total_seconds() > verify_days * 86400:
        found.append(finding("backups.unverified", "medium", where,
                             "the newest backup %s has not been verified in %d days" % (summary["backup_id"], verify_days)
                             if verified is None else "the newest backup was last verified %s" % summary["last_verified"],
                             "run the backup with verify (or maintenance's backups step, or the DR drill) regularly"))
    return found


def audit(params, offsite=False, verify_days=7, now=None, warn=None):
    """Findings of the repository `params` names (its repository and s3_* options)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    where = mask_url(params["repository"])
    try:
        storage = open_repository_storage(params)
        sources = [(kind, name) for kind in BACKUP_KINDS for name in storage.list_children(kind)]
        newest = []
        for kind, name in sources:
            backups = open_repository(params, kind, name, None, storage).list()
            if backups:
                newest.append((kind, name, backups[0].summary()))
    except StorageError as error:
        return [finding("backups.unreachable", "high", where, "the repository cannot be read: %s" % error,
                        "check its URL, credentials and network path")], 0
    found = []
    if not newest:
        found.append(finding("backups.empty", "high", where, "the repository holds no backup",
                             "schedule the backup playbook (keel.ops.backup)"))
    for kind, name, summary in newest:
        found += source_findings(summary, "%s %s/%s" % (where, kind, name), now, verify_days)
    if not params["repository"].startswith("s3://") and not offsite:
        found.append(finding("backups.local_only", "medium", where,
                             "every copy is on this machine's file system, with no offsite repository",
                             "copy the backups to a second location (backup_offsite_repository, keel.ops.backup_copy)"))
    return found, len(newest)
