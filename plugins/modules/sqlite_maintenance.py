#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: sqlite_maintenance
short_description: integrity_check, VACUUM, ANALYZE and PRAGMA optimize of SQLite files, with the space reclaimed
version_added: 0.1.0
description:
  - Runs C(PRAGMA integrity_check) on each file of O(paths), then C(VACUUM), C(ANALYZE) and C(PRAGMA optimize), and
    reports the bytes the file (with its C(-wal)) gave back.
  - A file another process writes, or whose WAL a reader pins, is reported in RV(busy) after O(busy_timeout)
    seconds, never waited on forever and never touched.
  - A file that fails C(integrity_check) is reported in RV(damaged) and left alone - VACUUM would copy the damage
    into a fresh file and hide it. The task fails on one unless O(fail_on_damaged) is false.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
attributes:
  check_mode:
    support: full
    details: Runs integrity_check and reports the free pages VACUUM would reclaim; writes nothing.
  diff_mode:
    support: none
options:
  paths:
    description: SQLite database files.
    type: list
    elements: path
    required: true
  steps:
    description: What to run, in this order.
    type: list
    elements: str
    choices: [integrity_check, vacuum, analyze, optimize]
    default: [integrity_check, vacuum, analyze, optimize]
  busy_timeout:
    description: Seconds to wait for another connection to let go before the file is reported busy.
    type: float
    default: 5
  fail_on_damaged:
    description: Fail the task when a file fails integrity_check.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Weekly upkeep of the app's SQLite state
  keel.ops.sqlite_maintenance:
    paths:
      - /srv/shop/state/sessions.db
      - /srv/shop/state/jobs.db
    busy_timeout: 10
"""

RETURN = r"""
files:
  description:
    - Per file - C(path), C(integrity) (V(ok) or what SQLite found), C(done) (steps run), C(busy) (why it was not
      touched), C(size_before), C(size_after), C(reclaimable) (free pages in bytes) and C(reclaimed).
  returned: always
  type: list
  elements: dict
busy:
  description: Files not maintained because another connection held them.
  returned: always
  type: list
  elements: str
damaged:
  description: Files that failed integrity_check, left as they were.
  returned: always
  type: list
  elements: str
reclaimed:
  description: Bytes given back in all.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, module_failures
from ansible_collections.keel.ops.plugins.module_utils._maintenance.sqlite import STEPS, maintain

ARGUMENT_SPEC = dict(
    specs.AUDIT,
    paths=dict(type="list", elements="path", required=True),
    steps=dict(type="list", elements="str", choices=list(STEPS), default=list(STEPS)),
    busy_timeout=dict(type="float", default=5),
    fail_on_damaged=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "sqlite_maintenance"):
        missing = [path for path in params["paths"] if not os.path.isfile(path)]
        if missing:
            raise ConfigError("%s: no such file on this host" % ", ".join(missing))
        files = [maintain(path, params["steps"], params["busy_timeout"], module.check_mode) for path in params["paths"]]
        result = dict(changed=any(item["changed"] for item in files), files=files,
                      busy=[item["path"] for item in files if item["busy"]],
                      damaged=[item["path"] for item in files if item["integrity"] not in (None, "ok")],
                      reclaimed=sum(item["reclaimed"] for item in files))
        if result["damaged"] and params["fail_on_damaged"]:
            module.fail_json(msg="sqlite_maintenance: %s failed integrity_check and were left as they were; restore "
                             "them from a backup (keel.ops.file_backup state=restored)" % ", ".join(result["damaged"]),
                             **result)
        module.exit_json(**result)


if __name__ == "__main__":
    main()
