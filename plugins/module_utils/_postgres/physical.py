# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical PostgreSQL backups for pg_physical_backup: base backups over the replication protocol into the
repository, the listing with WAL ranges and recoverable times, and retention of base backups and of the WAL
they need. Restores and verification are physical_restore.py's.

    <repo>/pgbase/<source>/<backup_id>/manifest.json    written last, once the WAL the backup needs is archived
    <repo>/pgbase/<source>/<backup_id>/base.tar.zst     pg_basebackup's tar stream (backup_manifest inside it)
    <repo>/pgbase/<source>/<backup_id>/<oid>.tar.zst    one per extra tablespace
    <repo>/pgwal/<source>/...                           the WAL archive (wal_archive.py)

Without extra tablespaces pg_basebackup streams one tar to stdout, straight into the pipeline: nothing is written
on the host it runs on. PostgreSQL only streams a single tar that way, so a cluster with tablespaces is received
into the private work directory first (plaintext when encryption is on: refused unless allowed).
"""

import datetime
import os
import shutil
import subprocess
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._backup.config import BackupConfig
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, parse_timestamp
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import policy_of, retention_configured
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import StorageError
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, PostgresError
from ansible_collections.keel.ops.plugins.module_utils._postgres import conninfo as pg_conninfo
from ansible_collections.keel.ops.plugins.module_utils._postgres import tarstream, wal
from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_archive import WalArchive


KIND = "pgbase"
TOOL = "keel.ops.pg_physical_backup"


class PhysicalConfig(BackupConfig):
    """Validated options of pg_physical_backup and pg_physical_backup_info."""

    @classmethod
    def from_params(cls, params):
        config = super(PhysicalConfig, cls).from_params(params)
        config.connection = pg_conninfo.Connection.from_params(params)
        if config.passphrase:
            raise ConfigError("physical backups encrypt to encryption_recipients only: WAL segments are pushed by "
                              "the server one by one and cannot each carry a passphrase-sealed key")
        for option in ("wal_timeout", "recovery_timeout"):
            if params.get(option) is not None and params[option] <= 0:
                raise ConfigError("%s must be a positive number of seconds, got %s" % (option, params[option]))
        return config

    def source_name(self):
        if self.source:
            return self.source
        host = self.connection.host or "local"
        return "%s-%s" % ("local" if host.startswith("/") else host, self.connection.port)


def repository(config, reporter=None):
    return lifecycle.open_repository(config.__dict__, KIND, config.source_name(), reporter)


def wal_archive(config, storage, identities=()):
    recipients = [recipient for _text, recipient in config.recipients]
    return WalArchive(storage, config.source_name(), algorithm=config.compression or "zstd",
                      level=config.compression_level, recipients=recipients, identities=identities)


def tool(config, name):
    """A server binary (pg_basebackup, postgres, pg_verifybackup) from bin_dir, or else from PATH."""
    path = os.path.join(config.bin_dir, name) if config.bin_dir else None
    if path and os.access(path, os.X_OK):
        return path
    found = shutil.which(name) if not config.bin_dir else None
    if not found:
        raise ConfigError("%s not found %s: install the PostgreSQL client tools of the server's major version or "
                          "set bin_dir" % (name, "in %s" % config.bin_dir if config.bin_dir else "on PATH"))
    return found


def server_facts(conn):
    """What a base backup records and checks about the server, read in one go."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version'), "
                       "(SELECT system_identifier::text FROM pg_control_system()), "
                       "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), current_setting('archive_mode'), "
                       "current_setting('wal_level'), current_setting('data_directory'), "
                       "(SELECT timeline_id FROM pg_control_checkpoint())")
        number, version, sysid, seg_size, archive_mode, wal_level, data_directory, timeline = cursor.fetchone()
        cursor.execute("SELECT oid::text, spcname, pg_tablespace_location(oid) FROM pg_tablespace "
                       "WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid")
        tablespaces = [{"oid": oid, "name": name, "location": location} for oid, name, location in cursor.fetchall()]
    return {"major": number // 10000, "version": version.split()[0], "system_identifier": sysid,
            "segment_size": int(seg_size), "archive_mode": archive_mode, "wal_level": wal_level,
            "data_directory": data_directory, "timeline": int(timeline), "tablespaces": tablespaces}


def check_archiving(facts):
    if facts["wal_level"] == "minimal":
        raise PostgresError("wal_level is minimal: a base backup needs replica or logical (and a restart)")
    if facts["archive_mode"] == "off":
        raise PostgresError("archive_mode is off: a base backup is only restorable with the WAL written while it "
                            "ran, so enable WAL archiving into this repository first (role keel.ops.pg_wal_archive "
                            "or module keel.ops.pg_wal_archive), then back up")


