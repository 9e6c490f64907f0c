#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: redis_snapshot
short_description: Point-in-time Redis RDB snapshots to a local directory or S3, verified, and restores
version_added: 0.1.0
description:
  - V(present) takes a point-in-time RDB snapshot and streams it through compression (zstd by default), optional
    age encryption and sha256 into the repository - the one keel.ops.pg_backup uses, with the same layout, lock,
    retention and encryption options. The snapshot exists only once its manifest is written last; an interrupted
    run leaves nothing listed and the next run removes its leftovers.
  - O(snapshot_method=bgsave) runs C(BGSAVE) on the server (waiting out one already running, then taking its own),
    waits until it ended well (C(rdb_bgsave_in_progress:0), C(LASTSAVE) at or after the request,
    C(rdb_last_bgsave_status:ok)) and streams the RDB the server wrote (C(CONFIG GET dir) and C(dbfilename)),
    reading it while it is written. The module must run on the Redis host (or reach its files through
    O(docker_container)'s mounts).
  - A BGSAVE snapshot stores the RDB read from this host's disk only when it is proven to be the server's, not
    another server's that keeps its files at the same path here. Either the process on this host at the server
    end of the connection works in the RDB's directory (Redis saves in its working directory; this needs root or
    the redis user, and for TCP the Python library psutil), or the RDB carries a C(repl-id) that is the server's
    C(master_replid) (Redis writes one once a replica has connected, C(repl_backlog_active:1)). Otherwise the
    snapshot is refused before the C(BGSAVE), and an RDB whose C(repl-id) is another server's is refused before
    anything is stored; O(snapshot_method=replication) needs no such proof.
  - O(snapshot_method=replication) asks the server for a full resync over the replication protocol, as
    C(redis-cli --rdb) does, and streams the RDB it sends (disk-based or diskless); no access to the server's
    files is needed, so it runs from a backup host or the control node.
  - While it streams, the RDB is read by C(redis-check-rdb) (CRC64 checksum, structure, key totals); each
    database's key counts come from the RDB's own RESIZEDB records. The manifest records them, C(used_memory)
    and the Redis version from the RDB, and whether its checksum is valid, so a snapshot taken under writes is
    described exactly as it is.
  - V(restored) brings a snapshot (O(backup_id), C(latest), or the newest at or before O(before)) back into the
    server. Checksums and the decryption key are proven before anything is touched.
  - O(restore_method=keys) writes every key of the snapshot into the running server with C(DUMP)/C(RESTORE),
    pipelined, keeping TTLs, across all databases. The snapshot is read through a temporary redis-server (unix
    socket in a private directory, no persistence) that loads it from this module over the replication protocol,
    so the RDB is never written to disk. Keys that exist in the server are refused before anything is written,
    unless O(replace=true).
  - O(restore_method=file) writes the RDB beside the server's, checks it, stops the server through a hook
    (O(stop_command)/O(start_command), O(systemd_service) or O(docker_container)), keeps its current RDB and AOF as
    C(<name>.pre-restore-<time>), moves the new RDB into place atomically and starts the server. With
    C(appendonly yes) the server is started with AOF off (C(CONFIG SET) and C(CONFIG REWRITE) before the stop) so
    it loads the RDB, then AOF is switched back on, which rewrites the AOF from the loaded data, and written back
    to its config file. Afterwards the key counts are compared with the manifest.
  - O(restore_method=file) writes only into the directory the server loads from at its next start - O(data_dir),
    or the C(dir) of the config file it reports (C(INFO server) C(config_file), read as data; one with C(include)
    lines needs O(data_dir)) - and only when the running server (C(CONFIG GET dir), C(dbfilename) and, with AOF,
    C(appenddirname)/C(appendfilename)) agrees; the file names must be plain names inside it, and a symbolic link
    at the server's RDB or AOF path is refused. Every file it creates there is new (never written through a
    symlink), and the directory is synced after each rename.
  - Once the server has been stopped, any failure (a hook, a rename, a full disk, a signal such as the SIGTERM of
    a cancelled task) leads to starting it again - once more on the restored RDB if that was in place (a start
    that worked the second time ends the task well, with a warning), otherwise on its previous files, put back,
    with AOF back on in its config file - and the message says whether the server was left running on the
    restored data, running on its previous data, or stopped, and where the snapshot's RDB and the previous files
    are.
  - V(verified) proves a snapshot is sound - checksums, the RDB's validity and its key counts per database, by
    C(redis-check-rdb) (O(verify_method=check)) or by loading it into a temporary redis-server
    (O(verify_method=load)) - and records the result in the repository.
  - V(absent) applies retention without taking a snapshot.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.redis
  - keel.ops.attributes
  - keel.ops.repository
  - keel.ops.encryption
  - keel.ops.retention
  - keel.ops.backup
