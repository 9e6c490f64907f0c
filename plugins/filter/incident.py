# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident_response role's timeline report; the logic is in module_utils/_dr/incident.py."""

from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._dr import incident


def incident_report(events, incident_id, host, before=None, after=None, folder=""):
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        raise AnsibleFilterError("incident_report expects the list of timeline events (dicts with time, step, "
                                 "result, detail)")
    found = incident.report(incident_id, host, events, before, after, folder)
    return dict(found, markdown=incident.markdown(found))


class FilterModule(object):
    def filters(self):
        return {"incident_report": incident_report}
