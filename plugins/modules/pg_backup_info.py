#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_backup_info
short_description: List the PostgreSQL backups in a repository, newest first, and warn when they are too old
version_added: 0.1.0
description:
  - Lists complete backups (those whose manifest exists) of one or every PostgreSQL source in a repository,
    newest first, with id, time, size, source, format, compression, encryption and when each was last verified.
  - Warns (and reports C(stale=true)) when the newest backup is older than O(max_age).
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.repository
  - keel.ops.info
options:
  database:
    description: Only backups containing this database.
    type: str
seealso:
  - module: keel.ops.pg_backup
"""

EXAMPLES = r"""
- name: Fail the morning check when the newest backup is older than 26 hours
  keel.ops.pg_backup_info:
    repository: s3://acme-backups/postgres
    source: db1-5432-orders
    max_age: 26
  register: backups
  failed_when: backups.stale

- name: Show the five newest backups that were never verified
  keel.ops.pg_backup_info:
    repository: /srv/backups
    verified: false
    limit: 5
"""

RETURN = r"""
backups:
  description: Backups, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    backup_id:
      description: Backup id.
      type: str
    time:
      description: When it was taken (UTC).
      type: str
    source:
      description: Source details from the manifest (name, host, port, database, scope, server_version).
      type: dict
    size:
      description: Bytes stored.
      type: int
    format:
      description: Dump format.
      type: str
    compression:
      description: Compression algorithm.
      type: str
    encrypted:
      description: Whether the backup is encrypted.
      type: bool
    labels:
      description: Labels given when it was taken.
      type: dict
    last_verified:
      description: When it was last verified, or null.
      type: str
count:
  description: Number of backups listed.
  returned: always
  type: int
newest_age_hours:
  description: Age in hours of the newest backup that matches the filters (whatever O(limit)), or null when there is none.
  returned: always
  type: float
stale:
  description: Whether O(max_age) is set and the newest backup is older, or there is no backup.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._postgres.logical import describe_backups

ARGUMENT_SPEC = specs.merged(specs.REPOSITORY, specs.INFO_FILTERS, database=dict(type="str"))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    with module_failures(module, "pg_backup_info"):
        module.exit_json(changed=False, **describe_backups(module.params, Reporter(warn=module.warn)))


if __name__ == "__main__":
    main()