attributes:
  check_mode:
    support: full
    details:
      - Reports the plan (which server, which snapshot, what would be stopped, replaced or deleted) and touches
        nothing.
      - A check-mode V(restored) also proves the snapshot's checksums and that the key opens it, reading the
        whole snapshot, so it serves as a restore's pre-check; it places no hold in the repository.
  diff_mode:
    support: none
requirements:
  - zstandard (for zstd compression)
  - pyrage (for encryption)
  - boto3 (for S3 repositories)
  - docker (for O(docker_container))
  - psutil (for O(snapshot_method=bgsave) over TCP, to prove the RDB read is the server's)
  - A Redis 6.0 or newer binary (C(redis-server) or C(redis-check-rdb), from the redis-server or redis-tools
    packages) where the module runs, able to read the snapshot's RDB version; see O(redis_server_bin)
options:
  state:
    description:
      - V(present) takes a snapshot, then applies retention.
      - V(restored) restores a snapshot into the server.
      - V(verified) checks a snapshot and records the result.
      - V(absent) applies retention only.
    type: str
    choices: [present, restored, verified, absent]
    default: present
  snapshot_method:
    description:
      - V(bgsave) saves on the server and streams the RDB file it writes; the module runs on the Redis host.
      - V(replication) streams the RDB over the replication protocol; the module runs anywhere that reaches the
        server. The user needs the C(psync) and C(replconf) commands.
    type: str
    choices: [bgsave, replication]
    default: bgsave
  restore_method:
    description:
      - V(keys) restores every key into the running server (C(DUMP)/C(RESTORE)); other keys are left alone.
      - V(file) replaces the server's data with the snapshot's RDB, stopping and starting it through a hook.
    type: str
    choices: [keys, file]
    default: keys
  verify_method:
    description:
      - V(check) streams the RDB through C(redis-check-rdb).
      - V(load) loads it into a temporary redis-server and compares the loaded key counts with the manifest.
    type: str
    choices: [check, load]
    default: check
  source:
    description:
      - Name of the folder that groups this server's snapshots in the repository.
      - Defaults to C(<login_host>-<login_port>), or C(local-<socket name>) with O(login_unix_socket).
    type: str
  timeout:
    description:
      - Seconds to wait for a C(BGSAVE), for the server to send its RDB, to stop, start and load, and to rewrite its
        AOF; and for a temporary server to load a snapshot.
    type: float
    default: 1800
  replace:
    description:
      - With O(restore_method=keys), overwrite keys that exist in the server; without it, any such key fails the
        restore before anything is written, naming some of them.
      - With O(restore_method=file), allow replacing a server that holds keys (its RDB and AOF are kept as
        C(<name>.pre-restore-<time>)).
    type: bool
    default: false
  stop_command:
    description:
      - For O(restore_method=file), the command (argv list, no shell) that stops the server. It gets no password.
        Needs O(start_command).
    type: list
    elements: str
  start_command:
    description: The command (argv list, no shell) that starts the server again.
    type: list
    elements: str
  systemd_service:
    description: For O(restore_method=file), the systemd service to stop and start (C(systemctl stop/start)).
    type: str
  docker_container:
    description:
      - For O(restore_method=file), the container to stop and start through the Docker API. The server's C(dir)
        inside the container is found on this host through the container's mounts (also for
        O(snapshot_method=bgsave)).
    type: str
  docker_host:
    description: Docker API URL for O(docker_container); C(DOCKER_HOST) or the local socket when unset.
    type: str
  data_dir:
    description:
      - For O(restore_method=file), the server's data directory as this host sees it (with O(docker_container),
        the host side of its mount), instead of the C(dir) of its config file. Needed when the server runs without
        a config file, or with one that includes others.
      - The running server must agree (C(CONFIG GET dir)); the RDB and AOF names are the server's own.
    type: path
  redis_server_bin:
    description:
      - The Redis binary (C(redis-server) or C(redis-check-rdb), one executable) used to check RDBs and to run
        temporary servers. It must read the snapshot's RDB version and, for O(restore_method=keys), write none
        newer than the target server reads.
      - Unset, the server's own executable (C(INFO server), when the module runs on its host) is tried, then
        C(redis-server) and C(redis-check-rdb) on C(PATH).
    type: path
