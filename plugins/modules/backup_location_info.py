#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: backup_location_info
short_description: The health of a backup location - reachable, and the newest backup of every source with its age
version_added: 0.1.0
description:
  - Reports whether a repository (local directory or S3) answers and, for every source of every kind in it
    (PostgreSQL, Redis, file sets), how many complete backups it holds, their size, the newest one, its age and
    when it was last verified.
  - An unreachable location is reported (C(reachable=false), with the reason in C(error) and a warning), not a
    failure, so a play can list every location's health and decide for itself; options that cannot be right (a
    malformed URL, an unknown region) still fail the task.
  - With O(max_age), sources whose newest backup is older (or that have none) are C(stale), with a warning.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.repository
options:
  kinds:
    description: The kinds to look at; all of them when unset.
    type: list
    elements: str
    choices: [postgres, redis, files, pgbase]
  max_age:
    description: Hours after which a source's newest backup is stale.
    type: float
seealso:
  - module: keel.ops.backup_copy
  - module: keel.ops.pg_backup_info
  - module: keel.ops.redis_snapshot_info
  - module: keel.ops.file_backup_info
"""

EXAMPLES = r"""
- name: Health of the primary and the offsite location
  keel.ops.backup_location_info:
    repository: "{{ item.repository }}"
    s3_region: "{{ item.region | default(omit) }}"
    max_age: 26
  loop:
    - {repository: /srv/backups}
    - {repository: s3://acme-offsite/backups, region: eu-central-1}
  register: locations

- name: Fail when a location is down or holds stale backups
  ansible.builtin.assert:
    that: locations.results | rejectattr('reachable') | list | length == 0 and
          locations.results | selectattr('stale') | list | length == 0
"""

RETURN = r"""
reachable:
  description: Whether the location answered.
  returned: always
  type: bool
error:
  description: Why it did not, or null.
  returned: always
  type: str
location:
  description: The location, without credentials.
  returned: when reachable
  type: str
sources:
  description: One entry per kind and source.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(postgres), V(redis) or V(files).
      type: str
    source:
      description: The source folder.
      type: str
    count:
      description: Complete backups.
      type: int
    size:
      description: Bytes they take.
      type: int
    newest:
      description: Id of the newest, or null.
      type: str
    newest_time:
      description: When it was taken (UTC), or null.
      type: str
    newest_age_hours:
      description: Its age in hours, or null.
      type: float
    newest_epoch:
      description: When it was taken, in seconds since the epoch (for metrics), or null.
      type: int
    last_verified:
      description: When the newest was last verified, or null.
      type: str
    stale:
      description: Whether O(max_age) is set and the newest is older, or there is none.
      type: bool
count:
  description: Complete backups in the location.
  returned: always
  type: int
newest_age_hours:
  description: Age in hours of the newest backup in the location, or null.
  returned: always
  type: float
stale:
  description: Whether any source is stale (or, with O(max_age), the location holds no backup, or is unreachable).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._backup.listing import location_health
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures

ARGUMENT_SPEC = specs.merged(
    specs.REPOSITORY,
    kinds=dict(type="list", elements="str", choices=["postgres", "redis", "files", "pgbase"]),
    max_age=dict(type="float"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    with module_failures(module, "backup_location_info"):
        module.exit_json(changed=False, **location_health(module.params, Reporter(warn=module.warn)))


if __name__ == "__main__":
    main()
