# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a base backup to a point in time, and verifying one: the backup a target needs, the checks made
before anything is touched, the data directory built beside the old one, recovery run there on a private
socket, and the swap once PostgreSQL reports where replay stopped.

    1. choose the backup the target needs; prove its artifacts' checksums and the key; check the WAL archive
       from the backup's start (a gap before the target is refused here, with the missing segment's name)
    2. unpack into <parent>/.keel-restore-<id> (0700, owned by the server's user)
    3. run recovery there: postgres on a socket in the private work directory, no TCP port, restore_command
       fetching through keel-wal, the target and promote given as -c options (nothing left in the config files)
    4. once promoted, stop it cleanly and read from its log where replay stopped
    5. move the old data directory aside (kept) and the new one into place
"""

import datetime
import os
import pwd
import re
import shutil
import subprocess
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._backup import encoding, lifecycle, pipeline
from ansible_collections.keel.ops.plugins.module_utils._backup.config import VERSION, read_text, s3_options
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, parse_timestamp, utcnow
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import BackupNotFound
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, PostgresError, first_line
from ansible_collections.keel.ops.plugins.module_utils._postgres import physical, tarstream, wal, wal_command, wal_install


TARGETS = ("latest", "immediate", "time", "lsn", "name")
PREFETCH = 8  # segments keel-wal fetches ahead of replay
READY = "database system is ready to accept connections"
_REPORT_LINES = (
    ("stopped", re.compile(r"recovery stopping (?:before|after) .*")),
    ("last_transaction", re.compile(r"last completed transaction was at log time (.*)")),
    ("redo_done", re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")),
    ("consistent_at", re.compile(r"consistent recovery state reached at ([0-9A-F]+/[0-9A-F]+)")),
    ("new_timeline", re.compile(r"selected new timeline ID: (\d+)")),
)


def target_of(params):
    """The recovery target the options name, checked: {'type': ..., 'value': ..., 'inclusive': bool}."""
    kind = params.get("target") or "latest"
    if kind not in TARGETS:
        raise ConfigError("target must be one of %s, got %r" % (", ".join(TARGETS), kind))
    values = {"time": params.get("target_time"), "lsn": params.get("target_lsn"), "name": params.get("target_name")}
    given = [name for name, value in values.items() if value]
    if kind in values and not values[kind]:
        raise ConfigError("target: %s needs target_%s" % (kind, kind))
    if [name for name in given if name != kind]:
        raise ConfigError("target_%s only applies with target: %s (target is %s)" % (given[0], given[0], kind))
    target = {"type": kind, "value": values.get(kind), "inclusive": params.get("target_inclusive", True)}
    if kind == "time":
        target["moment"] = parse_timestamp(values["time"], "target_time")
        # PostgreSQL's own timestamp syntax, to the microsecond: a target between two commits a few ms apart is exact.
        target["value"] = target["moment"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    if kind == "lsn":
        target["position"] = wal.parse_lsn(values["lsn"], "target_lsn")
    if kind == "name" and (len(values["name"]) > 63 or "\0" in values["name"]):
        raise ConfigError("target_name must be a restore point name of at most 63 characters")
    return target


def choose_backup(backups, target, backup_id=None):
    """The base backup a target needs: the one named, else the newest one that was consistent before the target
    (a time or LSN before a backup's end cannot be reached from it). `backups` newest first."""
    if backup_id and backup_id != "latest":
        chosen = [backup for backup in backups if backup.id == backup_id]
        if not chosen:
            raise BackupNotFound("no base backup %s" % backup_id)
        return chosen[0]
    if not backups:
        raise BackupNotFound("there is no base backup to restore from")
    if target["type"] == "time":
        usable = [b for b in backups if parse_timestamp(b.manifest["finished"], "finished") <= target["moment"]]
        if not usable:
            raise BackupNotFound("no base backup was complete by %s: the earliest point a restore can reach is "
                                 "%s" % (target["value"], backups[-1].manifest["finished"]))
        return usable[0]
    if target["type"] == "lsn":
        usable = [b for b in backups if wal.parse_lsn(b.manifest["statistics"]["end_lsn"]) <= target["position"]]
        if not usable:
            raise BackupNotFound("no base backup ends at or before LSN %s: the earliest is %s"
                                 % (wal.format_lsn(target["position"]), backups[-1].manifest["statistics"]["end_lsn"]))
        return usable[0]
    return backups[0]


def check_wal(archive, backup, target):
    """The archive's continuity from the backup: a segment missing before the backup is consistent is fatal;
    one missing before a 'latest' or LSN target would end replay early and silently, so it is refused too. A time
    or name target past a gap is caught by PostgreSQL itself (recovery ends before the target) and reported."""
    stats, segment_size = backup.manifest["statistics"], backup.manifest["source"]["segment_size"]
    continuity = archive.continuity(stats["timeline"], wal.parse_lsn(stats["start_lsn"]), segment_size)
    end_segno = wal.segment_of(wal.parse_lsn(stats["end_lsn"]), segment_size)
    for name in continuity["missing"]:
        segno = wal.parse_segment(name, segment_size)[1]
        if segno <= end_segno:
            raise PostgresError("WAL segment %s, which backup %s needs to become consistent, is missing from the "
                                "archive %s: that backup cannot be restored" % (name, backup.id, archive.describe()))
        if target["type"] == "latest" or (target["type"] == "lsn"
                                          and wal.segment_of(target["position"], segment_size) >= segno):
            raise PostgresError("WAL segment %s is missing from the archive %s (gap after %s): replay would stop "
                                "there, before the %s target; choose a target before the gap (target: time, lsn or "
                                "immediate) or restore the missing segment"
                                % (name, archive.describe(), continuity["unbroken_until"], target["type"]))
    return continuity


def owner_of(config):
    """(uid, gid, name) of the user the restored server runs as."""
    if config.owner:
        try:
            entry = pwd.getpwnam(config.owner)
        except KeyError:
            raise ConfigError("owner: no user %r on this host" % config.owner)
    else:
        folder = config.data_directory if os.path.exists(config.data_directory) else \
            os.path.dirname(config.data_directory.rstrip("/"))
        entry = pwd.getpwuid(os.stat(folder).st_uid)
    if entry.pw_uid == 0:
        raise ConfigError("PostgreSQL does not run as root: give owner, the user the server runs as (postgres)")
    if os.geteuid() not in (0, entry.pw_uid):
        raise ConfigError("the restore runs as uid %d but the server's user is %s: run it as root (become) or as %s"
                          % (os.geteuid(), entry.pw_name, entry.pw_name))
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def _running_pid(data_directory):
    try:
        with open(os.path.join(data_directory, "postmaster.pid")) as handle:
            pid = int(handle.readline().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def check_data_directory(config):
    """What the restore will do to the data directory: 'create', or 'replace' (only with replace: true, and
    never while a server runs there)."""
    path = config.data_directory
    if not os.path.isabs(path):
        raise ConfigError("data_directory must be an absolute path, got %r" % path)
    if not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path)):
        return "create"
    if not config.replace:
        raise ConfigError("data_directory %s is not empty: set replace: true to restore beside it and move it "
                          "aside (it is kept as %s.keel-previous-<time>)" % (path, path))
    pid = _running_pid(path)
    if pid:
        raise PostgresError("a server (pid %d) is running on %s: stop it before replacing its data directory" % (pid, path))
    return "replace"


class Recovery:
    """One run of PostgreSQL over a restored data directory, on a socket in a private directory."""

    def __init__(self, config, bin_dir_tool, data, workdir, owner, target, archive_mode):
        self.config, self.data, self.workdir, self.owner = config, data, workdir, owner
        self.postgres, self.target, self.archive_mode = bin_dir_tool, target, archive_mode
        self.log_path = os.path.join(workdir, "recovery.log")
        self.proc = None

    def argv(self, restore_command):
        options = {"listen_addresses": "", "port": "5432", "unix_socket_directories": self.workdir,
                   "logging_collector": "off", "log_destination": "stderr", "lc_messages": "C",
                   "restore_command": restore_command, "recovery_target_action": "promote",
                   "recovery_target_timeline": str(self.timeline or "latest"),
                   "hba_file": os.path.join(self.workdir, "pg_hba.conf"),
                   "ident_file": os.path.join(self.workdir, "pg_ident.conf"), "hot_standby": "on"}
        if not self.archive_mode:
            options["archive_mode"] = "off"
        kind = self.target["type"]
        if kind == "immediate":
            options["recovery_target"] = "immediate"
        elif kind in ("time", "lsn", "name"):
            options["recovery_target_" + kind] = self.target["value"]
            options["recovery_target_inclusive"] = "on" if self.target["inclusive"] else "off"
        argv = [self.postgres, "-D", self.data]
        for name, value in sorted(options.items()):
            argv += ["-c", "%s=%s" % (name, value)]
        return argv

    def start(self, restore_command):
        # Trust on the socket only: it lives in the 0700 work directory of the server's user.
        for path, content in ((os.path.join(self.workdir, "pg_hba.conf"), "local all all trust\n"),
                              (os.path.join(self.workdir, "pg_ident.conf"), ""),
                              (os.path.join(self.data, "recovery.signal"), "")) + self._missing_config():
            with open(path, "w") as handle:
                handle.write(content)
            os.chown(path, self.owner[0], self.owner[1])
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(restore_command), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.data, env=_server_env(), **_as_user(self.owner))
        finally:
            log.close()

    def _missing_config(self):
        """A cluster whose configuration lives elsewhere (Debian's /etc/postgresql) has none in its data
        directory; recovery runs on the defaults and the -c options above, and the file stays empty."""
        path = os.path.join(self.data, "postgresql.conf")
        return () if os.path.exists(path) else ((path, ""),)

    def wait_promoted(self, timeout):
        """Until the log says the server accepts connections (recovery over, promoted), or it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if READY in text.replace("read-only connections", ""):
                return
            if self.proc.poll() is not None:
                raise PostgresError("recovery failed, PostgreSQL exited with status %d: %s%s"
                                    % (self.proc.returncode, self.failure(text), self.gap_hint()))
            time.sleep(0.1)
        self.stop()
        raise PostgresError("recovery did not finish within recovery_timeout (%ds); its log: %s"
                            % (self.config.recovery_timeout, self.failure(self.log_text())))

    gap = timeline = None

    def gap_hint(self):
        return "; %s" % self.gap if self.gap else ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown, which still writes the shutdown checkpoint
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @staticmethod
    def failure(text):
        lines = [line for line in text.splitlines() if "FATAL" in line or "PANIC" in line or "ERROR" in line]
        return " / ".join(lines[-3:]) or text.strip()[-600:] or "no output"

    def report(self):
        """Where replay stopped, in PostgreSQL's own words."""
        text = self.log_text()
        found = {}
        for key, pattern in _REPORT_LINES:
            matches = pattern.findall(text) if pattern.groups else [m.group(0) for m in pattern.finditer(text)]
            found[key] = matches[-1].strip() if matches else None
        return found


