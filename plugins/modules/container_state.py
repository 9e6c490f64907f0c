#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: container_state
short_description: Stop, start or restart containers, or restart only those that are down or unhealthy
version_added: 0.1.0
description:
  - Brings the containers selected by O(names) or O(labels) on a Docker Engine API endpoint (Docker, or Podman's
    Docker-compatible service) to O(state), one after the other (in the order of O(names), or by name), and reports each one's state
    before and after.
  - A container that is started must be running, and healthy when it has a healthcheck of its own, within
    O(wait_timeout); otherwise the task fails naming it, and the containers after it are left as they were.
  - The disaster recovery role stops the application with it before a restore and starts it afterwards; incident
    first response uses O(state=healthy) to restart what is down or unhealthy and leave the rest alone.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.docker
  - keel.ops.docker.containers
attributes:
  check_mode:
    support: full
    details: Reads each container's state and returns what would be done to it.
  diff_mode:
    support: none
requirements:
  - docker (the Docker SDK for Python) 7 or later
options:
  state:
    description:
      - V(started) starts the containers that are not running; V(stopped) stops those that are.
      - V(restarted) stops and starts every one of them (always a change).
      - V(healthy) starts those that are not running and restarts those whose own healthcheck reports
        C(unhealthy); a running container without a healthcheck, or one still starting, is left alone.
    type: str
    choices: [started, stopped, restarted, healthy]
    required: true
  stop_timeout:
    description: Seconds a container is given to stop before it is killed.
    type: int
    default: 10
  wait_timeout:
    description: Seconds a started container has to be running, and healthy when it has a healthcheck.
    type: float
    default: 60
"""

EXAMPLES = r"""
- name: Stop the application before its data is restored
  keel.ops.container_state:
    docker_host: unix:///run/podman/podman.sock
    labels:
      app: shop
    state: stopped

- name: Restart what is down or unhealthy, leave the rest alone
  keel.ops.container_state:
    names: [shop-web-1, shop-web-2, shop-cache]
    state: healthy
    wait_timeout: 120
"""

RETURN = r"""
containers:
  description: One entry per selected container, in the order they were handled.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    id:
      description: Container id.
      type: str
    action:
      description: V(start), V(stop), V(restart), or null when it was already as wanted.
      type: str
    before:
      description: Its state before (status, running, health - null without a healthcheck).
      type: dict
    after:
      description: Its state after (in check mode, as before); absent for containers not reached after a failure.
      type: dict
msg:
  description: What was (or would be) done.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._rollout.containers import (
    STATES,
    StateChanger,
    change_states,
    plan_states,
    selected,
    summary,
)

ARGUMENT_SPEC = dict(
    specs.CONTAINERS,
    **specs.AUDIT,
    state=dict(type="str", choices=list(STATES), required=True),
    stop_timeout=dict(type="int", default=10),
    wait_timeout=dict(type="float", default=60),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **specs.CONTAINERS_RULES)
    params, wanted = module.params, module.params["state"]
    with module_failures(module, "container_state %s" % wanted):
        engine, instances = selected(params)
        plan = plan_states(engine, instances, wanted)
        failure = ""
        if module.check_mode:
            for entry in plan:
                entry["after"] = entry["before"]
        else:
            changer = StateChanger(engine, params["stop_timeout"], params["wait_timeout"])
            plan, failure = change_states(changer, plan)
        for entry in plan:
            entry.pop("has_healthcheck")
        result = dict(changed=any(entry["action"] for entry in plan), containers=plan,
                      msg=failure or summary(plan, wanted, module.check_mode))
        if failure:
            module.fail_json(**result)
        module.exit_json(**result)


if __name__ == "__main__":
    main()
