#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: container_security_info
short_description: Security findings of the running containers of an engine, each with its severity and fix
version_added: 0.1.0
description:
  - Inspects every running container (with O(labels), when given) and returns findings - privileged, running as
    root, sharing the host's PID or network namespace, no healthcheck, and an image built more than
    O(max_image_age_days) days ago. Changes nothing.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.docker
requirements:
  - docker (the Docker SDK for Python)
options:
  labels:
    description: Only containers carrying all of these labels.
    type: dict
  max_image_age_days:
    description: Images built longer ago than this are a finding.
    type: int
    default: 90
"""

EXAMPLES = r"""
- name: Audit the app host's containers
  keel.ops.container_security_info:
    docker_host: unix:///run/podman/podman.sock
  register: container_audit
"""

RETURN = r"""
findings:
  description: Each finding - C(check), C(severity), C(target), C(title), C(fix) and C(detail).
  returned: always
  type: list
  elements: dict
containers:
  description: How many containers were inspected.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._docker import api_errors
from ansible_collections.keel.ops.plugins.module_utils._errors import EngineError, first_line, module_failures
from ansible_collections.keel.ops.plugins.module_utils._rollout.docker import connect_from_params
from ansible_collections.keel.ops.plugins.module_utils._security.containers import audit

ARGUMENT_SPEC = dict(
    specs.DOCKER,
    labels=dict(type="dict"),
    max_image_age_days=dict(type="int", default=90),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "container_security_info"):
        engine = connect_from_params(params)
        try:
            with api_errors(lambda error: EngineError("cannot inspect the containers at %s: %s"
                                                      % (engine.docker_host, first_line(error)))):
                findings, seen = audit(engine.client, params["max_image_age_days"], params["labels"])
        finally:
            engine.client.close()
        module.exit_json(changed=False, findings=findings, containers=seen)


if __name__ == "__main__":
    main()
