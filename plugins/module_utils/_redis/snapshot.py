# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis RDB snapshots for redis_snapshot, in the repository every backup kind shares (_backup/): the options,
taking a snapshot by BGSAVE or over replication through the shared lifecycle, the checks of an RDB against
its manifest, verification, retention and the info listing. Restores are restore.py's.

Each public function takes a RedisSnapshotConfig and a Reporter and returns the module's result. A BGSAVE
snapshot stores an RDB read from this host's disk only once it is proven to be the server's (DiskRdb).
"""

import os
import posixpath
import re
import shutil
import tempfile
import time

from ansible_collections.keel.ops.plugins.module_utils._redis import bgsave as redis_bgsave
from ansible_collections.keel.ops.plugins.module_utils._redis import connection as redis_connection
from ansible_collections.keel.ops.plugins.module_utils._redis import rdb as redis_rdb
from ansible_collections.keel.ops.plugins.module_utils._redis import replication as redis_replication
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp
from ansible_collections.keel.ops.plugins.module_utils._redis import server as redis_server

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._backup import encoding, lifecycle, listing
from ansible_collections.keel.ops.plugins.module_utils._backup.config import VERSION, BackupConfig
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, utcnow
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError, RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis import files
from ansible_collections.keel.ops.plugins.module_utils._redis.hooks import hook_from_params


ARTIFACT_STEM = "dump.rdb"


def failures_reported(what):
    return process.failures_reported(what, "check that path (permissions, free space), or run the module as root "
                                           "or the redis user (become: true)")


class RedisSnapshotConfig(BackupConfig):
    """Validated options of redis_snapshot; built from module params by from_params()."""

    @classmethod
    def from_params(cls, params):
        config = super(RedisSnapshotConfig, cls).from_params(params)
        config.connection = redis_connection.Connection.from_params(params)
        if (params.get("timeout") or 0) <= 0:
            raise ConfigError("timeout must be a number of seconds above 0, got %s" % params.get("timeout"))
        if params.get("login_user") and not params.get("login_password"):
            raise ConfigError("login_user names an ACL user: give its password in login_password")
        config.data_dir = params.get("data_dir")
        if config.data_dir and not os.path.isabs(config.data_dir):
            raise ConfigError("data_dir must be an absolute path, got %s" % config.data_dir)
        config.hook = hook_from_params(params)
        if params.get("state") == "restored" and params.get("restore_method") == "file" and config.hook is None:
            raise ConfigError("restore_method: file stops and starts the server: name how, with stop_command and "
                              "start_command, systemd_service, or docker_container")
        return config

    def source_name(self):
        """The repository folder of this server, unless the user named it: <host>-<port>, or local-<socket>."""
        if self.source:
            return self.source
        if self.connection.unix_socket:
            name = "local-" + os.path.splitext(os.path.basename(self.connection.unix_socket))[0]
        else:
            name = "%s-%s" % (self.connection.host, self.connection.port)
        return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _repository(config, reporter):
    return lifecycle.open_repository(config.__dict__, "redis", config.source_name(), reporter)


def make_workdir():
    with redis_resp.failing_as("making a work directory in %s" % tempfile.gettempdir(), "set TMPDIR to a writable directory"):
        return tempfile.mkdtemp(prefix="keel-redis-")


def _now():
    return isoformat(utcnow())


def server_facts(server):
    info = server.info()
    return {"version": info.get("redis_version"), "role": info.get("role"),
            "used_memory": int(info["used_memory"]) if info.get("used_memory", "").isdigit() else None,
            "executable": info.get("executable") or None, "config_file": info.get("config_file") or None,
            "appendonly": bool(int(info.get("aof_enabled", 0))), "keyspace": redis_connection.keyspace(info)}


def total_keys(databases, field="keys"):
    return sum(counts[field] for counts in (databases or {}).values())


def _rdb_path(config, server):
    directory, filename = server.config_get("dir"), server.config_get("dbfilename")
    if not directory or not filename:
        raise RedisError("%s does not tell where it saves (CONFIG GET dir/dbfilename gave nothing; is CONFIG "
                         "renamed?): use snapshot_method: replication" % server.describe())
    path = posixpath.join(directory, files.plain_name(filename, "dbfilename"))
    return config.hook.host_path(path) if config.hook else path


class DiskRdb:
    """Where the server's BGSAVE writes its RDB on this host, and how that file is proven to be the server's (and
    not that of another server that happens to keep its files at the same path here):

    - by process: the process on this host at the server end of our connection works in the RDB's directory
      (Redis saves in its working directory), checked before the BGSAVE and again once the RDB is read;
    - by replication id: the RDB carries a repl-id AUX field, and it must be the server's (INFO replication).

    Either way, an RDB that carries a repl-id other than the server's is refused."""

    def __init__(self, path, proof):
        self.path = path
        self.proof = proof

    @classmethod
    def locate(cls, config, server):
        path = _rdb_path(config, server)
        replication = _replication_identity(server)
        try:
            pid = files.peer_process(server.resp.sock)
            if files.works_in(pid, os.path.dirname(path)):
                return cls(path, dict(replication or {}, by="process", pid=pid))
            reason = "process %d, at the server end of the connection, works in another directory" % pid
        except files.NotProven as error:
            reason = str(error)
        if replication:
            return cls(path, dict(replication, by="replication id", unproven_process=reason))
        raise KeelError("cannot prove that %s on this host is the RDB of %s: %s; and its RDB would carry no "
                        "replication id to compare (no replica has connected to it: repl_backlog_active:0). Use "
                        "snapshot_method: replication, or run the module on the Redis host as root or as the redis "
                        "user (become: true)" % (path, server.describe(), reason))

    def check(self, aux, server):
        """Before the snapshot is committed: the RDB just read (its AUX fields) is the server's."""
        if self.proof["by"] == "process":
            try:
                same = files.works_in(self.proof["pid"], os.path.dirname(self.path))
            except files.NotProven as error:
                same, reason = False, str(error)
            else:
                reason = "the server left that directory during the snapshot"
            if not same:
                raise KeelError("the RDB read from %s is not proven to be %s's: %s; nothing was stored"
                                % (self.path, server.describe(), reason))
        replid, offset = aux.get("repl-id"), aux.get("repl-offset", "")
        if replid is None and self.proof["by"] == "process":
            return
        now = server.info("replication")
        ids = [now.get("master_replid"), now.get("master_replid2")]
        if replid not in ids:
            raise KeelError("the RDB read from %s is not %s's: its repl-id is %s, the server's is %s (and %s); "
                            "nothing was stored. Another server keeps its RDB at that path on this host: use "
                            "snapshot_method: replication"
                            % (self.path, server.describe(), replid or "absent", ids[0],
                               self.proof.get("unproven_process") or "the process check found nothing against it"))
        if offset.isdigit() and int(offset) < self.proof.get("offset", 0):
            raise KeelError("the RDB read from %s is older than the BGSAVE just asked of %s (repl-offset %s, the "
                            "server was at %d before); nothing was stored"
                            % (self.path, server.describe(), offset, self.proof["offset"]))

    def describe(self):
        return {key: value for key, value in self.proof.items() if key in ("by", "pid", "replid")}