def _server_env():
    return dict((k, v) for k, v in os.environ.items() if not k.startswith("PG") and k not in ("LC_ALL", "LANG"))


def _as_user(owner):
    if os.geteuid() == owner[0]:
        return {}
    return {"user": owner[0], "group": owner[1], "extra_groups": [], "umask": 0o077}


def _fetch_setup(config, workdir, owner, backup_source):
    """keel-wal and its fetch configuration in the private work directory, readable by the server's user only:
    the restore_command of this recovery. The decryption key is copied next to it for the same reason (the
    server's user may not read the original), and removed with the directory."""
    directory = os.path.join(workdir, "keel-wal")
    python = config.python or wal_install.interpreter()
    wal_install.install(directory, python, wal_install.library_paths())
    fetch_config = {"repository": config.repository, "source": backup_source,
                    "s3": s3_options(config.__dict__), "prefetch": PREFETCH}
    if config.decryption_identity_file:
        key = os.path.join(workdir, "identity.txt")
        wal_install.write_atomically(key, read_text(config.decryption_identity_file, "decryption_identity_file"),
                                     0o600, owner[:2])
        fetch_config["decryption_identity_file"] = key
    path = os.path.join(workdir, "keel-wal.json")
    wal_install.write_config(path, fetch_config, owner[:2])
    return wal_install.command_line(python, directory, "fetch", path)


