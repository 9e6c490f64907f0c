# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # What every backup module (pg_backup, redis_snapshot) takes besides repository, encryption and retention:
    # how artifacts are compressed, labels, and which backup a restore or a verification uses.

    DOCUMENTATION = r"""
options:
  compression:
    description: How artifacts are compressed, in this module's own pipeline.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  compression_level:
    description:
      - Level of O(compression) (1-22 for zstd, 1-9 for gzip). Unset means 1 for zstd (the fastest, which keeps
        up with the dump tools) and 6 for gzip.
    type: int
  labels:
    description: Free-form labels recorded in the manifest; the info modules filter on them.
    type: dict
  backup_id:
    description: Which backup O(state=restored) and O(state=verified) use - an id, or V(latest).
    type: str
    default: latest
  before:
    description:
      - With O(backup_id=latest), the newest backup taken at or before this ISO 8601 time (UTC unless it has a
        zone) - the state before an incident.
    type: str
"""
