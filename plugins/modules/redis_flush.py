#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: redis_flush
short_description: Empty one Redis database, only when confirmed by its number
version_added: 0.1.0
description:
  - Runs C(FLUSHDB ASYNC) on database O(db) - the runbooks' weekly cache flush, made deliberate. It refuses unless
    O(confirm) is exactly C(flush db <db>), so a copied task or a wrong variable cannot empty another database.
  - A database that is already empty is left alone (not changed).
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.redis
attributes:
  check_mode:
    support: full
    details: Counts the keys that would go; flushes nothing.
  diff_mode:
    support: none
options:
  db:
    description: The database number to empty.
    type: int
    required: true
  confirm:
    description: Must be exactly C(flush db <db>), for example V(flush db 1).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Empty the page cache database
  keel.ops.redis_flush:
    login_host: cache1.example.internal
    login_password: "{{ vault_redis_password }}"
    db: 1
    confirm: flush db 1
"""

RETURN = r"""
key_count:
  description: Keys the database held before (would lose).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._maintenance.redis import check_flush, flush_db
from ansible_collections.keel.ops.plugins.module_utils._redis.connection import Connection, Server

ARGUMENT_SPEC = dict(
    specs.REDIS,
    **specs.AUDIT,
    db=dict(type="int", required=True),
    confirm=dict(type="str", required=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    with module_failures(module, "redis_flush"):
        check_flush(params["db"], params["confirm"])
        server = Server(Connection.from_params(params))
        try:
            keys = flush_db(server, params["db"], params["confirm"], module.check_mode)
        finally:
            server.close()
        module.exit_json(changed=keys > 0, key_count=keys, db=params["db"])


if __name__ == "__main__":
    main()
