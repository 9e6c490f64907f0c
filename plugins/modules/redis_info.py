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
  slowlog_after_id:
    description:
      - Return every slow log entry newer than this id instead of the newest O(slowlog), oldest first - the
        RV(slowlog_last_id) of the last run, so a weekly report misses none and repeats none. After a server
        restart (ids below this one) everything it holds counts as new.
    type: int
  doctor:
    description: Ask C(MEMORY DOCTOR), and C(LATENCY DOCTOR) when the latency monitor is on, for their advice.
    type: bool
    default: false
  bigkeys:
    description:
      - Find the biggest keys per type by a sampled C(SCAN), as C(redis-cli --bigkeys) does, bounded by
        O(bigkeys_max_keys) and O(bigkeys_seconds).
    type: bool
    default: false
  bigkeys_max_keys:
    description: Keys to look at, at most.
    type: int
    default: 100000
  bigkeys_seconds:
    description: Seconds to spend scanning, at most.
    type: float
    default: 5
  bigkeys_top:
    description: Keys kept per type and by memory.
    type: int
    default: 5
  bigkeys_db:
    description: Database number to scan.
    type: int
    default: 0
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
  description:
    - The newest slow log entries (those after O(slowlog_after_id), when given) - C(id), C(time),
      C(microseconds), C(command), C(client).
  returned: always
  type: list
  elements: dict
slowlog_last_id:
  description: The newest slow log id seen, to give as O(slowlog_after_id) next time; null before any entry.
  returned: always
  type: int
slowlog_restarted:
  description: The server's ids started again below O(slowlog_after_id) (it restarted).
  returned: when O(slowlog_after_id) is given
  type: bool
doctor:
  description: C(memory) and C(latency) advice (C(latency) null when the monitor is off), C(latency_monitor), C(fragmentation_ratio).
  returned: when O(doctor) is true
  type: dict
bigkeys:
  description:
    - C(db), C(scanned) (keys), C(complete) (the whole keyspace seen), C(types) (keys per type), C(biggest) (per type,
      the largest by length - C(key), C(type), C(length), C(unit), C(memory)) and C(by_memory) (largest by bytes).
  returned: when O(bigkeys) is true
  type: dict
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
from ansible_collections.keel.ops.plugins.module_utils._maintenance.redis import extra_info
from ansible_collections.keel.ops.plugins.module_utils._redis.connection import Connection, Server
from ansible_collections.keel.ops.plugins.module_utils._redis.info import server_info

ARGUMENT_SPEC = dict(
    specs.REDIS,
    slowlog=dict(type="int", default=10),
    slowlog_arguments=dict(type="bool", default=True),
    slowlog_after_id=dict(type="int"),
    doctor=dict(type="bool", default=False),
    bigkeys=dict(type="bool", default=False),
    # "keys" reads as a secret to the sanity test's heuristic; these are counts and numbers.
    bigkeys_max_keys=dict(type="int", default=100000, no_log=False),
    bigkeys_seconds=dict(type="float", default=5, no_log=False),
    bigkeys_top=dict(type="int", default=5, no_log=False),
    bigkeys_db=dict(type="int", default=0, no_log=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "redis_info"):
        server = Server(Connection.from_params(params))
        try:
            found = server_info(server, max(params["slowlog"], 0), params["slowlog_arguments"])
            found.update(extra_info(server, found, params))
        finally:
            server.close()
        module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
