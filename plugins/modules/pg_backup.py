#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_backup
short_description: Streaming, encrypted, verified PostgreSQL backups to a local directory or S3, and restores
version_added: 0.1.0
description:
  - V(present) backs up one database (C(pg_dump) custom format), the whole cluster (globals plus every
    database) or only the globals, streaming through compression (zstd by default, on every core), optional
    age encryption and sha256 into the repository. The backup exists only once its manifest is written last;
    an interrupted run leaves nothing listed and the next run removes its leftovers.
  - The manifest records the exact row count of every table, taken from the same snapshot as the dump.
  - V(restored) restores a selected backup (O(backup_id), C(latest), or the newest at or before O(before)) into
    a target database. Checksums and the decryption key are proven before anything is created or dropped; a
    non-empty target is replaced only with O(replace=true); afterwards every table's row count is compared with
    the manifest.
  - V(verified) proves a backup restores - checksums, a restore into a scratch database that is dropped
    afterwards, and the statistics check - and records the result (and the restore time, an RTO figure) in
    the repository.
  - V(absent) applies retention without taking a backup.
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
      - Reports the plan (which backup, which target, what would be dropped or deleted) and touches nothing.
      - A check-mode V(restored) also proves the backup's checksums and that the key opens it, reading the
        whole backup, so it serves as a restore's pre-check; it places no hold in the repository.
  diff_mode:
    support: none
requirements:
  - psycopg2
  - zstandard (for zstd compression)
  - pyrage (for encryption)
  - boto3 (for S3 repositories)
  - PostgreSQL client tools (pg_dump, pg_restore, ...) of the server's major version or newer
options:
  state:
    description:
      - V(present) takes a backup, then applies retention.
      - V(restored) restores a backup into O(target_database).
      - V(verified) checks a backup's checksums and restores it into a scratch database.
      - V(absent) applies retention only.
    type: str
    choices: [present, restored, verified, absent]
    default: present
  scope:
    description:
      - V(database) backs up O(database); V(cluster) the globals (roles, tablespaces) and every database;
        V(globals) only the globals.
    type: str
    choices: [database, cluster, globals]
    default: database
  database:
    description:
      - Database to back up (O(scope=database)); for O(state=restored) from a cluster backup, the database to restore.
    type: str
    aliases: [db]
  schemas:
    description: Back up only these schemas (psql patterns).
    type: list
    elements: str
  exclude_schemas:
    description: Leave these schemas out (psql patterns).
    type: list
    elements: str
  tables:
    description: Back up only these tables (psql patterns, optionally schema-qualified).
    type: list
    elements: str
  exclude_tables:
    description: Leave these tables out (psql patterns, optionally schema-qualified).
    type: list
    elements: str
  jobs:
    description:
      - For O(state=present), more than 1 runs that many C(pg_dump) workers in directory format; the directory
        is then stored as one tar artifact. For O(state=restored) and O(state=verified), that many
        C(pg_restore) workers.
      - Both write the plaintext dump to the module's temporary directory first, so they are refused for
        encrypted backups. With 1 (the default) nothing touches the local disk, and compression still runs on
        every core.
    type: int
    default: 1
  target_database:
    description: Database to restore into; defaults to the backed-up database's name.
    type: str
  lock_wait_timeout:
    description:
      - Seconds C(pg_dump) and the row count beside it wait for a table lock held by another session (a
        migration, a long C(ALTER TABLE)) before the backup fails; passed as C(--lock-wait-timeout) and
        C(lock_timeout). V(0) waits forever, which can stall a backup (and its repository lock) indefinitely.
    type: float
    default: 120
  statement_timeout:
    description:
      - Seconds one row-count query may run before the backup fails (C(statement_timeout)); V(0), the default,
        sets no limit, since counting a large table legitimately takes a while.
    type: float
    default: 0
  replace:
    description:
      - Allow a restore into a non-empty target database. The live database is not dropped first - the backup is
        restored beside it into a staging database (C(keel_restore_<hash>)), checked against the row counts in
        the manifest, and only then swapped in by renaming both databases in one transaction (sessions on the
        target are ended for the swap). The previous database is dropped once the swap has succeeded. A failure
        at any point before the swap - a missing role or extension, a full disk, a wrong row count - leaves the
        target exactly as it was. The staging copy needs as much free disk space as the restored database.
      - When restoring only some tables or schemas, only the restored objects are dropped and recreated, inside
        the live database in one transaction (O(jobs) is then ignored), so a failure rolls all of it back.
      - Only one restore runs into a target at a time. A restore killed midway leaves a staging database (or
        the replaced one) that the next restore into that target drops, with a warning.
    type: bool
    default: false
  safety_backup:
    description: Before replacing a non-empty target, back it up into the repository (source O(safety_source)).
    type: bool
    default: false
  safety_source:
    description: Repository source name for the safety backup; defaults to C(<target_database>-pre-restore).
    type: str
  no_owner:
    description: Restore without setting ownership or privileges (objects belong to the restoring role).
    type: bool
    default: false
  role:
    description: Role to restore as (C(SET ROLE)), and the owner of a database the restore creates.
    type: str
  restore_schemas:
    description: Restore only these schemas out of the backup.
    type: list
    elements: str
  restore_globals:
    description:
      - With a O(scope=cluster) or O(scope=globals) backup, also replay its globals (roles, tablespaces) through
        C(psql) before the database; statements that fail because an object already exists are reported as warnings.
    type: bool
    default: false
  restore_tables:
    description:
      - Restore only these tables out of a whole-database backup (C(schema.table) or C(table)); with
        O(replace=true) into an existing database, only these tables are dropped and recreated.
    type: list
    elements: str
