# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the info modules list: the backups of one kind (one source or every source), filtered by labels, time
and verification, newest first, and whether the newest is older than max_age; and the health of a backup
location (reachable, newest backup and its age per source)."""

import calendar

from ansible_collections.keel.ops.plugins.module_utils._backup.lifecycle import open_repository, open_repository_storage
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import (
    BACKUP_KINDS,
    parse_timestamp,
    utcnow,
    validate_source,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import StorageError
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


def _listed(backup, params, since):
    """The filters every info module shares: labels, since, verified."""
    labels = backup.manifest.get("labels") or {}
    return (all(labels.get(k) == v for k, v in (params.get("labels") or {}).items())
            and (since is None or backup.time >= since)
            and params.get("verified") in (None, bool(backup.verified)))


def _usable_source(name, storage, kind, reporter):
    """A folder in the repository is data: one that is not a valid source name is skipped, with a warning."""
    try:
        validate_source(name)
    except ConfigError:
        reporter.warn("skipped %r in %s: not a source folder keel.ops writes" % (name, storage.describe(kind)))
        return False
    return True


def describe_repository(params, kind, reporter, noun="backup", wanted=None):
    """The info modules' listing: backups of one kind (one or every source), filtered, newest first, limited,
    plus the age of the newest in hours and whether it is older than max_age (then a warning)."""
    if (params.get("limit") or 0) < 0:
        raise ConfigError("limit: %d is negative; give the number of %ss to list (0 lists none but still reports "
                          "the newest one's age), or leave it out to list all" % (params["limit"], noun))
    storage = open_repository_storage(params)
    since = parse_timestamp(params["since"], "since") if params.get("since") else None
    names = [params["source"]] if params.get("source") else [name for name in storage.list_children(kind)
                                                             if _usable_source(name, storage, kind, reporter)]
    found = [backup for name in names for backup in open_repository(params, kind, name, reporter, storage).list()
             if _listed(backup, params, since) and (wanted is None or wanted(backup))]
    found.sort(key=lambda backup: backup.time, reverse=True)
    # The age is that of the newest matching backup whatever the limit: limit 0 checks freshness, listing none.
    age = round((utcnow() - found[0].time).total_seconds() / 3600.0, 2) if found else None
    max_age = params.get("max_age")
    stale = max_age is not None and (age is None or age > max_age)
    if stale:
        reporter.warn("no %s in %s matches" % (noun, storage.url) if age is None else
                      "the newest %s (%s) is %.1f hours old, more than max_age %g" % (noun, found[0].id, age, max_age))
    return found[:params["limit"]] if params.get("limit") is not None else found, age, stale


def location_health(params, reporter):
    """backup_location_info: whether a repository answers, and per kind and source its newest backup and age.
    An unreachable repository is a finding, not a failure: reachable is false and error says why."""
    max_age = params.get("max_age")
    try:
        storage = open_repository_storage(params)
        found = []
        for kind in params.get("kinds") or BACKUP_KINDS:
            for name in storage.list_children(kind):
                if _usable_source(name, storage, kind, reporter):
                    found.append(_source_health(open_repository(params, kind, name, reporter, storage), kind, max_age))
    except StorageError as error:
        reporter.warn("backup location %s is not reachable: %s" % (params["repository"], error))
        return dict(reachable=False, error=str(error), sources=[], count=0, newest_age_hours=None, stale=True)
    ages = [source["newest_age_hours"] for source in found if source["newest_age_hours"] is not None]
    stale = [source for source in found if source["stale"]]
    for source in stale:
        reporter.warn("%s/%s: the newest backup is %s hours old, more than max_age %g"
                      % (source["kind"], source["source"], source["newest_age_hours"], max_age))
    return dict(reachable=True, error=None, location=storage.describe(""), sources=found,
                count=sum(source["count"] for source in found), newest_age_hours=min(ages) if ages else None,
                stale=bool(stale) or (max_age is not None and not ages))


def _source_health(repo, kind, max_age):
    backups = repo.list()
    newest = backups[0] if backups else None
    age = round((utcnow() - newest.time).total_seconds() / 3600.0, 2) if newest else None
    return {"kind": kind, "source": repo.source, "count": len(backups), "size": sum(b.size for b in backups),
            "newest": newest.id if newest else None, "newest_time": newest.summary()["time"] if newest else None,
            "newest_age_hours": age, "newest_epoch": int(calendar.timegm(newest.time.utctimetuple())) if newest else None,
            "last_verified": newest.summary().get("last_verified") if newest else None,
            "stale": max_age is not None and (age is None or age > max_age)}
