#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: container_info
short_description: The state of containers and the tail of their output, for an incident record
version_added: 0.1.0
description:
  - Reads the containers selected by O(names) (in that order) or O(labels) (by name) on a Docker Engine API endpoint (Docker, or Podman's
    Docker-compatible service) - image, status, health, exit code - and the last O(log_lines) lines of each one's
    output. Changes nothing.
  - Incident first response keeps it in the incident folder; keel.ops.container_state acts on the same selection.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.docker
  - keel.ops.docker.containers
requirements:
  - docker (the Docker SDK for Python) 7 or later
options:
  log_lines:
    description: How many of the last lines of each container's output to return; V(0) for none.
    type: int
    default: 100
"""

EXAMPLES = r"""
- name: Keep what the application containers look like now
  keel.ops.container_info:
    labels:
      app: shop
    log_lines: 200
  register: containers
"""

RETURN = r"""
containers:
  description: One entry per container, by name.
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
    image:
      description: The image reference it was created from.
      type: str
    state:
      description: C(status), C(running), and C(health) (null without a healthcheck).
      type: dict
    logs:
      description: The last lines of its output.
      type: list
      elements: str
unhealthy:
  description: Names of the containers that are not running, or whose healthcheck reports unhealthy.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._rollout.containers import describe_containers, selected

ARGUMENT_SPEC = dict(
    specs.CONTAINERS,
    log_lines=dict(type="int", default=100),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **specs.CONTAINERS_RULES)
    params = module.params
    with module_failures(module, "container_info"):
        engine, instances = selected(params)
        found = describe_containers(engine, instances, max(params["log_lines"], 0))
        unhealthy = [item["name"] for item in found
                     if not item["state"]["running"] or item["state"]["health"] == "unhealthy"]
        module.exit_json(changed=False, containers=found, unhealthy=unhealthy)


if __name__ == "__main__":
    main()
