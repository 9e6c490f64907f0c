# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the security audit: the report of every check's findings. The logic is in
module_utils/_security/report.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._security import report


def security_report(findings, fail_on="high", host=None, time=None, trail=None, checked=None):
    try:
        built = report.build(findings or [], fail_on, host, time, trail, checked)
    except ValueError as error:
        raise AnsibleFilterError("security_report: %s" % error)
    return {"report": built, "markdown": report.markdown(built),
            "subject": "keel.ops security audit of %s: %s, %d findings at %s or above"
                       % (host, built["result"], built["failing"], fail_on)}


class FilterModule(object):
    def filters(self):
        return {"security_report": security_report}
