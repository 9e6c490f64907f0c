#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: redis_security_info
short_description: Security findings of a Redis server, each with its severity and fix
version_added: 0.1.0
description:
  - Returns findings - a server that answers without a password (tried on a connection of its own that sends no
    credentials), C(protected-mode) off, C(bind) beyond loopback, dangerous commands (C(FLUSHALL), C(CONFIG),
    C(DEBUG), C(KEYS), ...) left enabled, and TLS off. Changes nothing.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.redis
"""

EXAMPLES = r"""
- name: Audit the cache
  keel.ops.redis_security_info:
    login_host: cache1.example.internal
    login_password: "{{ vault_redis_password }}"
  register: redis_audit
"""

RETURN = r"""
findings:
  description: Each finding - C(check), C(severity), C(target), C(title), C(fix) and C(detail).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._redis.connection import Connection
from ansible_collections.keel.ops.plugins.module_utils._security.redis import audit


def main():
    module = AnsibleModule(argument_spec=dict(specs.REDIS), supports_check_mode=True)
    with module_failures(module, "redis_security_info"):
        connection = Connection.from_params(module.params)
        module.exit_json(changed=False, findings=audit(connection, connection.describe()))


if __name__ == "__main__":
    main()