def _stage(config, backup):
    parent = os.path.dirname(config.data_directory.rstrip("/")) or "/"
    if not os.path.isdir(parent):
        raise ConfigError("the parent of data_directory, %s, does not exist" % parent)
    return os.path.join(parent, ".keel-restore-%s" % backup.id)


def tablespace_locations(backup, mapping):
    """{oid: where the tablespace is restored}: its recorded location unless `mapping` (by name or old location)
    moves it. Each must be empty or absent; checked before anything is unpacked."""
    locations = {}
    for space in backup.manifest["statistics"].get("tablespaces") or []:
        target = (mapping or {}).get(space["name"]) or (mapping or {}).get(space["location"]) or space["location"]
        if not os.path.isabs(target):
            raise ConfigError("tablespace_mapping: %s must map to an absolute path, got %r" % (space["name"], target))
        if os.path.exists(target) and os.listdir(target):
            raise ConfigError("tablespace %s would be restored into %s, which is not empty: empty it, or give "
                              "tablespace_mapping: {%s: /an/empty/directory}" % (space["name"], target, space["name"]))
        locations[space["oid"]] = target
    return locations


def _unpack(repo, backup, identities, root, owner, locations):
    """Storage -> decrypt -> decompress -> tar, on two threads joined by a pipe (the pipeline pushes, tarfile
    pulls); each tablespace into its location, and tablespace_map rewritten to name it (PostgreSQL makes the
    pg_tblspc links from that file when recovery starts)."""
    unpacked = {"files": 0, "bytes": 0}
    for artifact in backup.manifest["artifacts"]:
        if artifact["kind"] == "key":
            continue
        if artifact["kind"] == "manifest":  # a staged backup keeps backup_manifest beside its tars
            path = os.path.join(root, "backup_manifest")
            with open(path, "wb") as handle:
                encoding.stream_into(repo, backup, artifact, identities, handle)
            os.chmod(path, 0o600)
            os.chown(path, owner[0], owner[1])
            continue
        target = root
        if artifact["kind"] == "tablespace":
            target = locations[artifact["tablespace"]["oid"]]
            os.makedirs(target, 0o700, exist_ok=True)
            os.chown(target, owner[0], owner[1])
        files, size = _unpack_artifact(repo, backup, artifact, identities, target, owner)
        unpacked["files"] += files
        unpacked["bytes"] += size
    if locations:
        path = os.path.join(root, "tablespace_map")
        with open(path, "w") as handle:
            handle.write("".join("%s %s\n" % (oid, location) for oid, location in sorted(locations.items())))
        os.chown(path, owner[0], owner[1])
        for oid, location in locations.items():  # for pg_verifybackup; PostgreSQL remakes them from the map
            link = os.path.join(root, "pg_tblspc", oid)
            os.symlink(location, link)
            os.lchown(link, owner[0], owner[1])
    return unpacked