def basebackup_argv(tool, label, directory="-"):
    """pg_basebackup as tar, without WAL (the archive holds it), on a fast checkpoint, with its manifest."""
    return [tool, "--no-password", "--pgdata=" + directory, "--format=tar", "--wal-method=none",
            "--checkpoint=fast", "--manifest-checksums=CRC32C", "--label=" + label]


def _stream_base(run, argv, env):
    child = process.Child(argv, env, run.workdir, stdout=subprocess.PIPE)
    sniffer = tarstream.TarSniffer(child.proc.stdout)
    try:
        artifact = run.store("base.tar", sniffer, kind="base")
        child.finish()
    except BaseException:
        child.kill()
        raise
    return artifact, sniffer


def _staged_base(run, argv, env, tablespaces):
    """pg_basebackup into the work directory (one tar per tablespace), then each tar into the repository."""
    folder = os.path.join(run.workdir, "base")
    process.Child(argv[:2] + ["--pgdata=" + folder] + argv[3:], env, run.workdir).finish()
    with open(os.path.join(folder, "base.tar"), "rb") as handle:
        sniffer = tarstream.TarSniffer(handle)
        artifact = run.store("base.tar", sniffer, kind="base")
    manifest = os.path.join(folder, "backup_manifest")  # beside the tars, not in base.tar, in this mode
    with open(manifest, "rb") as handle:
        run.store("backup_manifest", handle, kind="manifest")
    with open(manifest, "rb") as handle:
        handle.seek(max(0, os.path.getsize(manifest) - tarstream.CAPTURE_LIMIT))
        sniffer.captured["backup_manifest"] = handle.read()
    for space in tablespaces:
        with open(os.path.join(folder, "%s.tar" % space["oid"]), "rb") as handle:
            run.store("%s.tar" % space["oid"], handle, kind="tablespace", tablespace=space)
        os.unlink(os.path.join(folder, "%s.tar" % space["oid"]))
    return artifact, sniffer


def wait_for_wal(archive, timeline, start_lsn, end_lsn, segment_size, timeout):
    """Wait until the archive holds every segment from the backup's start to its end: only then can the backup be
    restored, so only then is its manifest written."""
    deadline = time.monotonic() + timeout
    first, last = wal.segment_of(start_lsn, segment_size), wal.segment_of(end_lsn, segment_size)
    while True:
        present = set(wal.parse_segment(item.name, segment_size) for item in archive.files()["segment"])
        missing = [wal.segment_name(timeline, segno, segment_size) for segno in range(first, last + 1)
                   if (timeline, segno) not in present]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise PostgresError(
                "the base backup finished, but WAL segment %s it needs was not archived into %s within wal_timeout "
                "(%ds): check archive_command and pg_stat_archiver on the server; the backup was not kept"
                % (missing[0], archive.describe(), timeout))
        time.sleep(0.2)


def _take(run, tools, facts, conn_env):
    config = run.config
    label = "keel.ops %s" % run.backup_id
    argv = basebackup_argv(tools, label)
    if facts["tablespaces"]:
        if config.encrypted and not config.allow_plaintext_staging:
            raise ConfigError("this cluster has tablespaces (%s), which pg_basebackup only writes to files: they "
                              "would sit in plaintext in the work directory before encryption. Set "
                              "allow_plaintext_staging: true to accept that, or back up from a host whose disk is "
                              "trusted" % ", ".join(space["name"] for space in facts["tablespaces"]))
        artifact, sniffer = _staged_base(run, argv, conn_env, facts["tablespaces"])
    else:
        artifact, sniffer = _stream_base(run, argv, conn_env)
    label_fields = tarstream.parse_backup_label(sniffer.text("backup_label"))
    ranges = tarstream.manifest_wal_ranges(sniffer.text("backup_manifest"))
    if not ranges:
        raise PostgresError("the base backup's backup_manifest names no WAL range: pg_basebackup %s did not write "
                            "one" % tools)
    timeline, start, end = ranges[-1][0], wal.parse_lsn(ranges[0][1]), wal.parse_lsn(ranges[-1][2])
    storage = run.repo.storage
    archive = wal_archive(config, storage)
    archive.claim(facts["system_identifier"], facts["segment_size"])
    wait_for_wal(archive, timeline, start, end, facts["segment_size"], config.wal_timeout or 120)
    seg = facts["segment_size"]
    statistics = {"timeline": timeline, "start_lsn": wal.format_lsn(start), "end_lsn": wal.format_lsn(end),
                  "start_wal": wal.segment_name(timeline, wal.segment_of(start, seg), seg),
                  "end_wal": wal.segment_name(timeline, wal.segment_of(end, seg), seg),
                  "start_time": label_fields.get("START TIME"), "tablespaces": facts["tablespaces"],
                  "raw_size": sum(a.get("raw_size", 0) for a in run.artifacts)}
    artifact["database_size"] = artifact["raw_size"]
    return run.manifest(KIND, "tar", statistics=statistics, tool_details={"pg_basebackup": tools},
                        source={"host": config.connection.host, "port": config.connection.port,
                                "server_version": facts["version"], "major": facts["major"],
                                "system_identifier": facts["system_identifier"],
                                "segment_size": facts["segment_size"], "data_directory": facts["data_directory"]})


