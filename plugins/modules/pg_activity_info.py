#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_activity_info
short_description: What a PostgreSQL server is doing - long-running, idle-in-transaction and blocked sessions
version_added: 0.1.0
description:
  - Reads C(pg_stat_activity) once - connections used against C(max_connections), the sessions whose query runs
    longer than O(min_seconds), those idle in a transaction for as long, and those waiting for a lock and on whom.
    Changes nothing.
  - Incident first response keeps it in the incident folder.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.postgres
requirements:
  - psycopg2
options:
  min_seconds:
    description: A session counts as long-running, or idle in a transaction too long, from this many seconds.
    type: float
    default: 60
  query_length:
    description: Query texts are cut to this many characters.
    type: int
    default: 200
  include_queries:
    description: Return query texts at all; they may hold literal values (a password in C(ALTER ROLE), say).
    type: bool
    default: true
notes:
  - Without superuser or C(pg_read_all_stats), PostgreSQL hides other roles' query texts and states.
"""

EXAMPLES = r"""
- name: What is the database doing?
  keel.ops.pg_activity_info:
    login_host: db1.example.internal
    login_user: monitor
    login_password: "{{ vault_pg_monitor_password }}"
    min_seconds: 30
  register: activity
"""

RETURN = r"""
connections:
  description: C(used), C(max) and C(percent) of client connections.
  returned: always
  type: dict
active:
  description: Sessions running a query now.
  returned: always
  type: int
long_running:
  description:
    - Active sessions whose query has run at least O(min_seconds), oldest first - C(pid), C(user), C(database),
      C(application), C(client), C(state), C(wait_event_type), C(wait_event), C(query_seconds),
      C(transaction_seconds), C(blocked_by) (pids) and C(query).
  returned: always
  type: list
  elements: dict
idle_in_transaction:
  description: Sessions idle in a transaction for at least O(min_seconds), with the same fields.
  returned: always
  type: list
  elements: dict
blocked:
  description: Sessions waiting for a lock, with the pids that hold it in C(blocked_by).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._postgres.activity import activity
from ansible_collections.keel.ops.plugins.module_utils._postgres.conninfo import Connection

ARGUMENT_SPEC = dict(
    specs.POSTGRES,
    min_seconds=dict(type="float", default=60),
    query_length=dict(type="int", default=200),
    include_queries=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "pg_activity_info"):
        conn = Connection.from_params(params).connect()
        try:
            found = activity(conn, params["min_seconds"], params["query_length"], params["include_queries"])
        finally:
            conn.close()
        module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
