#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_security_info
short_description: Security findings of a PostgreSQL server, each with its severity and fix
version_added: 0.1.0
description:
  - Reads the catalog and the settings and returns findings - login superusers, login roles without a connection
    limit, C(password_encryption) other than C(scram-sha-256) and passwords still stored as md5, C(trust) lines in
    C(pg_hba.conf), C(ssl) off, and C(CREATE) on the public schema for everyone. Changes nothing.
  - What the connecting role may not read (C(pg_hba_file_rules), C(pg_authid)) becomes an C(info) finding.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.postgres
requirements:
  - psycopg2
"""

EXAMPLES = r"""
- name: Audit the database server
  keel.ops.pg_security_info:
    login_host: db1.example.internal
    login_user: postgres
    login_password: "{{ vault_pg_admin_password }}"
  register: pg_audit
"""

RETURN = r"""
findings:
  description:
    - Each finding - C(check) (for example V(postgres.hba_trust)), C(severity) (V(info), V(low), V(medium), V(high),
      V(critical)), C(target), C(title), C(fix) and C(detail).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._postgres.conninfo import Connection
from ansible_collections.keel.ops.plugins.module_utils._security.postgres import audit


def main():
    module = AnsibleModule(argument_spec=dict(specs.POSTGRES), supports_check_mode=True)
    with module_failures(module, "pg_security_info"):
        connection = Connection.from_params(module.params)
        conn = connection.connect()
        try:
            findings = audit(conn, "postgres %s" % connection.describe().rsplit("/", 1)[0])
        finally:
            conn.close()
        module.exit_json(changed=False, findings=findings)


if __name__ == "__main__":
    main()
