# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the disaster_recovery role: the parts a mode restores, each part's outcome, and the report. The logic
is in module_utils/_dr/recovery.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._dr import recovery
from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError


def recovery_parts(mode, postgres_databases=None, redis=None, file_sets=None, backup_id="latest", before="",
                   postgres_cluster=None):
    try:
        return recovery.plan_parts(mode, postgres_databases, redis, file_sets, backup_id, before, postgres_cluster)
    except KeelError as error:
        raise AnsibleFilterError("recovery_parts: %s" % error)


def recovery_outcome(result, part, dry=False):
    if not isinstance(part, dict) or "phase" not in part:
        raise AnsibleFilterError("recovery_outcome expects a part made by keel.ops.recovery_parts, got %r" % (part,))
    return recovery.outcome(part, result if isinstance(result, dict) else {}, dry)


def recovery_report(prechecks, host, mode, parts=None, times=None, services=None, health=None,
                    confirm_variable="disaster_recovery_confirm"):
    if not isinstance(prechecks, list) or not isinstance(times, dict) or not {"started", "finished"} <= set(times):
        raise AnsibleFilterError("recovery_report expects the list of pre-check outcomes, and times with started "
                                 "and finished (epoch seconds)")
    report = recovery.report(host, mode, prechecks, parts or [], times, services, health)
    return dict(report, markdown=recovery.markdown(report), confirmation=recovery.CONFIRMATION,
                refusal=recovery.refusal(host, prechecks, confirm_variable))


class FilterModule(object):
    def filters(self):
        return {"recovery_parts": recovery_parts, "recovery_outcome": recovery_outcome,
                "recovery_report": recovery_report}
