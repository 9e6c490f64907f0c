#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: backup_copy
short_description: Copy backups to a second repository (offsite) as they are stored, every checksum proven
version_added: 0.1.0
description:
  - Copies backups of one kind (PostgreSQL, Redis or file sets) from O(repository) to O(to_repository) - local to
    S3, S3 to S3, or any other pair - byte for byte as they are stored, compressed and encrypted. Nothing is
    decrypted, so no key is needed and none is exposed where the copy runs.
  - Every artifact is streamed in bounded memory and made visible at the destination only once its size and
    sha256 are those of the manifest; one flipped byte refuses the artifact and the backup. The manifest (and its
    signature, when the source signs, so the copy proves its origin the same way) is written last, under the
    destination's lock for that source, so the copy exists whole or not at all, and the next run removes what an
    interrupted one left.
  - A backup the destination already holds (same id, same artifacts) is left alone; the same id with other
    artifacts is an error. Running the task again copies only what is missing.
  - With a O(trusted_signing_keys) policy, a source manifest without a valid signature is never copied.
  - Retention (O(keep_last), O(keep_daily), ...) applies to the destination, by its own policy, after the copy; it
    never deletes a backup this run copied.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.repository
  - keel.ops.retention
attributes:
  check_mode:
    support: full
    details:
      - Reports which backups would be copied and what retention would delete at the destination, and copies
        nothing.
  diff_mode:
    support: none
requirements:
  - boto3 (for S3 repositories)
options:
  kind:
    description: Which backups - V(postgres) (keel.ops.pg_backup), V(redis) (keel.ops.redis_snapshot) or V(files)
      (keel.ops.file_backup).
    type: str
    required: true
    choices: [postgres, redis, files]
  source:
    description:
      - The source folder whose backups are copied (as the backup module named it). Unset, every source of
        O(kind) in O(repository).
    type: str
  backup_id:
    description:
      - Which backups - an id, V(latest) (the newest, or the newest at or before O(before)), or V(all) (every
        backup of the source that the destination lacks).
    type: str
    default: latest
  before:
    description: With O(backup_id=latest), the newest backup taken at or before this ISO 8601 time.
    type: str
  to_repository:
    description: The repository copied to - a local directory or C(s3://bucket/prefix) - in the same layout.
    type: str
    required: true
  to_s3_endpoint_url:
    description: Endpoint of the destination's S3-compatible service; AWS when unset.
    type: str
  to_s3_region:
    description: Region of the destination bucket.
    type: str
  to_s3_access_key:
    description: Access key for the destination; unset uses boto3's usual chain.
    type: str
  to_s3_secret_key:
    description: Secret key for the destination; never logged or returned.
    type: str
  to_s3_session_token:
    description: Session token for temporary credentials at the destination.
    type: str
  to_s3_profile:
    description: Named profile from the AWS configuration files for the destination.
    type: str
  to_s3_storage_class:
    description: Storage class of the copies, for example C(GLACIER_IR) for an archive copy.
    type: str
  to_s3_sse:
    description: Server-side encryption of the copies.
    type: str
    choices: [AES256, aws:kms]
  to_s3_sse_kms_key_id:
    description: KMS key for O(to_s3_sse=aws:kms).
    type: str
  to_s3_validate_certs:
    description: Verify the destination endpoint's TLS certificate.
    type: bool
    default: true
notes:
  - The O(signing_key_file) option is not used - copies keep the signatures the source wrote.
  - Verification records (C(verified.json)) are not copied; verify the copy at its destination to record one there.
seealso:
  - module: keel.ops.pg_backup
  - module: keel.ops.redis_snapshot
  - module: keel.ops.file_backup
"""

EXAMPLES = r"""
- name: Copy last night's database backups from the local repository to S3
  keel.ops.backup_copy:
    kind: postgres
    backup_id: all
    repository: /srv/backups
    to_repository: s3://acme-offsite/backups
    to_s3_region: eu-central-1
    to_s3_storage_class: STANDARD_IA
    keep_daily: 30
    keep_monthly: 12

- name: Second region copy of the file set backups, S3 to S3
  keel.ops.backup_copy:
    kind: files
    source: app1-data
    repository: s3://acme-backups/files
    s3_region: eu-west-1
    to_repository: s3://acme-dr/files
    to_s3_region: us-east-1
"""

RETURN = r"""
copied:
  description: Ids of the backups copied (or that would be, in check mode).
  returned: success
  type: list
  elements: str
deleted:
  description: Ids retention deleted at the destination.
  returned: success
  type: list
  elements: str
bytes:
  description: Bytes copied.
  returned: success
  type: int
destination:
  description: The destination repository (without credentials).
  returned: success
  type: str
sources:
  description:
    - Per source - C(source), C(copied), C(present) (already at the destination), C(bytes), the destination's
      C(retention), and C(cleaned_up) (leftovers of interrupted copies removed).
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import copy, lifecycle

ARGUMENT_SPEC = specs.merged(
    specs.AUDIT,
    specs.REPOSITORY, specs.DESTINATION, specs.RETENTION,
    kind=dict(type="str", required=True, choices=["postgres", "redis", "files"]),
    backup_id=dict(type="str", default="latest"),
    before=dict(type="str"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    lifecycle.run_module(module, "backup_copy", copy.CopyConfig, {"present": copy.copy_backups})


if __name__ == "__main__":
    main()
