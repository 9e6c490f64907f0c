#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_physical_backup
short_description: Base backups of a PostgreSQL cluster, and point-in-time restores from them and the WAL archive
version_added: 0.2.0
description:
  - V(present) takes a base backup of the whole cluster over the replication protocol (C(pg_basebackup), tar
    format, without WAL) and streams it through compression (zstd on every core), optional age encryption and
    sha256 into the repository; nothing is written on the host it runs on unless the cluster has extra
    tablespaces. The backup exists once its manifest is written, and that happens only after the WAL archive
    (set up by M(keel.ops.pg_wal_archive)) holds every segment from the backup's start to its end.
  - V(restored) restores to a point in time - V(latest), a time, an LSN, a named restore point or the end of
    the backup (O(target)). It picks the base backup the target needs, proves its checksums, the key and the
    archive's continuity before touching anything, unpacks it beside O(data_directory), runs recovery there on a
    private socket, and swaps it into place only once PostgreSQL has promoted it. It returns where replay stopped,
    in PostgreSQL's words.
  - V(verified) restores a backup into a scratch directory, checks every file against the backup manifest
    (C(pg_verifybackup)), replays to the backup's end (or O(target_time)), runs amcheck on every B-tree index,
    stops the server and records the verification in the repository.
  - V(absent) applies retention to base backups and expires the WAL that only the deleted ones needed.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.repository
  - keel.ops.postgres
  - keel.ops.encryption
  - keel.ops.retention
  - keel.ops.backup
attributes:
  check_mode:
    support: full
    details:
      - Reports the plan. A check-mode V(restored) or V(verified) also proves the chosen backup's checksums, the
        key and the WAL archive's continuity, touching nothing.
  diff_mode:
    support: none
requirements:
  - psycopg2
  - zstandard (for zstd compression)
  - pyrage (for encryption)
  - boto3 (for S3 repositories)
  - PostgreSQL server binaries of the cluster's major version (pg_basebackup, postgres, pg_verifybackup)
notes:
  - Encryption is to O(encryption_recipients) only; O(encryption_passphrase_file) is refused, because WAL
    segments are archived one by one by the server and cannot each carry a sealed key.
  - The login role needs the REPLICATION attribute and a C(replication) line in pg_hba.conf; V(verified) runs
    amcheck as O(login_user) on the scratch server, where that role must be a superuser.
options:
  state:
    description:
      - V(present) takes a base backup, then applies retention to backups and WAL.
      - V(restored) restores to O(target) into O(data_directory).
      - V(verified) restores into a scratch directory, checks and records the result.
      - V(absent) applies retention only.
    type: str
    choices: [present, restored, verified, absent]
    default: present
  wal_timeout:
    description: Seconds V(present) waits for the WAL segments the backup needs to reach the archive.
    type: float
    default: 120
  allow_plaintext_staging:
    description:
      - A cluster with extra tablespaces is received into the work directory before it is stored (PostgreSQL
        streams only a single tar); with encryption on, that plaintext copy is refused unless this is true.
    type: bool
    default: false
  data_directory:
    description: Where V(restored) puts the cluster. Absolute path; its parent must exist.
    type: path
  replace:
    description:
      - Let V(restored) replace a non-empty O(data_directory). The old one is moved aside to
        C(<data_directory>.keel-previous-<time>) once the new one has recovered; a running server is refused.
    type: bool
    default: false
  owner:
    description:
      - The operating system user the restored server runs as (it owns the data directory). Defaults to the owner
        of O(data_directory), or of its parent. Never root.
    type: str
  tablespace_mapping:
    description:
      - Where V(restored) puts extra tablespaces, by tablespace name or original location; each is restored into
        its original location otherwise. Every target must be empty or absent. V(verified) always restores them
        into its scratch directory.
    type: dict
  target:
    description:
      - Where replay stops. V(latest) replays all archived WAL; V(immediate) stops as soon as the backup is
        consistent; V(time), V(lsn) and V(name) stop at O(target_time), O(target_lsn) or O(target_name).
      - V(verified) replays to V(immediate) unless V(time), V(lsn) or V(name) is given.
    type: str
    choices: [latest, immediate, time, lsn, name]
    default: latest
  target_time:
    description: ISO 8601 time for O(target=time) (UTC unless it carries a zone).
    type: str
  target_lsn:
    description: LSN for O(target=lsn), such as C(0/3000028).
    type: str
  target_name:
    description: Restore point name (C(pg_create_restore_point)) for O(target=name).
    type: str
  target_inclusive:
    description: Whether replay stops just after (true) or just before (false) the target.
    type: bool
    default: true
  archive:
    description:
      - Whether the server V(restored) recovers with archiving as its configuration has it, so the new timeline
        it starts after promotion is archived. Set false when the restored copy is not to become the primary (a
        copy to look at the past); it then leaves no timeline of its own in the archive, which a later restore
        to V(latest) would otherwise follow. V(verified) never archives.
    type: bool
    default: true
  recovery_timeout:
    description: Seconds recovery may take before the restore gives up and leaves the old data directory alone.
    type: float
    default: 3600
  verify_files:
    description: Also check every restored file against the backup manifest (C(pg_verifybackup)) in V(restored).
    type: bool
    default: false
  python:
    description:
      - The interpreter that runs C(keel-wal) as restore_command during recovery, as O(owner). Defaults to the
        one running this module; give another (say C(/usr/bin/python3)) when O(owner) cannot run that one.
    type: path
