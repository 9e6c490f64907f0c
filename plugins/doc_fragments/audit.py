# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # The compliance audit trail of every module that changes something.

    DOCUMENTATION = r"""
options:
  audit_log:
    description:
      - Where the task leaves its audit entry when it changed something or failed (never in check mode) - who
        (O(audit_actor)), what (the module and its state), where (the host and the targets it names), when and
        the result. An entry holds no secret - only option and result names known to hold none, URLs without
        their credentials.
      - A file path gets one JSON line appended per entry. A repository (an existing directory, C(file:///path) or
        C(s3://bucket/prefix), with the task's S3 options) gets one object per entry under C(audit/<day>/), so
        any number of hosts can write at once; keel.ops.security_audit summarises it.
      - Backup modules write into their own C(repository) when this is unset; others write nothing then. Set it
        for a whole play with C(module_defaults) on C(group/keel.ops.audit), or the C(KEEL_OPS_AUDIT_LOG)
        environment variable.
    type: str
  audit_actor:
    description:
      - Who to name as having run the task - for example an AWX job's C(awx_user_name). Unset names the system
        user the module runs as. The C(KEEL_OPS_AUDIT_ACTOR) environment variable sets it too.
    type: str
"""
