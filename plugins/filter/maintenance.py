# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of maintenance runs: whether now is inside a maintenance window, and the run's report. The logic is in
module_utils/_maintenance/window.py and report.py."""

import datetime

from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError
from ansible_collections.keel.ops.plugins.module_utils._maintenance import report, window


def maintenance_window(windows, now=None):
    if now is None:
        moment = datetime.datetime.now(datetime.timezone.utc)
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(now).replace("Z", "+00:00"))
        except ValueError:
            raise AnsibleFilterError("maintenance_window: now must be an ISO 8601 time, got %r" % (now,))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
    try:
        return window.status(windows, moment)
    except KeelError as error:
        raise AnsibleFilterError("maintenance_window: %s" % error)


def maintenance_report(steps, results, run, previous=None):
    """The run's report, its Markdown and a one-line subject for the notification."""
    built = report.build(run, list(steps or []), dict(results or {}), previous or None)
    subject = "keel.ops %s maintenance of %s: %s, %d findings" % (run.get("kind", ""), run.get("host"),
                                                                  built["result"], len(built["findings"]))
    return {"report": built, "markdown": report.markdown(built), "subject": subject}


class FilterModule(object):
    def filters(self):
        return {"maintenance_window": maintenance_window, "maintenance_report": maintenance_report}