def backup(config, reporter):
    """state=present: a base backup, kept once the WAL it needs is archived; then retention of backups and WAL."""
    basebackup = tool(config, "pg_basebackup")
    conn = config.connection.connect()
    try:
        facts = server_facts(conn)
    finally:
        conn.close()
    check_archiving(facts)
    repo = repository(config, reporter)
    plan = {"source": repo.source, "repository": repo.describe(), "server_version": facts["version"],
            "system_identifier": facts["system_identifier"], "tablespaces": [t["name"] for t in facts["tablespaces"]],
            "streamed": not facts["tablespaces"]}
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=None, msg="would take a base backup of %s into %s"
                    % (config.connection.describe(), repo.describe()))
    run = lifecycle.BackupRun(config, reporter, repo, TOOL)

    def take(run):
        return _take(run, basebackup, facts, config.connection.child_env(run.workdir))

    manifest = lifecycle.run_backup(run, take)
    result = run.result(manifest, plan)
    result["wal"] = expire_wal(config, repo, reporter)
    result["msg"] = "base backup %s of %s: %d bytes stored in %.1fs" % (
        manifest["id"], config.connection.describe(), result["size"], manifest["duration"])
    return result


def expire_wal(config, repo, reporter, dry_run=False):
    """Delete the WAL no kept base backup needs: everything before the oldest kept backup's first segment. Without
    a retention policy, or without any backup, nothing is deleted."""
    if not retention_configured(policy_of(config)):
        return {"expired": [], "kept_from": None}
    backups = repo.list()
    if not backups:
        return {"expired": [], "kept_from": None}
    oldest = backups[-1].manifest
    seg = oldest["source"]["segment_size"]
    keep_from = wal.parse_segment(oldest["statistics"]["start_wal"], seg)[1]
    try:
        expired = wal_archive(config, repo.storage).expire(keep_from, seg, dry_run=dry_run)
    except StorageError as error:
        reporter.warn("WAL expiry was skipped: %s" % error)
        expired = []
    return {"expired": expired, "kept_from": oldest["statistics"]["start_wal"]}


def prune(config, reporter):
    """state=absent: retention of base backups, then of the WAL that only the deleted ones needed."""
    repo = repository(config, reporter)
    result = lifecycle.prune(repo, config, reporter, noun="base backups")
    result["wal"] = expire_wal(config, repo, reporter, dry_run=reporter.check_mode)
    result["changed"] = result["changed"] or bool(result["wal"]["expired"])
    return result


def describe(config, reporter):
    """pg_physical_backup_info: base backups with their WAL ranges, the archive's continuity from each, and the
    earliest and latest points a restore can reach."""
    repo = repository(config, reporter)
    backups = repo.list()
    archive = wal_archive(config, repo.storage)
    files = archive.files()
    info = archive.info()
    listed = []
    for backup in backups:
        stats, source = backup.manifest["statistics"], backup.manifest["source"]
        continuity = archive.continuity(stats["timeline"], wal.parse_lsn(stats["start_lsn"]), source["segment_size"],
                                        files)
        listed.append(dict(backup.summary(), timeline=stats["timeline"], start_lsn=stats["start_lsn"],
                           end_lsn=stats["end_lsn"], start_wal=stats["start_wal"], end_wal=stats["end_wal"],
                           consistent_at=backup.manifest["finished"], wal=continuity))
    newest_change = archive.newest_change() if files["segment"] else None
    since = parse_timestamp(config.since, "since") if getattr(config, "since", None) else None
    if since is not None:
        listed = [entry for entry in listed if parse_timestamp(entry["time"], "time") >= since]
    gaps = [entry["wal"]["missing"][0] for entry in listed if entry["wal"]["missing"]]
    for entry in listed[:1]:
        if entry["wal"]["missing"]:
            reporter.warn("WAL segment %s is missing from the archive: a restore from backup %s cannot replay past "
                          "%s" % (entry["wal"]["missing"][0], entry["backup_id"], entry["wal"]["unbroken_until"]))
    return dict(changed=False, backups=listed, count=len(listed), archive=info,
                wal_segments=len(files["segment"]), timelines=sorted(set(wal.timeline_of(i.name)
                                                                         for i in files["segment"])),
                earliest_recoverable=listed[-1]["consistent_at"] if listed else None,
                latest_archived=isoformat(utcfromtimestamp(newest_change)) if newest_change else None,
                latest_archived_epoch=int(newest_change) if newest_change else None,
                latest_segment=max((i.name for i in files["segment"]), default=None),
                gaps=gaps, healthy=bool(listed) and not gaps)


def utcfromtimestamp(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