notes:
  - Memory stays flat whatever the data size - the RDB is streamed in 1 MiB chunks, never held whole;
    O(restore_method=keys) holds a few MB of commands, or the largest key. A temporary redis-server
    (O(restore_method=keys), O(verify_method=load)) holds the whole dataset in its own memory.
  - With C(repl-diskless-sync yes) (the default from Redis 7.0) the server waits C(repl-diskless-sync-delay) seconds
    (5 by default) for more replicas before it starts sending, as it does for C(redis-cli --rdb).
  - A snapshot taken from a replica is as good as one taken from its master, and spares the master the fork.
  - Snapshots can be restored into a server of the same or a newer version, not an older one (RDB versions only
    grow); this is checked before anything is touched.
seealso:
  - module: keel.ops.redis_snapshot_info
  - module: keel.ops.pg_backup
"""

EXAMPLES = r"""
- name: Nightly snapshot on the Redis host, encrypted, to S3, keeping 7 daily and 4 weekly
  keel.ops.redis_snapshot:
    login_password: "{{ vault_redis_password }}"
    repository: s3://acme-backups/redis
    s3_region: eu-west-1
    encryption_recipients:
      - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    keep_daily: 7
    keep_weekly: 4
    labels: {trigger: nightly}
  become: true

- name: Snapshot a remote server from the backup host, over TLS with an ACL user
  keel.ops.redis_snapshot:
    snapshot_method: replication
    login_host: cache1.example.internal
    login_port: 6380
    login_user: backup
    login_password: "{{ vault_redis_backup_password }}"
    tls: true
    ca_cert: /etc/ssl/internal-ca.pem
    repository: /srv/backups

- name: Prove last night's snapshot is sound (recorded in the repository)
  keel.ops.redis_snapshot:
    state: verified
    repository: s3://acme-backups/redis
    source: cache1.example.internal-6380
    decryption_identity_file: /etc/keel/backup.agekey

- name: Put back the keys of the snapshot taken before the incident, overwriting what is there
  keel.ops.redis_snapshot:
    state: restored
    restore_method: keys
    before: "2026-11-23T04:00:00Z"
    replace: true
    login_password: "{{ vault_redis_password }}"
    repository: /srv/backups

- name: Replace the whole dataset of a systemd-managed server with the latest snapshot
  keel.ops.redis_snapshot:
    state: restored
    restore_method: file
    systemd_service: redis-server
    replace: true
    login_password: "{{ vault_redis_password }}"
    repository: /srv/backups
  become: true
"""

RETURN = r"""
backup_id:
  description: The snapshot taken, restored or verified; ids sort by the time they were taken.
  returned: success
  type: str
  sample: 20261123T020000123Z-3fa2c1
plan:
  description: What the task does or, in check mode, would do - server, method, snapshot, hook, paths, key counts.
  returned: always
  type: dict
source:
  description: Repository folder of the server's snapshots.
  returned: state=present
  type: str
location:
  description: Repository location of the new snapshot.
  returned: state=present
  type: str
raw_size:
  description: Size of the RDB in bytes.
  returned: state=present
  type: int
