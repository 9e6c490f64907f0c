# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit trail summarised for the security audit: the entries of the last N days from a file of JSON lines or
a repository's audit/ objects, counted by module, result and actor, with the failed changes listed."""

import datetime
import json
import os

from ansible_collections.keel.ops.plugins.module_utils import _audit
from ansible_collections.keel.ops.plugins.module_utils._redact import mask_url
from ansible_collections.keel.ops.plugins.module_utils._security.findings import finding

LISTED = 20


def _parse(line):
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) and isinstance(item.get("time"), str) else None


def read_entries(where, params, since):
    """Entries at or after `since` (an aware datetime), oldest first, and how many lines were not entries."""
    cutoff = since.strftime("%Y-%m-%dT%H:%M:%S")
    lines = []
    if _audit.is_repository(where):
        storage = _audit.open_repository(where, params)
        first_day = since.strftime("%Y-%m-%d")
        for day in sorted(storage.list_children(_audit.PREFIX)):
            if day >= first_day:
                lines += [storage.get(key).decode("utf-8", "replace") for key in storage.list("%s/%s" % (_audit.PREFIX, day))]
    elif os.path.exists(where):
        with open(where, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    items = [_parse(line) for line in lines if line.strip()]
    entries = sorted((item for item in items if item and item["time"] >= cutoff), key=lambda item: item["time"])
    return entries, len([item for item in items if item is None])


def _count(entries, key):
    found = {}
    for item in entries:
        found[str(item.get(key))] = found.get(str(item.get(key)), 0) + 1
    return found


def summarise(entries, unreadable, days, where):
    failed = [item for item in entries if item.get("result") == "failed"]
    summary = {"days": days, "entries": len(entries), "by_module": _count(entries, "module"),
               "by_result": _count(entries, "result"), "by_actor": _count(entries, "actor"),
               "failed": failed[-LISTED:], "unreadable_lines": unreadable}
    found = []
    if not entries:
        found.append(finding("audit.empty", "low", where, "no audit entry in the last %d days" % days,
                             "set audit_log (or group/keel.ops.audit module_defaults) on the plays that change things"))
    if failed:
        found.append(finding("audit.failed_changes", "medium", where, "%d changing tasks failed in the last %d days"
                             % (len(failed), days), "read the failed entries in the audit summary and their job logs",
                             detail={"modules": sorted(set(item.get("module") for item in failed))}))
    if unreadable:
        found.append(finding("audit.unreadable", "medium", where, "%d lines of the audit trail are not entries" % unreadable,
                             "find out what wrote them: only keel.ops modules append to the trail"))
    return summary, found


def audit(where, params, days=7, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    entries, unreadable = read_entries(where, params, now - datetime.timedelta(days=days))
    return summarise(entries, unreadable, days, mask_url(where))
