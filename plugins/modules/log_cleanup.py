#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: log_cleanup
short_description: Delete log files older than N days under given directories, with a dry-run listing
version_added: 0.1.0
description:
  - Removes regular files matching O(patterns) and last modified more than O(older_than_days) days ago under each
    of O(paths), and reports how many and how many bytes, per directory.
  - The walk never leaves its directories - symlinks are neither followed nor removed, and directories are opened
    relative to their parent, so one swapped for a symlink mid-walk leads nowhere else. Directories themselves are
    kept.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
attributes:
  check_mode:
    support: full
    details: Lists the files that would be removed and their bytes; removes nothing.
  diff_mode:
    support: none
options:
  paths:
    description: Absolute paths of the directories that hold the logs; never V(/).
    type: list
    elements: path
    required: true
  older_than_days:
    description: Files last modified more than this many days ago go.
    type: float
    default: 7
  patterns:
    description: Shell patterns a file's name must match.
    type: list
    elements: str
    default: ["*.log", "*.log.*"]
  exclude:
    description: Shell patterns of names that stay even when they match O(patterns).
    type: list
    elements: str
    default: []
  recurse:
    description: Walk into subdirectories.
    type: bool
    default: true
  list_limit:
    description: At most this many files are listed in RV(files); the counts are always complete.
    type: int
    default: 100
"""

EXAMPLES = r"""
- name: What would go?
  keel.ops.log_cleanup:
    paths: [/var/log/shop, /srv/shop/logs]
    older_than_days: 7
  check_mode: true
  register: would

- name: Remove rotated logs older than two weeks, keeping the audit trail
  keel.ops.log_cleanup:
    paths: [/var/log/shop]
    older_than_days: 14
    exclude: ["audit*"]
"""

RETURN = r"""
files:
  description: Files removed (in check mode, to remove), at most O(list_limit) - C(path), C(bytes), C(age_days).
  returned: always
  type: list
  elements: dict
count:
  description: How many files were (would be) removed.
  returned: always
  type: int
bytes:
  description: Their bytes.
  returned: always
  type: int
roots:
  description: Per directory of O(paths) (resolved) - C(path), C(count), C(bytes).
  returned: always
  type: list
  elements: dict
errors:
  description: Files that could not be removed - C(path), C(reason).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._maintenance.files import DEFAULT_PATTERNS, cleanup

ARGUMENT_SPEC = dict(
    specs.AUDIT,
    paths=dict(type="list", elements="path", required=True),
    older_than_days=dict(type="float", default=7),
    patterns=dict(type="list", elements="str", default=list(DEFAULT_PATTERNS)),
    exclude=dict(type="list", elements="str", default=[]),
    recurse=dict(type="bool", default=True),
    list_limit=dict(type="int", default=100),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "log_cleanup"):
        result = cleanup(params["paths"], params["patterns"], params["exclude"], params["older_than_days"],
                         params["recurse"], module.check_mode, max(params["list_limit"], 0))
        module.exit_json(**result)


if __name__ == "__main__":
    main()
