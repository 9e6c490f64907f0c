# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from ansible.errors import AnsibleFilterError
from ansible_collections.keel.ops.plugins.module_utils._dr.dashboard import render_dashboard


def _require_list(value, name, what):
    """None is an empty list (a first drill has no history); anything else must be a list of dicts."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise AnsibleFilterError("dr_dashboard: %s must be a list of dicts (%s), got %s"
                                 % (name, what, type(value).__name__))
    return value


def dr_dashboard(drill, history=None, locations=None, title="Disaster Recovery Dashboard"):
    if not isinstance(drill, dict):
        raise AnsibleFilterError("dr_dashboard expects the drill's report (a dict), got %s" % type(drill).__name__)
    return render_dashboard(drill, _require_list(history, "history", "the last drills, oldest first"),
                            _require_list(locations, "locations", "backup locations and their health"),
                            title=str(title))


class FilterModule(object):
    def filters(self):
        return {"dr_dashboard": dr_dashboard}