def _replication_identity(server):
    """{"replid", "offset"} that the server's RDB will carry as repl-id/repl-offset, or None when it writes none (a
    master that never had a replica has no replication backlog, and its RDB no replication fields)."""
    info = server.info("replication")
    carries = ((info.get("role") == "master" and info.get("repl_backlog_active") == "1")
               or (info.get("role") == "slave" and info.get("master_link_status") == "up"))
    if not carries or not info.get("master_replid"):
        return None
    return {"replid": info["master_replid"], "offset": int(info.get("master_repl_offset") or 0)}


@failures_reported("taking a Redis snapshot")
def snapshot(config, reporter):
    """state=present: take a snapshot, then apply retention."""
    server = redis_connection.Server(config.connection)
    try:
        return _snapshot(config, reporter, server)
    finally:
        server.close()


def _snapshot(config, reporter, server):
    facts = server_facts(server)
    repo = _repository(config, reporter)
    disk = DiskRdb.locate(config, server) if config.snapshot_method == "bgsave" else None
    plan = {"source": repo.source, "repository": repo.describe(), "method": config.snapshot_method,
            "server": server.describe(), "server_version": facts["version"], "role": facts["role"],
            "keys": total_keys(facts["keyspace"]), "used_memory": facts["used_memory"],
            "rdb_path": disk.path if disk else None, "rdb_proven_by": disk.proof["by"] if disk else None}
    binary = redis_server.find_binary(config.redis_server_bin, [facts["executable"]], redis_connection.rdb_version_of(facts["version"]),
                                      purpose="check the snapshot")
    plan["checker"] = binary.describe("redis-check-rdb")
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=None, msg="would snapshot %s (%s) into %s"
                    % (server.describe(), config.snapshot_method, repo.describe()))
    run = lifecycle.BackupRun(config, reporter, repo, "keel.ops.redis_snapshot")
    manifest = lifecycle.run_backup(run, lambda run: _take_snapshot(run, server, facts, binary, disk))
    stats = manifest["statistics"]
    if stats["databases"] is None:
        reporter.warn("the RDB carries no per-database key counts (no RESIZEDB records): only the total is recorded")
    result = run.result(manifest, plan)
    result["msg"] = "snapshot %s of %s: %d keys, RDB %d bytes, %d bytes stored in %.1fs" % (
        manifest["id"], server.describe(), stats["keys"], result["raw_size"], result["size"], manifest["duration"])
    return result