notes:
  - The PostgreSQL client tools run on the host running the module; give O(bin_dir) when several versions are installed.
  - Peak memory stays flat whatever the database size - data is streamed in 1 MiB chunks, never held whole.
seealso:
  - module: keel.ops.pg_backup_info
  - module: community.postgresql.postgresql_db
"""

EXAMPLES = r"""
- name: Nightly backup of the orders database, encrypted, to S3, keeping 7 daily and 4 weekly
  keel.ops.pg_backup:
    database: orders
    login_host: db1.example.internal
    login_user: backup
    login_password: "{{ vault_pg_backup_password }}"
    repository: s3://acme-backups/postgres
    s3_region: eu-west-1
    encryption_recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    keep_daily: 7
    keep_weekly: 4
    labels: {trigger: nightly}
  register: nightly

- name: Prove last night's backup restores (records the result and the restore time)
  keel.ops.pg_backup:
    state: verified
    database: orders
    repository: s3://acme-backups/postgres
    decryption_identity_file: /etc/keel/backup.agekey
    login_host: dr-db.example.internal
    login_user: postgres

- name: Restore one table as it was before the incident, into a scratch database
  keel.ops.pg_backup:
    state: restored
    database: orders
    repository: /srv/backups
    before: "2026-11-23T04:00:00Z"
    target_database: orders_incident_1234
    restore_tables: [public.invoices]

- name: Replace the database with the latest backup, keeping a safety copy of what is there now
  keel.ops.pg_backup:
    state: restored
    database: orders
    repository: /srv/backups
    replace: true
    safety_backup: true
"""

RETURN = r"""
backup_id:
  description: Id of the backup taken, restored or verified (sorts by time).
  returned: success
  type: str
  sample: 20261123T020000Z-3fa2c1
location:
  description: Where the backup was written.
  returned: state=present
  type: str
source:
  description: The repository source the backup belongs to.
  returned: state=present, state=verified
  type: str
size:
  description: Bytes stored (after compression and encryption).
  returned: state=present
  type: int
raw_size:
  description: Bytes produced by the dump tools before compression.
  returned: state=present
  type: int
duration:
  description: Seconds the whole operation took.
  returned: state=present, state=restored, state=verified
  type: float
throughput_mb_s:
  description: Dump throughput in MB (10^6 bytes) of raw dump per second.
  returned: state=present
  type: float
artifacts:
  description: The stored files, with name, size, sha256, raw size, kind and database.
  returned: state=present
  type: list
  elements: dict
statistics:
  description: Per database - exact row count per table, large objects, size and encoding.
  returned: state=present
  type: dict
compression:
  description: Compression algorithm and level.
  returned: state=present
  type: dict
encryption:
  description: Encryption method and recipient fingerprints (never keys), or null.
  returned: state=present
  type: dict
retention:
  description: Whether retention ran, which backups it kept (with the rules that kept them) and deleted.
  returned: state=present, state=absent
  type: dict
deleted:
  description: Backup ids deleted by retention.
  returned: state=absent
  type: list
  elements: str
cleaned_up:
  description: Leftovers of interrupted runs that were removed.
  returned: state=present
  type: list
  elements: str
plan:
  description: What the task does or, in check mode, would do.
  returned: always
  type: dict
target_database:
  description: The database restored into.
  returned: state=restored
  type: str
artifacts_checked:
  description: Artifacts whose size and sha256 were proven before the restore read them (in check mode too).
  returned: state=restored
  type: list
  elements: str
safety_backup:
  description: The backup taken of the target before it was replaced.
  returned: state=restored with safety_backup
  type: dict
verification:
  description:
    - The check of the restored data against the manifest (tables, rows), and for V(verified) the record written.
    - For V(verified), each database's C(amcheck_indexes) counts the B-tree indexes of the scratch copy that amcheck's
      C(bt_index_check) (with C(heapallindexed)) found sound; null when the server has no amcheck.
  returned: state=restored, state=verified
  type: dict
restore_duration:
  description: Seconds spent restoring data (the recovery time to expect).
  returned: state=restored, state=verified
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._postgres import logical, restore

ARGUMENT_SPEC = specs.merged(
    specs.AUDIT,
    specs.REPOSITORY, specs.POSTGRES, specs.ENCRYPTION, specs.RETENTION, specs.BACKUP,
    state=dict(type="str", choices=["present", "restored", "verified", "absent"], default="present"),
    scope=dict(type="str", choices=["database", "cluster", "globals"], default="database"),
    database=dict(type="str", aliases=["db"]),
    schemas=dict(type="list", elements="str"),
    exclude_schemas=dict(type="list", elements="str"),
    tables=dict(type="list", elements="str"),
    exclude_tables=dict(type="list", elements="str"),
    jobs=dict(type="int", default=1),
    lock_wait_timeout=dict(type="float", default=120),
    statement_timeout=dict(type="float", default=0),
    target_database=dict(type="str"),
    replace=dict(type="bool", default=False),
    safety_backup=dict(type="bool", default=False),
    safety_source=dict(type="str"),
    no_owner=dict(type="bool", default=False),
    role=dict(type="str"),
    restore_schemas=dict(type="list", elements="str"),
    restore_tables=dict(type="list", elements="str"),
    restore_globals=dict(type="bool", default=False),
)

ACTIONS = {"present": logical.backup, "restored": restore.restore, "verified": restore.verify, "absent": logical.prune}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    lifecycle.run_module(module, "pg_backup", logical.PgBackupConfig, ACTIONS)


if __name__ == "__main__":
    main()