size:
  description: Bytes in the repository once compressed (and encrypted).
  returned: state=present
  type: int
throughput_mb_s:
  description: MB (10^6 bytes) of RDB streamed into the repository per second.
  returned: state=present
  type: float
duration:
  description: Seconds from start to end of the task's work.
  returned: state=present, state=restored, state=verified
  type: float
statistics:
  description:
    - What the RDB says about itself - key counts per database (C(databases), with C(keys) and C(expires)),
      totals, C(used_memory), C(redis_version), C(rdb_version), C(checksum) (V(ok), or V(disabled) when the server
      saves without one) and which redis-check-rdb checked it.
  returned: state=present
  type: dict
  sample:
    keys: 1200
    expires: 40
    databases: {"0": {"keys": 1000, "expires": 40}, "3": {"keys": 200, "expires": 0}}
    used_memory: 2110344
    redis_version: 7.0.15
    rdb_version: 10
    checksum: ok
artifacts:
  description:
    - Files of the snapshot in the repository (the RDB, and the sealed key with a passphrase) with their sizes and
      sha256.
  returned: state=present
  type: list
  elements: dict
compression:
  description: How the RDB was compressed (algorithm, level).
  returned: state=present
  type: dict
encryption:
  description: age recipients' fingerprints and whether a passphrase opens it; null when not encrypted. Never a key.
  returned: state=present
  type: dict
retention:
  description: The retention run - whether a policy applied, the snapshots kept and why, those deleted.
  returned: state=present, state=absent
  type: dict
deleted:
  description: Ids of the snapshots retention removed.
  returned: state=absent
  type: list
  elements: str
cleaned_up:
  description: What interrupted runs had left behind and this run removed.
  returned: state=present, state=absent
  type: list
  elements: str
artifacts_checked:
  description: Artifacts whose size and sha256 were checked before the restore (in check mode too).
  returned: state=restored
  type: list
  elements: str
restored:
  description: Keys restored per database.
  returned: state=restored with restore_method=keys
  type: dict
expired_meanwhile:
  description: Keys of the snapshot whose TTL ran out before they could be restored.
  returned: state=restored with restore_method=keys
  type: int
previous_files:
  description: The server's former RDB and AOF, renamed to C(<name>.pre-restore-<time>) (C(-2), C(-3)... when that
    name is taken).
  returned: state=restored with restore_method=file
  type: list
  elements: str
verification:
  description: The key counts checked against the manifest, and for V(verified) the record written.
  returned: state=restored, state=verified
  type: dict
restore_duration:
  description:
    - Seconds of the restore itself (O(restore_method=file) from the stop on, the server's downtime), or of the
      check for V(verified).
  returned: state=restored, state=verified
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._redis import restore, snapshot

ARGUMENT_SPEC = specs.merged(
    specs.AUDIT,
    specs.REPOSITORY, specs.REDIS, specs.ENCRYPTION, specs.RETENTION, specs.BACKUP,
    state=dict(type="str", choices=["present", "restored", "verified", "absent"], default="present"),
    snapshot_method=dict(type="str", choices=["bgsave", "replication"], default="bgsave"),
    restore_method=dict(type="str", choices=["keys", "file"], default="keys"),
    verify_method=dict(type="str", choices=["check", "load"], default="check"),
    timeout=dict(type="float", default=1800),
    replace=dict(type="bool", default=False),
    stop_command=dict(type="list", elements="str"),
    start_command=dict(type="list", elements="str"),
    systemd_service=dict(type="str"),
    docker_container=dict(type="str"),
    docker_host=dict(type="str"),
    data_dir=dict(type="path"),
    redis_server_bin=dict(type="path"),
)

ACTIONS = {"present": snapshot.snapshot, "restored": restore.restore, "verified": snapshot.verify, "absent": snapshot.prune}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[["stop_command", "systemd_service", "docker_container"]],
                           required_together=[["stop_command", "start_command"]])
    lifecycle.run_module(module, "redis_snapshot", snapshot.RedisSnapshotConfig, ACTIONS)


if __name__ == "__main__":
    main()