def _open_rdb(config, server, disk):
    if disk is not None:
        return redis_bgsave.BgsaveRdb(server, disk.path, config.timeout)
    return redis_replication.ReplicationRdb(config.connection, config.timeout)


def _take_snapshot(run, server, facts, binary, disk):
    """Store the snapshot's RDB, inspected on its way, and return its manifest; run_backup() commits it."""
    config = run.config
    checker = source = None
    try:
        checker = redis_rdb.RdbCheck(binary, run.workdir)
        inspector = redis_rdb.RdbInspector(checker)
        source = _open_rdb(config, server, disk)
        artifact = run.store(ARTIFACT_STEM, redis_rdb.InspectingReader(source, inspector), kind="rdb", format="rdb")
        stats = inspector.finish()
        if disk is not None:
            disk.check(inspector.aux, server)
        artifact["rdb_version"] = stats["rdb_version"]
        if stats["used_memory"] is None:
            stats["used_memory"] = facts["used_memory"]
        local = config.connection.unix_socket
        method = {"name": config.snapshot_method}
        if config.snapshot_method == "replication":
            method.update(replid=source.replid, offset=source.offset, diskless=source.mark is not None)
        else:
            method.update(rdb_path=disk.path, read_while_saving=source.tailed, proven_by=disk.describe())
        return run.manifest("redis", "rdb", statistics=stats, method=method,
                            tool_details={"checker": binary.describe("redis-check-rdb")},
                            source={"host": None if local else config.connection.host,
                                    "port": None if local else config.connection.port, "unix_socket": local,
                                    "server_version": facts["version"], "role": facts["role"]})
    except BaseException:
        if checker is not None:
            checker.kill()
        raise
    finally:
        if source is not None:
            source.close()


def _mismatch(want, have, loaded):
    """Whether counts differ. A server that loaded the RDB as a master (`loaded`) dropped the keys whose TTL had
    passed: keys without a TTL must match exactly, keys with one may be fewer."""
    if not loaded:
        return want != have
    return have["keys"] - have["expires"] != want["keys"] - want["expires"] or have["expires"] > want["expires"]


def _describe_counts(where, have, want):
    return "%s holds %d keys (%d with a TTL), the snapshot %d (%d)" % (where, have["keys"], have["expires"],
                                                                       want["keys"], want["expires"])


def check_counts(stats, actual, what, loaded=False):
    """Raise IntegrityError unless `actual` ({db: {keys, expires}}) agrees with the manifest's statistics; only
    the totals are compared when either side lacks per-database counts."""
    empty = {"keys": 0, "expires": 0}
    expected = stats.get("databases")
    if expected is None or actual is None:
        expected = {"all": {"keys": stats["keys"], "expires": stats["expires"]}}
        actual = {"all": {"keys": total_keys(actual), "expires": total_keys(actual, "expires")}}
    problems = [_describe_counts(db if db == "all" else "db" + db, actual.get(db, empty), expected.get(db, empty))
                for db in sorted(set(expected) | set(actual))
                if _mismatch(expected.get(db, empty), actual.get(db, empty), loaded)]
    if problems:
        raise IntegrityError("%s does not match the snapshot's manifest: %s" % (what, "; ".join(problems)))


def _rdb_artifact(backup):
    return next(a for a in backup.manifest["artifacts"] if a.get("kind") == "rdb")


def select_snapshot(config, reporter):
    repo = _repository(config, reporter)
    return repo, repo.select(config.backup_id or "latest", config.before)


def binary_for(config, backup, hints=(), max_rdb=None, purpose="check the snapshot"):
    return redis_server.find_binary(config.redis_server_bin, list(hints), backup.manifest["statistics"]["rdb_version"],
                                    max_rdb=max_rdb, purpose=purpose)


