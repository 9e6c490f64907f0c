#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: dr_drill_history
short_description: A host's DR drill history, kept in the backup repository
version_added: 0.1.0
description:
  - Reads the history of the DR drills of O(host) from C(drills/<host>.json) in the repository and, given
    O(entry), appends it (replacing an earlier entry with the same id) and keeps the last O(keep).
  - The history lives beside the backups, so a drill run from a throw-away AWX container still charts the drills
    before it. One object per host, so hosts drilling at once never overwrite each other. The object is written
    whole and atomically; entries that are not drills are dropped, and an object that is not a JSON list is
    reported and started afresh.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.repository
attributes:
  check_mode:
    support: full
    details: Returns the history as it would be, writing nothing.
  diff_mode:
    support: none
options:
  host:
    description: The drilled host; characters other than letters, digits, C(_), C(.) and C(-) become C(_).
    type: str
    required: true
  entry:
    description: The drill to append - C(id), C(started), C(result), C(rto_seconds), C(rpo_seconds) (the last item of
      the C(history) of P(keel.ops.dr_drill_report#filter)); without it the history is only read.
    type: dict
  keep:
    description: How many drills the history keeps.
    type: int
    default: 50
notes:
  - The repository's O(source) option is not used.
"""

EXAMPLES = r"""
- name: Read the earlier drills
  keel.ops.dr_drill_history:
    repository: s3://acme-backups/prod
    host: "{{ inventory_hostname }}"
  register: earlier

- name: Add this drill
  keel.ops.dr_drill_history:
    repository: s3://acme-backups/prod
    host: "{{ inventory_hostname }}"
    entry: "{{ report.history[-1] }}"
"""

RETURN = r"""
history:
  description: The drills, oldest first.
  returned: always
  type: list
  elements: dict
location:
  description: Where the history is kept, without credentials.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup.lifecycle import open_repository_storage
from ansible_collections.keel.ops.plugins.module_utils._dr.history import history_key, record
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, module_failures

ARGUMENT_SPEC = dict(
    specs.REPOSITORY,
    **specs.AUDIT,
    host=dict(type="str", required=True),
    entry=dict(type="dict"),
    keep=dict(type="int", default=50),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "dr_drill_history"):
        if params["keep"] < 1:
            raise ConfigError("keep must be at least 1, got %d" % params["keep"])
        storage = open_repository_storage(params)
        history, changed = record(storage, params["host"], params["entry"], params["keep"], module.check_mode,
                                  module.warn)
        module.exit_json(changed=changed, history=history, location=storage.describe(history_key(params["host"])))


if __name__ == "__main__":
    main()