def _unpack_artifact(repo, backup, artifact, identities, target, owner):
    import threading

    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "rb", buffering=pipeline.CHUNK)
    writer = os.fdopen(write_end, "wb", buffering=0)
    failure = []

    def produce():
        try:
            encoding.stream_into(repo, backup, artifact, identities, writer)
        except BaseException as error:  # pylint: disable=broad-except  # re-raised on the main thread
            failure.append(error)
        finally:
            writer.close()

    thread = threading.Thread(target=produce, name="keel-restore-stream")
    thread.daemon = True
    thread.start()
    try:
        result = tarstream.unpack(reader, target, owner[:2])
    except BaseException:
        reader.close()
        thread.join()
        if failure:
            raise failure[0]
        raise
    reader.close()
    thread.join()
    if failure:
        raise failure[0]
    return result


def _verify_files(config, root, workdir, remapped=False):
    """pg_verifybackup against the backup_manifest pg_basebackup wrote: every file's size and CRC. A
    tablespace_map this restore rewrote (tablespaces moved) is the one file left out."""
    try:
        tool = physical.tool(config, "pg_verifybackup")
    except ConfigError:
        return {"checked": False, "reason": "pg_verifybackup is not installed"}
    argv = [tool, "--no-parse-wal", "--quiet"] + (["--ignore=tablespace_map"] if remapped else []) + [root]
    process.Child(argv, dict(os.environ), workdir).finish()
    return {"checked": True}


