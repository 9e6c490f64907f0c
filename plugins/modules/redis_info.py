#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: redis_info
short_description: What a Redis server says about itself - memory, clients, hit rate, persistence, slow log
version_added: 0.1.0
description:
  - Reads C(INFO) and the newest O(slowlog) entries of C(SLOWLOG GET) and returns the figures that matter in an
    incident - version, role, uptime, clients, memory and fragmentation, hit rate, evictions, the last save and
    its status, AOF, keys per database - beside the whole of C(INFO). Changes nothing.
  - Incident first response keeps it in the incident folder.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.redis
options:
  slowlog:
    description: How many of the newest slow log entries to return; V(0) for none.
    type: int
    default: 10
  slowlog_arguments:
    description: Return each slow command's arguments too (cut to 200 characters); they are the command's data.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: What does the cache say?
  keel.ops.redis_info:
    login_host: cache1.example.internal
    login_password: "{{ vault_redis_password }}"
  register: cache
"""

RETURN = r"""
version:
  description: The server's version.
  returned: always
  type: str
role:
  description: V(master) or V(slave).
  returned: always
  type: str
used_memory:
  description: Bytes of memory in use (also C(used_memory_human), C(maxmemory), C(mem_fragmentation_ratio)).
  returned: always
  type: int
hit_rate:
  description: Percent of key lookups that found their key since the start, or null before any.
  returned: always
  type: float
keyspace:
  description: Per database number, C(keys) and C(expires).
  returned: always
  type: dict
slowlog:
  description: The newest slow log entries - C(id), C(time), C(microseconds), C(command), C(client).
  returned: always
  type: list
  elements: dict
info:
  description:
    - Every field of C(INFO) as the server gives it.
    - The top level also holds C(uptime_seconds), C(connected_clients), C(blocked_clients), C(ops_per_second),
      C(evicted_keys), C(rdb_last_bgsave_status), C(rdb_last_save_time) and C(aof_enabled).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._redis.connection import Connection, Server
from ansible_collections.keel.ops.plugins.module_utils._redis.info import server_info

ARGUMENT_SPEC = dict(
    specs.REDIS,
    slowlog=dict(type="int", default=10),
    slowlog_arguments=dict(type="bool", default=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "redis_info"):
        server = Server(Connection.from_params(params))
        try:
            found = server_info(server, max(params["slowlog"], 0), params["slowlog_arguments"])
        finally:
            server.close()
        module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
