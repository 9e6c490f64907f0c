#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: backup_security_info
short_description: Security findings of a backup repository, and the summary of its audit trail
version_added: 0.1.0
description:
  - Returns findings of the repository - unreachable, empty, the newest backup of a source unencrypted or not
    verified in O(verify_days) days, and every copy on this machine (a local repository, unless O(offsite) says a
    copy goes elsewhere).
  - Summarises the audit trail of O(audit_trail) (the repository's own C(audit/) by default) over the last
    O(trail_days) days - entries by module, result and actor, and the failed changes - with findings for an empty
    trail and for failed changes. Changes nothing.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.repository
options:
  offsite:
    description: Backups of this repository are copied to another one (keel.ops.backup_copy).
    type: bool
    default: false
  verify_days:
    description: The newest backup of each source must have been verified within this many days.
    type: int
    default: 7
  audit_trail:
    description:
      - The audit trail to summarise - a file of JSON lines or a repository; this repository by default. An empty
        string summarises none.
    type: str
  trail_days:
    description: Days of the audit trail to summarise.
    type: int
    default: 7
"""

EXAMPLES = r"""
- name: Audit the backup repository
  keel.ops.backup_security_info:
    repository: s3://shop-backups/prod
    offsite: true
  register: backup_audit
"""

RETURN = r"""
findings:
  description: Each finding - C(check), C(severity), C(target), C(title), C(fix) and C(detail).
  returned: always
  type: list
  elements: dict
sources:
  description: Sources with at least one backup.
  returned: always
  type: int
audit_trail:
  description:
    - C(days), C(entries), C(by_module), C(by_result), C(by_actor), C(failed) (the last failed entries) and
      C(unreadable_lines); null when no trail is summarised.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._security import repository, trail

ARGUMENT_SPEC = dict(
    specs.REPOSITORY,
    offsite=dict(type="bool", default=False),
    verify_days=dict(type="int", default=7),
    audit_trail=dict(type="str"),
    trail_days=dict(type="int", default=7),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "backup_security_info"):
        findings, sources = repository.audit(params, params["offsite"], params["verify_days"])
        where = params["repository"] if params["audit_trail"] is None else params["audit_trail"]
        summary = None
        if where:
            summary, trail_findings = trail.audit(where, params, params["trail_days"])
            findings += trail_findings
        module.exit_json(changed=False, findings=findings, sources=sources, audit_trail=summary)


if __name__ == "__main__":
    main()
