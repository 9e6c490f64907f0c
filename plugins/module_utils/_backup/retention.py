# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grandfather-father-son retention: which backups to keep and why (plan_retention, pure), and applying it to a
repository (apply_retention), never to the backup this run committed nor to one a restore holds."""

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


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


def policy_of(config):
    return dict((option, getattr(config, option, None)) for option in RETENTION_OPTIONS)


def apply_retention(repo, config, reporter, exclude=()):
    """Grandfather-father-son retention. `exclude` (the backup this run committed) is never deleted, whatever the
    ids of other writers say about time; backups a restore holds are kept until it is done."""
    policy = policy_of(config)
    if not retention_configured(policy):
        return {"applied": False, "kept": [], "deleted": []}
    backups = repo.list()
    keep, delete = plan_retention([(b.id, b.time) for b in backups], policy)
    for backup_id in exclude:
        if backup_id in delete:
            delete.remove(backup_id)
            keep[backup_id] = ["taken by this run"]
    held = repo.live_holds()
    for backup_id in [b for b in delete if b in held]:
        delete.remove(backup_id)
        keep[backup_id] = ["held by %s" % ", ".join(held[backup_id])]
    if not reporter.check_mode:
        deleted = repo.delete(delete)
        for backup_id in set(delete) - set(deleted):
            keep[backup_id] = ["held by a restore that started meanwhile"]
        delete = deleted
    return {"applied": True, "kept": sorted(keep, reverse=True), "deleted": delete, "reasons": keep}
