#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: haproxy_maintenance
short_description: Put an HAProxy backend's servers in maintenance for a step, and back in service afterwards
version_added: 0.1.0
description:
  - O(state=maintenance) drains each server (no new sessions), waits up to O(drain_timeout) for its sessions to
    end, and puts it in maintenance, through HAProxy's runtime API. RV(changed_servers) names the servers it took
    out.
  - O(state=ready) puts the servers back in service and waits until HAProxy's health check marks each one up.
    Give it the RV(changed_servers) of the matching O(state=maintenance) call, so a server someone had taken out
    before stays out.
  - The maintenance role wraps the steps that need a quiet app in the two, and leaves maintenance whether or not
    a step failed.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
attributes:
  check_mode:
    support: full
    details: Reports which servers would change; sends no command that changes a state.
  diff_mode:
    support: none
options:
  socket:
    description: HAProxy's runtime API - a unix socket path, or host:port; it needs C(level admin).
    type: str
    required: true
  backend:
    description: The backend whose servers are the app.
    type: str
    required: true
  servers:
    description: Server names in O(backend); all of its servers by default.
    type: list
    elements: str
    default: []
  state:
    description: Where the servers go.
    type: str
    choices: [maintenance, ready]
    required: true
  drain_timeout:
    description: Seconds to wait for a server's sessions to end before it goes into maintenance.
    type: float
    default: 30
  shutdown_sessions:
    description: Cut the sessions still open at O(drain_timeout).
    type: bool
    default: false
  serving_timeout:
    description: Seconds each server has to be marked up again after O(state=ready).
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Quiet the app
  keel.ops.haproxy_maintenance:
    socket: /run/haproxy/admin.sock
    backend: shop
    state: maintenance
  register: quiet

- name: Back in service
  keel.ops.haproxy_maintenance:
    socket: /run/haproxy/admin.sock
    backend: shop
    servers: "{{ quiet.changed_servers }}"
    state: ready
  when: quiet.changed_servers | length > 0
"""

RETURN = r"""
servers:
  description: Per server - C(name), C(before) and C(after) (V(ready), V(drain) or V(maint)), and C(sessions_left) at maintenance.
  returned: always
  type: list
  elements: dict
changed_servers:
  description: The servers whose state this call changed (would change).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._maintenance.haproxy import enter, leave
from ansible_collections.keel.ops.plugins.module_utils._rollout.haproxy import HAProxyLoadBalancer, RuntimeAPI

# How failures name this module's options.
OPTION_NAMES = {"socket": "socket", "backend": "backend", "servers": "servers must name servers of that backend"}

ARGUMENT_SPEC = dict(
    specs.AUDIT,
    socket=dict(type="str", required=True),
    backend=dict(type="str", required=True),
    servers=dict(type="list", elements="str", default=[]),
    state=dict(type="str", choices=["maintenance", "ready"], required=True),
    drain_timeout=dict(type="float", default=30),
    shutdown_sessions=dict(type="bool", default=False),
    serving_timeout=dict(type="float", default=30),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "haproxy_maintenance"):
        lb = HAProxyLoadBalancer(RuntimeAPI(params["socket"], option="socket"), params["backend"],
                                 params["drain_timeout"], params["shutdown_sessions"], params["serving_timeout"],
                                 names=OPTION_NAMES)
        move = enter if params["state"] == "maintenance" else leave
        module.exit_json(**move(lb, params["servers"], module.check_mode))


if __name__ == "__main__":
    main()
