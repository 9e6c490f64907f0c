#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_physical_backup_info
short_description: List base backups with their WAL ranges, check the WAL archive, and say how far a restore can reach
version_added: 0.2.0
description:
  - Lists the base backups of one source (newest first) with their timeline, start and end LSN and WAL segment,
    and the time from which each is consistent.
  - Checks the WAL archive from every listed backup to the newest segment, along the timelines that descend from
    it - segments found, missing ones by name, timeline switches - and warns about a gap.
  - Reports the earliest recoverable time (the oldest backup's consistency point) and when WAL was last archived.
  - Needs no decryption key. Read-only; never reports a change.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.repository
options:
  login_host:
    description: With O(login_port), names the default source C(<host>-<port>) when O(source) is not given.
    type: str
  login_port:
    description: See O(login_host).
    type: int
    default: 5432
  login_unix_socket:
    description: A socket directory instead of O(login_host) (the source is then C(local-<port>)).
    type: str
  since:
    description: Only list base backups taken at or after this ISO 8601 time.
    type: str
"""

EXAMPLES = r"""
- name: How far back can we go, and is the WAL archive whole?
  keel.ops.pg_physical_backup_info:
    repository: s3://backups/prod
    source: db1.internal-5432
  register: physical

- name: Fail the health check on a WAL gap
  ansible.builtin.assert:
    that: physical.healthy
    fail_msg: "WAL gap at {{ physical.gaps | first }}"
"""

RETURN = r"""
backups:
  description: Base backups, newest first, each with its summary, C(timeline), C(start_lsn), C(end_lsn),
    C(start_wal), C(end_wal), C(consistent_at) and C(wal) (found, missing, timelines, switches, unbroken_until).
  returned: always
  type: list
  elements: dict
count:
  description: How many base backups are listed.
  returned: always
  type: int
archive:
  description: The cluster the WAL archive belongs to (system identifier, segment size); null before the first push.
  returned: always
  type: dict
wal_segments:
  description: How many WAL segments the archive holds.
  returned: always
  type: int
timelines:
  description: The timelines with archived segments.
  returned: always
  type: list
  elements: int
earliest_recoverable:
  description: The oldest point a restore can reach (the oldest backup's end).
  returned: always
  type: str
latest_archived:
  description: When a WAL file was last archived (an upper bound of the newest recoverable time).
  returned: always
  type: str
latest_archived_epoch:
  description: RV(latest_archived) as a Unix time.
  returned: always
  type: int
latest_segment:
  description: The newest segment in the archive.
  returned: always
  type: str
gaps:
  description: For each listed backup with a gap after it, the first missing segment.
  returned: always
  type: list
  elements: str
healthy:
  description: At least one backup, and no gap from any of them.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._postgres import physical


ARGUMENT_SPEC = specs.merged(
    specs.REPOSITORY,
    login_host=dict(type="str"),
    login_port=dict(type="int", default=5432),
    login_unix_socket=dict(type="str"),
    since=dict(type="str"),
)


class _InfoConfig(physical.PhysicalConfig):
    @classmethod
    def from_params(cls, params):
        params = dict(params, compression=None, compression_level=None, before=None, state="info")
        config = super(_InfoConfig, cls).from_params(params)
        return config


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    lifecycle.run_module(module, "pg_physical_backup_info", _InfoConfig, {"present": physical.describe})


if __name__ == "__main__":
    main()
