#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: file_backup
short_description: File sets and SQLite databases to a local directory or S3, verified file by file, and restores
version_added: 0.1.0
description:
  - V(present) streams the files under O(paths) as one tar archive (POSIX pax - owners, modes, mtimes, symbolic
    and hard links, long names) through compression (zstd by default), optional age encryption and sha256 into the
    repository keel.ops.pg_backup and keel.ops.redis_snapshot use, with the same layout, lock, retention and
    encryption options. An index beside the archive records every entry with its attributes and the sha256 of its
    content. The backup exists only once its manifest is written last; an interrupted run leaves nothing listed
    and the next run removes its leftovers.
  - Directories are walked without following symbolic links (a link is stored as a link). O(exclude) and
    O(include) narrow the set. Sockets, FIFOs and devices are reported and skipped.
  - Secrets are left out unless they are named - files such as C(.env), C(*.key), C(*.pem), C(id_rsa) and
    C(.pgpass) (see O(include_secrets)) are skipped with a warning, since a repository is often readable by more
    people than the host's secrets are. A path listed in O(paths) itself is always stored.
  - SQLite databases (files matching O(sqlite_patterns) that start with SQLite's header) are stored as a copy
    made by SQLite's online backup API - one consistent state, including what their WAL holds - never as a copy
    of the live file; C(PRAGMA integrity_check) runs on the copy before it is stored. The copy lives in a private
    (0700) work directory only while it is streamed, so with encryption on no plaintext copy outlives the task.
    Their C(-wal), C(-shm) and C(-journal) files are not stored.
  - A file that changes while it is read is stored as read (padded or cut to the size it had when its header was
    written) and reported in a warning; the backup still succeeds.
  - V(restored) puts a backup (O(backup_id), C(latest), or the newest at or before O(before)) back, all of it or
    O(restore_paths), in the files' own places or under O(target). Checksums, the decryption key and the free space
    are proven first. Each file is written beside its destination under a temporary name, checked against the
    sha256 in the index (a SQLite database also by C(integrity_check)), given its owner (when running as root),
    mode and mtime, and renamed into place; what it replaces is renamed aside and deleted only once every file is
    in place. Any failure puts everything back as it was; a journal (in O(journal_dir)) lets the next run roll back
    a restore that was killed mid-way. Files already holding the stored content are left alone, so a repeated
    restore reports no change.
  - A restore never writes outside its root - every name in the archive must be a plain relative path below one
    of the paths the backup was taken of, and the directory it lands in must resolve inside that path (no symbolic
    link, on disk or in the archive, leads elsewhere).
  - V(verified) proves a backup is sound - every artifact's checksum, then every file of the archive against its
    sha256 in the index - and records the result in the repository.
  - V(absent) applies retention only.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.repository
  - keel.ops.encryption
  - keel.ops.retention
  - keel.ops.backup
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be stored (counts, bytes, secrets left out) or restored (created, replaced and unchanged
        entries) and touches nothing. A check-mode V(restored) proves the backup's checksums, its key and the free
        space first, as the real run does, without placing a hold in the repository.
  diff_mode:
    support: none
requirements:
  - zstandard (for zstd compression)
  - pyrage (for encryption)
  - boto3 (for S3 repositories)
options:
  state:
    description:
      - V(present) takes a backup, then applies retention.
      - V(restored) restores a backup.
      - V(verified) checks a backup file by file and records the result.
      - V(absent) applies retention only.
    type: str
    choices: [present, restored, verified, absent]
    default: present
  paths:
    description:
      - Absolute paths of the directories and files to back up; none may be inside another.
      - Required for V(present). For the other states they only name the default O(source).
    type: list
    elements: path
  source:
    description:
      - Name of the folder that groups this file set's backups in the repository.
      - Defaults to C(<short host name>-<name of the first path>), plus a hash of all the paths when there are
        several. Name it when restoring on another host.
    type: str
  include:
    description:
      - Only files matching one of these globs are stored (directories are always walked).
      - A glob without C(/) matches a file name at any depth; one with C(/) matches the path below the listed
        path it was found in (or the absolute path when it starts with C(/)). C(*) matches across C(/).
    type: list
    elements: str
  exclude:
    description: Files and directories matching one of these globs (as for O(include)) are left out.
    type: list
    elements: str
  include_secrets:
    description:
      - Globs (as for O(include)) of secret files to store anyway. Without them, files named C(.env), C(.env.*),
        C(*.env), C(*.key), C(*.pem), C(*.p12), C(*.pfx), C(*.jks), C(*.keystore), C(*.kdbx), C(id_rsa),
        C(id_dsa), C(id_ecdsa), C(id_ed25519), C(.pgpass), C(.netrc) or C(.git-credentials) are left out.
    type: list
    elements: str
  sqlite_patterns:
    description:
      - Globs of file names checked for SQLite's header and, when they have it, copied by the online backup API.
      - An empty list stores every file as plain bytes.
    type: list
    elements: str
    default: ["*.db", "*.sqlite", "*.sqlite3"]
  sqlite_timeout:
    description: Seconds a SQLite copy waits for a writer's lock before it fails.
    type: float
    default: 30
  target:
    description:
      - For V(restored), the directory under which the files are restored, each at its own path below it
        (C(/srv/app/data/x) lands in C(<target>/srv/app/data/x)). Unset, files go back to their own places.
    type: path
  restore_paths:
    description: For V(restored), only these paths of the backup (and what is below them); all of it when unset.
    type: list
    elements: path
  replace:
    description:
      - For V(restored), whether existing files that differ from the backup may be replaced. Without it, a restore
        that would replace any fails before it touches anything and names them; missing files are always created.
    type: bool
    default: false
  journal_dir:
    description:
      - Directory of the journal a restore keeps while it runs, so that the next run can roll back one that was
        killed. It holds paths only, never file contents.
    type: path
    default: /var/tmp
notes:
  - Memory stays flat whatever the size of the files. It grows with their number - a restore holds the index, and
    the module took about 45 MB for 2,000 entries and 70 MB for 20,000.
  - Running as root restores owners (by name, else by number) and setuid, setgid and sticky bits, as tar does;
    otherwise files belong to the user running the task and those bits are dropped.
  - Extended attributes and ACLs are not stored.
  - Stop the applications that write a SQLite database before restoring it in place; the restore moves its old
    C(-wal), C(-shm) and C(-journal) files aside with it.
seealso:
  - module: keel.ops.file_backup_info
  - module: keel.ops.pg_backup
  - module: keel.ops.redis_snapshot
"""

EXAMPLES = r"""
- name: Nightly backup of the application's data and configuration, encrypted, to S3
  keel.ops.file_backup:
    paths:
      - /srv/clo/data
      - /etc/clo
    exclude: ["*.tmp", "cache"]
    repository: s3://acme-backups/files
    s3_region: eu-west-1
    encryption_recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    keep_daily: 7
    keep_weekly: 4
  become: true

- name: Configuration including its TLS key, which is left out unless named
  keel.ops.file_backup:
    paths: [/etc/nginx]
    include_secrets: ["*.key"]
    source: web1-nginx
    repository: /srv/backups

- name: Prove last night's backup file by file (recorded in the repository)
  keel.ops.file_backup:
    state: verified
    source: app1-data
    repository: s3://acme-backups/files
    decryption_identity_file: /etc/keel/backup.agekey

- name: Restore the data directory as it was before the incident, replacing what is there
  keel.ops.file_backup:
    state: restored
    source: app1-data
    before: "2026-11-23T04:00:00Z"
    restore_paths: [/srv/clo/data]
    replace: true
    repository: /srv/backups
  become: true

- name: Restore everything into a scratch directory to look at it
  keel.ops.file_backup:
    state: restored
    source: app1-data
    target: /var/tmp/restore-check
    repository: /srv/backups
"""

RETURN = r"""
backup_id:
  description: The backup taken, restored or verified; ids sort by the time they were taken.
  returned: success
  type: str
  sample: 20261123T020000123Z-3fa2c1
plan:
  description:
    - What the task does or, in check mode, would do. For V(present) - the paths, counts and bytes found, secrets
      left out, what was skipped. For V(restored) - the root, the entries to create, replace or leave unchanged,
      the bytes to write and the free space.
  returned: always
  type: dict
source:
  description: Repository folder of the file set's backups.
  returned: state=present
  type: str
location:
  description: Repository location of the new backup.
  returned: state=present
  type: str
raw_size:
  description: Bytes of the tar archive and the index before compression.
  returned: state=present
  type: int
size:
  description: Bytes in the repository once compressed (and encrypted).
  returned: state=present
  type: int
throughput_mb_s:
  description: MB (10^6 bytes) streamed into the repository per second.
  returned: state=present
  type: float
duration:
  description: Seconds of the task's work.
  returned: state=present, state=restored, state=verified
  type: float
statistics:
  description:
    - Counts of what the backup holds - C(files), C(directories), C(symlinks), C(hardlinks), C(sqlite), C(bytes) of
      file content, C(excluded_secrets), C(skipped), C(changed_while_read) and up to 20 C(changed_paths).
  returned: state=present
  type: dict
  sample: {files: 1200, directories: 40, symlinks: 2, hardlinks: 0, sqlite: 1, bytes: 73400320, excluded_secrets: 1,
           skipped: 0, changed_while_read: 0, changed_paths: []}
excluded_secrets:
  description: Up to 20 secret files left out (paths only).
  returned: state=present
  type: list
  elements: str
skipped:
  description: Up to 20 sockets, FIFOs and devices skipped, each with C(path) and C(reason).
  returned: state=present
  type: list
  elements: dict
artifacts:
  description: Files of the backup in the repository (the archive, the index, and the sealed key with a passphrase).
  returned: state=present
  type: list
  elements: dict
compression:
  description: How the artifacts were compressed (algorithm, level).
  returned: state=present
  type: dict
encryption:
  description: Recipients' fingerprints (never keys) when encrypted, else null.
  returned: state=present
  type: dict
retention:
  description: What retention kept and deleted.
  returned: state=present, state=absent
  type: dict
deleted:
  description: Backups deleted by retention.
  returned: state=absent
  type: list
  elements: str
cleaned_up:
  description: Leftovers of interrupted runs that were removed.
  returned: state=present, state=absent
  type: list
  elements: str
root:
  description: Directory the files were restored under (C(/) for their own places).
  returned: state=restored
  type: str
counts:
  description: Entries C(created), C(replaced), left C(unchanged), and whose C(attributes) alone were set.
  returned: state=restored
  type: dict
sqlite_checked:
  description: SQLite databases restored, each having passed C(integrity_check) before it was put in place.
  returned: state=restored
  type: list
  elements: str
owners_restored:
  description: Whether owners were restored (the task ran as root).
  returned: state=restored
  type: bool
repaired:
  description: V(rolled back) or V(finished) when a restore interrupted earlier was repaired first, else null.
  returned: state=restored
  type: str
artifacts_checked:
  description: Artifacts whose sha256 was proven before anything was read from them.
  returned: state=restored, state=verified
  type: list
  elements: str
verification:
  description: What was checked, when, and the result, as recorded in the repository.
  returned: state=verified
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._files import backup, restore
from ansible_collections.keel.ops.plugins.module_utils._files.selection import SQLITE_PATTERNS

ARGUMENT_SPEC = specs.merged(
    specs.AUDIT,
    specs.REPOSITORY, specs.ENCRYPTION, specs.RETENTION, specs.BACKUP,
    state=dict(type="str", choices=["present", "restored", "verified", "absent"], default="present"),
    paths=dict(type="list", elements="path"),
    include=dict(type="list", elements="str"),
    exclude=dict(type="list", elements="str"),
    include_secrets=dict(type="list", elements="str", no_log=False),
    sqlite_patterns=dict(type="list", elements="str", default=list(SQLITE_PATTERNS)),
    sqlite_timeout=dict(type="float", default=30),
    target=dict(type="path"),
    restore_paths=dict(type="list", elements="path"),
    replace=dict(type="bool", default=False),
    journal_dir=dict(type="path", default=restore.DEFAULT_JOURNAL_DIR),
)

ACTIONS = {"present": backup.backup, "restored": restore.restore, "verified": backup.verify, "absent": backup.prune}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[["state", "present", ["paths"]]],
                           required_one_of=[["paths", "source"]])
    lifecycle.run_module(module, "file_backup", backup.FileBackupConfig, ACTIONS)


if __name__ == "__main__":
    main()
