#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: container_prune
short_description: Remove stopped containers and dangling images, never protected ones, and count the space
version_added: 0.1.0
description:
  - The safe form of C(docker system prune -f) for a maintenance window, through the engine API (Docker, or
    Podman's Docker-compatible service).
  - Removes containers that have been stopped for at least O(older_than_hours), and images without a tag that no
    remaining container uses. Anything carrying the O(protect_label) label stays, whatever its value, unless the
    value is V(false), V(no), V(0) or empty.
  - O(labels) limits both to the containers and images carrying all of those labels. Volumes and networks are
    never touched.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.docker
attributes:
  check_mode:
    support: full
    details: Lists what would be removed and the space it would give back; removes nothing.
  diff_mode:
    support: none
requirements:
  - docker (the Docker SDK for Python)
options:
  containers:
    description: Remove stopped containers.
    type: bool
    default: true
  images:
    description: Remove dangling images.
    type: bool
    default: true
  older_than_hours:
    description:
      - A container is removed only once it has been stopped this long; a rollout's previous version or a job
        between two runs stays.
    type: float
    default: 24
  labels:
    description: Only containers and images carrying all of these labels (with these values).
    type: dict
  protect_label:
    description: The label that keeps a container or an image, whatever else matches.
    type: str
    default: keel.ops.protect
"""

EXAMPLES = r"""
- name: Prune the engine of the app hosts, keeping what is marked keel.ops.protect
  keel.ops.container_prune:
    docker_host: unix:///run/podman/podman.sock
    older_than_hours: 48
  register: pruned

- name: What would go?
  keel.ops.container_prune:
    labels:
      com.example.team: shop
  check_mode: true
"""

RETURN = r"""
removed:
  description:
    - Containers and images removed (in check mode, to remove) - C(kind), C(id), C(bytes), and for containers
      C(name), C(image), C(status) and C(stopped_hours).
  returned: always
  type: list
  elements: dict
kept:
  description: Stopped containers and dangling images that stay, each with C(reason).
  returned: always
  type: list
  elements: dict
skipped:
  description: Removals the engine refused, each with C(reason).
  returned: always
  type: list
  elements: dict
reclaimed:
  description: Bytes the removals gave back (would give back), from the engine's sizes.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._maintenance.containers import (
    DEFAULT_PROTECT_LABEL, Pruner, prune)
from ansible_collections.keel.ops.plugins.module_utils._rollout.docker import connect_from_params

ARGUMENT_SPEC = dict(
    specs.DOCKER,
    **specs.AUDIT,
    containers=dict(type="bool", default=True),
    images=dict(type="bool", default=True),
    older_than_hours=dict(type="float", default=24),
    labels=dict(type="dict"),
    protect_label=dict(type="str", default=DEFAULT_PROTECT_LABEL),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "container_prune"):
        engine = connect_from_params(params)
        try:
            result = prune(Pruner(engine.client, engine.docker_host), params, module.check_mode)
        finally:
            engine.client.close()
        module.exit_json(**result)


if __name__ == "__main__":
    main()