def restore(config, reporter, verify_only=False):
    """state=restored (or, with verify_only, the heart of state=verified into a scratch directory)."""
    target = target_of(config.__dict__) if not verify_only else \
        target_of(dict(target=config.target if config.target in ("time", "lsn", "name") else "immediate",
                       target_time=config.target_time, target_lsn=config.target_lsn, target_name=config.target_name,
                       target_inclusive=config.target_inclusive))
    repo = physical.repository(config, reporter)
    backup = choose_backup(repo.list(), target, config.backup_id)
    archive = physical.wal_archive(config, repo.storage)
    continuity = check_wal(archive, backup, target)
    action = "verify" if verify_only else check_data_directory(config)
    owner = owner_of(config)
    locations = {} if verify_only else tablespace_locations(backup, config.tablespace_mapping)
    plan = {"backup_id": backup.id, "target": dict((k, v) for k, v in target.items() if k in ("type", "value")),
            "data_directory": None if verify_only else config.data_directory, "action": action,
            "owner": owner[2], "wal": continuity}
    if reporter.check_mode:
        lifecycle.proven(repo, backup, config)
        return dict(changed=not verify_only, plan=plan, backup_id=backup.id, msg="would %s backup %s (%s target)"
                    % ("verify" if verify_only else "restore", backup.id, target["type"]))
    started = time.monotonic()
    workdir = process.workdir()
    os.chown(workdir, owner[0], owner[1])
    if verify_only:  # a scratch restore never touches the live tablespaces' directories
        locations = dict((space["oid"], os.path.join(workdir, "tablespace-%s" % space["oid"]))
                         for space in backup.manifest["statistics"].get("tablespaces") or [])
    stage = os.path.join(workdir, "data") if verify_only else _stage(config, backup)
    timings = {}
    recovery = None
    try:
        with lifecycle.reading(repo, backup, config, "pg_physical_backup restore") as (checked, identities):
            timings["checked"] = round(time.monotonic() - started, 3)
            if os.path.exists(stage):
                shutil.rmtree(stage)
            os.mkdir(stage, 0o700)
            os.chown(stage, owner[0], owner[1])
            unpacked = _unpack(repo, backup, identities, stage, owner, locations)
            timings["unpacked"] = round(time.monotonic() - started, 3)
            files = _verify_files(config, stage, workdir, bool(locations)) if verify_only or config.verify_files \
                else {"checked": False}
            restore_command = _fetch_setup(config, workdir, owner, repo.source)
            recovery = Recovery(config, physical.tool(config, "postgres"), stage, workdir, owner, target,
                                archive_mode=config.archive and not verify_only)
            # The newest timeline that descends from this backup, not 'latest': a timeline forked before the
            # backup (an earlier restore's) would make PostgreSQL refuse to start.
            recovery.timeline = continuity["timelines"][-1]
            if continuity["missing"]:
                recovery.gap = "WAL segment %s is missing from the archive (gap after %s)" % (
                    continuity["missing"][0], continuity["unbroken_until"])
            recovery.start(restore_command)
            recovery.wait_promoted(config.recovery_timeout or 3600)
            timings["recovered"] = round(time.monotonic() - started, 3)
            checks = amcheck(config, workdir) if verify_only else None
            recovery.stop()
            replay = recovery.report()
            shutil.rmtree(os.path.join(stage, "pg_wal", wal_command.PREFETCH), ignore_errors=True)
        result = dict(backup_id=backup.id, target=plan["target"], replay=replay, unpacked=unpacked,
                      files_verified=files, wal=continuity, timings=timings, owner=owner[2])
        if verify_only:
            result.update(checks=checks)
            return result
        result.update(swap(config, stage, backup, action))
        result.update(changed=True, duration=round(time.monotonic() - started, 3), msg="restored backup %s into %s; "
                      "replay: %s" % (backup.id, config.data_directory, replay.get("stopped") or
                                      "to the end of the archive (%s)" % replay.get("redo_done")))
        return result
    except BaseException:
        if recovery is not None:
            recovery.stop()
        if not verify_only and os.path.exists(stage):
            shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def swap(config, stage, backup, action):
    """Move the old data directory aside (kept) and the recovered one into its place."""
    path = config.data_directory.rstrip("/")
    previous = None
    if action == "replace":
        previous = "%s.keel-previous-%s" % (path, utcnow().strftime("%Y%m%dT%H%M%SZ"))
        os.rename(path, previous)
    elif os.path.isdir(path):
        os.rmdir(path)
    os.rename(stage, path)
    process.fsync_dir(os.path.dirname(path) or "/")
    return {"previous_data_directory": previous, "data_directory": path}


