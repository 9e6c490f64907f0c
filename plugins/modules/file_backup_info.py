#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: file_backup_info
short_description: List the file set backups in a repository, newest first, and warn when they are too old
version_added: 0.1.0
description:
  - Lists complete backups (those whose manifest exists) of one or every file set in a repository, newest first,
    with id, time, size, the paths they hold, counts of files, directories, symbolic links and SQLite databases,
    compression, encryption and when each was last verified.
  - Warns (and reports C(stale=true)) when the newest backup is older than O(max_age).
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.attributes
  - keel.ops.attributes.read_only
  - keel.ops.repository
  - keel.ops.info
seealso:
  - module: keel.ops.file_backup
"""

EXAMPLES = r"""
- name: Fail the morning check when the newest backup of the data directory is older than 26 hours
  keel.ops.file_backup_info:
    repository: s3://acme-backups/files
    source: app1-data
    max_age: 26
  register: backups
  failed_when: backups.stale
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
      description: Source details from the manifest (name, host, paths, include, exclude).
      type: dict
    paths:
      description: The paths the backup was taken of.
      type: list
      elements: str
    size:
      description: Bytes stored.
      type: int
    files:
      description: Regular files stored (SQLite databases included).
      type: int
    directories:
      description: Directories stored.
      type: int
    symlinks:
      description: Symbolic links stored.
      type: int
    sqlite:
      description: SQLite databases stored as online backup copies.
      type: int
    bytes:
      description: Bytes of file content before compression.
      type: int
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
  description: Whether O(max_age) is set and the newest backup is older, or there is none.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._files.backup import describe_backups

ARGUMENT_SPEC = specs.merged(specs.REPOSITORY, specs.INFO_FILTERS)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    with module_failures(module, "file_backup_info"):
        module.exit_json(changed=False, **describe_backups(module.params, Reporter(warn=module.warn)))


if __name__ == "__main__":
    main()
