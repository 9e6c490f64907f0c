#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: redis_snapshot_info
short_description: List the Redis snapshots in a repository, newest first, and warn when they are too old
version_added: 0.1.0
description:
  - Lists complete snapshots (those whose manifest exists) of one or every Redis source in a repository, newest
    first, with id, time, size, key counts, Redis and RDB version, compression, encryption and when each was last
    verified.
  - Warns (and reports C(stale=true)) when the newest snapshot is older than O(max_age).
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.repository
  - keel.ops.info
seealso:
  - module: keel.ops.redis_snapshot
  - module: keel.ops.pg_backup_info
"""

EXAMPLES = r"""
- name: Fail the morning check when the newest snapshot is older than 26 hours
  keel.ops.redis_snapshot_info:
    repository: s3://acme-backups/redis
    source: cache1.example.internal-6379
    max_age: 26
  register: snapshots
  failed_when: snapshots.stale

- name: The five newest snapshots that were never verified
  keel.ops.redis_snapshot_info:
    repository: /srv/backups
    verified: false
    limit: 5
"""

RETURN = r"""
snapshots:
  description: Snapshots, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    backup_id:
      description: Snapshot id.
      type: str
    time:
      description: When it was taken (UTC).
      type: str
    source:
      description: Source details from the manifest (name, host, port, unix_socket, server_version, role).
      type: dict
    size:
      description: Bytes stored.
      type: int
    keys:
      description: Keys in the snapshot.
      type: int
    databases:
      description: Keys and keys with a TTL per database.
      type: dict
    redis_version:
      description: Version of the Redis that wrote the RDB.
      type: str
    rdb_version:
      description: RDB format version.
      type: int
    checksum:
      description: The RDB's own checksum as found when it was taken (V(ok) or V(disabled)).
      type: str
    method:
      description: How it was taken (V(bgsave) or V(replication)).
      type: str
    compression:
      description: Compression algorithm.
      type: str
    encrypted:
      description: Whether the snapshot is encrypted.
      type: bool
    labels:
      description: Labels given when it was taken.
      type: dict
    last_verified:
      description: When it was last verified, or null.
      type: str
count:
  description: Number of snapshots listed.
  returned: always
  type: int
newest_age_hours:
  description: Age in hours of the newest snapshot that matches the filters (whatever O(limit)), or null when there is none.
  returned: always
  type: float
stale:
  description: Whether O(max_age) is set and the newest snapshot is older, or there is none.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._redis.snapshot import describe_snapshots

ARGUMENT_SPEC = specs.merged(specs.REPOSITORY, specs.INFO_FILTERS)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    with module_failures(module, "redis_snapshot_info"):
        module.exit_json(changed=False, **describe_snapshots(module.params, Reporter(warn=module.warn)))


if __name__ == "__main__":
    main()
