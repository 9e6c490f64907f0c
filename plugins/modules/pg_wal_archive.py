#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: pg_wal_archive
short_description: Continuous WAL archiving of a PostgreSQL server into a keel.ops backup repository
version_added: 0.2.0
description:
  - Installs C(keel-wal) on the database host (the engine files it needs, taken from this module itself, plus a
    launcher), writes its configuration file (mode 0600, owned by the server's user, holding the repository and
    its credentials), proves it works by running it as the server's user, then sets C(archive_mode) and
    C(archive_command) through C(ALTER SYSTEM) and reloads.
  - Every WAL file is compressed, optionally age-encrypted to O(encryption_recipients) (public keys only; the host
    never holds a private key), and stored under its sha256; it is acknowledged to PostgreSQL only once durable.
    Pushing a file already archived with the same content succeeds; one with other content is refused.
  - With O(async_push=true), the first push starts a detached worker that archives every segment PostgreSQL has
    marked ready, O(workers) at a time (up to O(batch) per scan), and marks each once it is durable; PostgreSQL's
    call for a marked segment returns at once. A busy server then does not wait for one interpreter per 16 MB
    segment. A segment the worker could not archive is archived by PostgreSQL's own call, whose error goes to the
    server log.
  - C(archive_mode) and C(wal_level) only change on a restart; the module reports RV(restart_required) and leaves
    the restart to the play (the C(keel.ops.pg_wal_archive) role has a handler for it).
  - V(absent) turns archiving off again (C(archive_mode=off) after a restart) and leaves the files in place.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.repository
  - keel.ops.postgres
  - keel.ops.encryption
attributes:
  check_mode:
    support: full
    details: Reports the files and settings that would change, touching nothing.
  diff_mode:
    support: none
requirements:
  - psycopg2, and on the database host zstandard, pyrage (for encryption) and boto3 (for S3)
notes:
  - Run it on the database host, as root (become) or as the server's user; the login role must be a superuser.
  - O(encryption_passphrase_file) is refused; O(decryption_identity_file) and O(decryption_passphrase_file) are
    not used here.
options:
  state:
    description: V(present) archives WAL through keel-wal; V(absent) stops archiving.
    type: str
    choices: [present, absent]
    default: present
  compression:
    description: How each WAL file is compressed.
    type: str
    choices: [zstd, gzip, none]
    default: zstd
  compression_level:
    description: Level of O(compression); unset means 1 for zstd and 6 for gzip.
    type: int
  command_directory:
    description: Where keel-wal is installed (an absolute path of plain characters; it is part of a shell command).
    type: path
    default: /usr/local/lib/keel-ops
  config_file:
    description: keel-wal's configuration file. Defaults to C(/etc/keel-ops/wal-<source>.json).
    type: path
  python:
    description: The interpreter the server's user runs keel-wal with. Defaults to the one running this module.
    type: path
  library_paths:
    description:
      - Directories the launcher puts first on C(sys.path), where O(python) finds zstandard, pyrage and boto3.
        Defaults to where this module's interpreter finds them.
    type: list
    elements: path
  os_user:
    description: The user the server runs as. Defaults to the owner of its data directory.
    type: str
  async_push:
    description: Archive ahead, in batches, from C(pg_wal/archive_status).
    type: bool
    default: false
  batch:
    description: With O(async_push), how many ready segments the worker takes up at a time.
    type: int
    default: 8
  workers:
    description: With O(async_push), how many segments are archived at once.
    type: int
    default: 2
  verify:
    description: After setting up (and when no restart is pending), switch WAL and wait until that segment is archived.
    type: bool
    default: true
  wal_timeout:
    description: Seconds O(verify) waits.
    type: float
    default: 60
"""

EXAMPLES = r"""
- name: Archive WAL into S3, encrypted, in batches
  keel.ops.pg_wal_archive:
    login_unix_socket: /var/run/postgresql
    login_user: postgres
    repository: s3://backups/prod
    s3_endpoint_url: https://s3.internal
    s3_access_key: "{{ vault_s3_access_key }}"
    s3_secret_key: "{{ vault_s3_secret_key }}"
    encryption_recipients: ["{{ backup_age_recipient }}"]
    async_push: true
  become: true
  register: archiving

- name: Restart to start archiving
  ansible.builtin.service:
    name: postgresql
    state: restarted
  become: true
  when: archiving.restart_required
"""

RETURN = r"""
archive_command:
  description: The archive_command set (it names keel-wal and its configuration file; it holds no secret).
  returned: state=present
  type: str
config_file:
  description: keel-wal's configuration file.
  returned: always
  type: str
restart_required:
  description: Whether archive_mode or wal_level wait for a restart.
  returned: always
  type: bool
pending_restart:
  description: The settings waiting for a restart.
  returned: always
  type: list
  elements: str
verified:
  description: The segment switched to and found in the archive, when O(verify) ran.
  returned: when verified
  type: dict
plan:
  description: The files and settings changed (or that would change in check mode).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._postgres import wal_setup


ARGUMENT_SPEC = specs.merged(
    specs.AUDIT,
    specs.REPOSITORY, specs.POSTGRES, specs.ENCRYPTION,
    state=dict(type="str", choices=["present", "absent"], default="present"),
    compression=dict(type="str", choices=["zstd", "gzip", "none"], default="zstd"),
    compression_level=dict(type="int"),
    command_directory=dict(type="path", default="/usr/local/lib/keel-ops"),
    config_file=dict(type="path"),
    python=dict(type="path"),
    library_paths=dict(type="list", elements="path"),
    os_user=dict(type="str"),
    async_push=dict(type="bool", default=False),
    batch=dict(type="int", default=8),
    workers=dict(type="int", default=2),
    verify=dict(type="bool", default=True),
    wal_timeout=dict(type="float", default=60),
)

ACTIONS = {"present": wal_setup.apply, "absent": wal_setup.apply}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    lifecycle.run_module(module, "pg_wal_archive", wal_setup.WalArchiveConfig, ACTIONS)


if __name__ == "__main__":
    main()