"""

EXAMPLES = r"""
- name: Take a base backup into S3, encrypted, keeping a week of backups and the WAL they need
  keel.ops.pg_physical_backup:
    login_host: db1.internal
    login_user: backup
    login_password: "{{ vault_pg_backup_password }}"
    repository: s3://backups/prod
    s3_endpoint_url: https://s3.internal
    encryption_recipients: ["{{ backup_age_recipient }}"]
    keep_daily: 7

- name: Restore to just before the bad migration
  keel.ops.pg_physical_backup:
    state: restored
    repository: s3://backups/prod
    source: db1.internal-5432
    data_directory: /var/lib/postgresql/16/main
    owner: postgres
    replace: true
    target: time
    target_time: "2026-12-01T14:59:00Z"
    decryption_identity_file: /etc/keel/backup.key
  become: true

- name: Prove the newest base backup restores and replays
  keel.ops.pg_physical_backup:
    state: verified
    repository: /srv/backups
    login_user: postgres
    owner: postgres
"""

RETURN = r"""
backup_id:
  description: The base backup taken, restored or verified.
  returned: success
  type: str
  sample: 20261202T020000123Z-3fa2c1
size:
  description: Bytes stored.
  returned: state=present
  type: int
raw_size:
  description: Bytes pg_basebackup produced.
  returned: state=present
  type: int
duration:
  description: Seconds the operation took.
  returned: state=present, state=restored
  type: float
statistics:
  description: Timeline, start and end LSN and WAL segment, start time and tablespaces of the backup.
  returned: state=present
  type: dict
wal:
  description:
    - V(present) and V(absent), the WAL expired (C(expired), C(kept_from)); V(restored) and V(verified), the
      archive's continuity from the backup (C(found), C(missing), C(timelines), C(switches), C(unbroken_until)).
  returned: success
  type: dict
replay:
  description:
    - Where replay stopped, from the server's log - C(stopped) ("recovery stopping before commit of transaction
      ..."), C(last_transaction) (its time), C(redo_done), C(consistent_at) and C(new_timeline).
  returned: state=restored, state=verified
  type: dict
timings:
  description: Seconds from the start to the checksums proven (C(checked)), the files unpacked and recovery done.
  returned: state=restored, state=verified
  type: dict
previous_data_directory:
  description: Where the replaced data directory was moved; null when there was none.
  returned: state=restored
  type: str
checks:
  description: amcheck's result - indexes checked per database.
  returned: state=verified
  type: dict
retention:
  description: What retention kept and deleted.
  returned: state=present, state=absent
  type: dict
plan:
  description: What the run does (or would do in check mode).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._postgres import physical, physical_restore


ARGUMENT_SPEC = specs.merged(
    specs.AUDIT,
    specs.REPOSITORY, specs.POSTGRES, specs.ENCRYPTION, specs.RETENTION, specs.BACKUP,
    state=dict(type="str", choices=["present", "restored", "verified", "absent"], default="present"),
    wal_timeout=dict(type="float", default=120),
    allow_plaintext_staging=dict(type="bool", default=False),
    data_directory=dict(type="path"),
    replace=dict(type="bool", default=False),
    owner=dict(type="str"),
    tablespace_mapping=dict(type="dict"),
    target=dict(type="str", choices=list(physical_restore.TARGETS), default="latest"),
    target_time=dict(type="str"),
    target_lsn=dict(type="str"),
    target_name=dict(type="str"),
    target_inclusive=dict(type="bool", default=True),
    archive=dict(type="bool", default=True),
    recovery_timeout=dict(type="float", default=3600),
    verify_files=dict(type="bool", default=False),
    python=dict(type="path"),
)

ACTIONS = {"present": physical.backup, "restored": physical_restore.restore, "verified": physical_restore.verify,
           "absent": physical.prune}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "restored", ("data_directory",))])
    lifecycle.run_module(module, "pg_physical_backup", physical.PhysicalConfig, ACTIONS)


if __name__ == "__main__":
    main()