def inspect_stream(repo, backup, identities, binary, workdir, sink):
    """Stream a snapshot's RDB into sink while redis-check-rdb checks it; returns what the RDB says."""
    inspector = redis_rdb.RdbInspector(redis_rdb.RdbCheck(binary, workdir))
    try:
        encoding.stream_into(repo, backup, _rdb_artifact(backup), identities, redis_rdb.InspectingWriter(sink, inspector))
    except BaseException:
        inspector.checker.kill()
        raise
    return inspector.finish()


def load_into_temporary(config, repo, backup, identities, binary, workdir):
    """A temporary server holding the snapshot, checked key for key-count against the manifest."""
    stats = backup.manifest["statistics"]
    databases = max([int(db) for db in stats.get("databases") or {}] + [15]) + 1
    temp = redis_server.TemporaryServer(binary, workdir, databases)
    try:
        temp.load(lambda sink: encoding.stream_into(repo, backup, _rdb_artifact(backup), identities, sink),
                  _rdb_artifact(backup)["raw_size"], config.timeout)
        loaded = temp.keyspace()
        check_counts(stats, loaded, "the snapshot loaded into a temporary redis-server")
        return temp, loaded
    except BaseException:
        temp.stop()
        raise


@failures_reported("verifying a Redis snapshot")
def verify(config, reporter):
    """state=verified: checksums, the RDB's own validity and its key counts, recorded in the repository."""
    repo, chosen = select_snapshot(config, reporter)
    if reporter.check_mode:
        return dict(changed=False, backup_id=chosen.id, msg="would verify snapshot %s" % chosen.id,
                    plan={"backup_id": chosen.id, "method": config.verify_method})
    started = time.monotonic()
    stats = chosen.manifest["statistics"]
    binary = binary_for(config, chosen)
    with lifecycle.reading(repo, chosen, config, "redis_snapshot verification") as (checked, identities):
        details, seconds = _verify_by_method(config, repo, chosen, identities, binary)
    duration = round(time.monotonic() - started, 3)
    verification = dict(details, time=_now(), result="ok", method=config.verify_method,
                        duration=duration, restore_duration=seconds, artifacts_checked=checked, keys=stats["keys"],
                        databases=stats.get("databases"), tool_version=VERSION)
    repo.record_verification(chosen.id, verification)
    return dict(changed=True, backup_id=chosen.id, verification=verification, duration=duration,
                restore_duration=seconds,
                msg="snapshot %s verified (%s): checksums match, the RDB is valid and holds the %d keys recorded"
                % (chosen.id, config.verify_method, stats["keys"]))


def _verify_by_method(config, repo, backup, identities, binary):
    """(what the check found, seconds it took) by redis-check-rdb alone or by loading a temporary server."""
    workdir = make_workdir()
    try:
        started = time.monotonic()
        if config.verify_method == "check":
            found = inspect_stream(repo, backup, identities, binary, workdir, redis_rdb.NullSink())
            check_counts(backup.manifest["statistics"], found["databases"], "the stored RDB")
            details = {"checksum": found["checksum"], "checked_by": found["checked_by"]}
        else:
            temp, loaded = load_into_temporary(config, repo, backup, identities, binary, workdir)
            temp.stop()
            details = {"loaded": loaded, "loaded_by": binary.describe()}
        return details, round(time.monotonic() - started, 3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@failures_reported("applying retention to Redis snapshots")
def prune(config, reporter):
    """state=absent: retention only."""
    return lifecycle.prune(_repository(config, reporter), config, reporter, "snapshots")


def _snapshot_summary(backup):
    summary = backup.summary()
    stats = backup.manifest.get("statistics") or {}
    summary.update(keys=stats.get("keys"), databases=stats.get("databases"), rdb_version=stats.get("rdb_version"),
                   redis_version=stats.get("redis_version"), checksum=stats.get("checksum"),
                   method=(backup.manifest.get("method") or {}).get("name"))
    return summary


@failures_reported("listing Redis snapshots")
def describe_snapshots(params, reporter):
    """redis_snapshot_info: snapshots newest first, filtered, and whether the newest is older than max_age."""
    found, age, stale = listing.describe_repository(params, "redis", reporter, noun="snapshot")
    return dict(snapshots=[_snapshot_summary(b) for b in found], count=len(found), newest_age_hours=age, stale=stale)
