# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the dr_drill role: one source's findings, and the drill report with its history, Markdown and
Prometheus metrics. The logic is in module_utils/_dr/drill.py."""

import time

from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._dr import drill


def dr_drill_source(result, kind, source, listing=None):
    if kind not in drill.CHECKS:
        raise AnsibleFilterError("dr_drill_source: kind must be one of %s, got %r" % (", ".join(drill.CHECKS), kind))
    result = result if isinstance(result, dict) else {}
    name = result.get("source") or source
    listed = next((item for item in listing or [] if isinstance(item, dict) and item.get("kind") == kind
                   and item.get("source") == name), {})
    return drill.source_of(kind, name, result, listed, time.time())


def dr_drill_report(sources, drill_id, host, objectives, times, history=None):
    if not isinstance(sources, list) or not isinstance(objectives, dict):
        raise AnsibleFilterError("dr_drill_report expects the list of sources made by keel.ops.dr_drill_source and "
                                 "objectives with rto_seconds and rpo_seconds")
    missing = [key for key in ("rto_seconds", "rpo_seconds") if key not in objectives]
    if missing:
        raise AnsibleFilterError("dr_drill_report: objectives lack %s" % ", ".join(missing))
    report = drill.drill(drill_id, host, sources, objectives, times)
    return {"drill": report, "history": drill.history_with(history, drill.history_entry(report)),
            "markdown": drill.markdown(report),
            "prometheus": drill.prometheus(report, time.time())}


class FilterModule(object):
    def filters(self):
        return {"dr_drill_source": dr_drill_source, "dr_drill_report": dr_drill_report}