def amcheck(config, workdir):
    """bt_index_check of every valid B-tree index in every database of the recovered server."""
    connection = physical.pg_conninfo.Connection(host=workdir, port=5432, user=config.connection.user,
                                                 database="postgres")
    checked, databases = 0, []
    admin = connection.connect()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")
            names = [row[0] for row in cursor.fetchall()]
    finally:
        admin.close()
    for name in names:
        conn = connection.connect(name)
        try:
            with conn.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
                cursor.execute("SELECT bt_index_check(c.oid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                               "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND i.indisvalid "
                               "AND c.relpersistence <> 't'")
                count = len(cursor.fetchall())
        except Exception as error:  # pylint: disable=broad-except
            raise PostgresError("amcheck found a problem in database %s of the restored backup: %s"
                                % (name, first_line(error)))
        finally:
            conn.close()
        checked += count
        databases.append({"database": name, "indexes": count})
    return {"amcheck": "ok", "indexes_checked": checked, "databases": databases}


def verify(config, reporter):
    """state=verified: restore into a scratch directory, replay to the backup's end (or the target), prove the
    files and the indexes, stop, and record the verification in the repository."""
    result = restore(config, reporter, verify_only=True)
    if reporter.check_mode:
        return result
    repo = physical.repository(config, reporter)
    verification = {"time": isoformat(utcnow()), "result": "ok", "duration": result["timings"].get("recovered"),
                    "restore_duration": result["timings"].get("recovered"), "replay": result["replay"],
                    "checks": result["checks"], "files_verified": result["files_verified"], "tool_version": VERSION}
    repo.record_verification(result["backup_id"], verification)
    result.update(changed=True, verification=verification,
                  msg="backup %s verified: restored, replayed to %s, %d indexes checked" % (
                      result["backup_id"], result["replay"].get("stopped") or result["replay"].get("redo_done"),
                      result["checks"]["indexes_checked"]))
    return result
