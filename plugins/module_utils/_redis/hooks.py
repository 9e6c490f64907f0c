# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis_snapshot's engine: take, restore, verify and prune Redis RDB snapshots in a backup repository.

Snapshots use the repository and streaming pipeline of pg_backup (_backup.py, _repository.py); _redis.py speaks to
Redis. Each public function takes a RedisSnapshotConfig and a Reporter and returns the module's result. Nothing is
touched until it is known to be safe: a restore proves the checksums and the key, and checks the RDB itself and
its key counts against the manifest, before it stops a server or writes a key. A BGSAVE snapshot stores an RDB
read from this host's disk only once it is proven to be the server's; a file restore writes only into the data
directory the server starts from (files.py), and once the server is down, whatever happens, it is started
again and the message says on which data.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import functools
import os
import posixpath
import re
import shutil
import signal
import subprocess
import tempfile
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._backup import encoding, lifecycle, listing
from ansible_collections.keel.ops.plugins.module_utils._backup.config import VERSION, BackupConfig
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, utcnow
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, IntegrityError, KeelError, RedisError, first_line
from ansible_collections.keel.ops.plugins.module_utils._redis import bgsave as redis_bgsave
from ansible_collections.keel.ops.plugins.module_utils._redis import connection as redis_connection
from ansible_collections.keel.ops.plugins.module_utils._redis import files
from ansible_collections.keel.ops.plugins.module_utils._redis import keys as redis_keys
from ansible_collections.keel.ops.plugins.module_utils._redis import rdb as redis_rdb
from ansible_collections.keel.ops.plugins.module_utils._redis import replication as redis_replication
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp
from ansible_collections.keel.ops.plugins.module_utils._redis import server as redis_server

ARTIFACT_STEM = "dump.rdb"
CONFLICTS_LISTED = 10
BATCH = 1000
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _engine_errors(what):
    """Last line of defence for a public function: an OSError or UnicodeDecodeError that nothing more precise
    caught becomes a KeelError naming the task, the system's reason and the path."""
    def wrap(function):
        @functools.wraps(function)
        def run(*args):
            try:
                return function(*args)
            except (OSError, UnicodeDecodeError) as error:
                raise KeelError("%s failed: %s; check that path (permissions, free space), or run the module as root "
                                "or the redis user (become: true)" % (what, redis_resp.os_reason(error)))
        return run
    return wrap


class RedisSnapshotConfig(BackupConfig):
    """Validated options of redis_snapshot; built from module params by from_params()."""

    @classmethod
    def from_params(cls, params):
        config = super(RedisSnapshotConfig, cls).from_params(params)
        config.connection = redis_connection.Connection(
            host=params.get("login_host"), port=params.get("login_port"), unix_socket=params.get("login_unix_socket"),
            user=params.get("login_user"), password=params.get("login_password"), tls=params.get("tls"),
            validate_certs=params.get("validate_certs", True), ca_certs=params.get("ca_certs"),
            client_cert_file=params.get("client_cert_file"), client_key_file=params.get("client_key_file"),
            timeout=params.get("connect_timeout") or 10)
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


def _workdir():
    with redis_resp.failing_as("making a work directory in %s" % tempfile.gettempdir(), "set TMPDIR to a writable directory"):
        return tempfile.mkdtemp(prefix="keel-redis-")


def _now():
    return isoformat(utcnow())


# --- stop and start hooks ---------------------------------------------------------------------------

class CommandHook:
    """Stop and start the server with commands of the caller's (argv lists; they get no secret)."""

    def __init__(self, stop, start):
        self.argv = {"stop": list(stop), "start": list(start)}

    def describe(self):
        return "commands %s / %s" % (" ".join(self.argv["stop"]), " ".join(self.argv["start"]))

    def run(self, action, workdir, timeout):
        try:
            child = process.Child(self.argv[action], dict(os.environ), workdir, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL)
        except OSError as error:
            raise RedisError("the %s hook %s cannot run: %s" % (action, self.argv[action][0],
                                                                   error.strerror or error))
        try:
            child.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise RedisError("the %s hook (%s) did not finish within %ss" % (action, self.argv[action][0], timeout))
        except BaseException:
            child.kill()  # interrupted: the hook does not outlive the module
            raise
        try:
            child.finish()
        except process.ToolError as error:
            raise RedisError("the %s hook failed: %s" % (action, error))

    @staticmethod
    def host_path(path):
        return path


class SystemdHook(CommandHook):
    """systemctl stop/start of a service."""

    def __init__(self, service):
        CommandHook.__init__(self, ["systemctl", "stop", service], ["systemctl", "start", service])
        self.service = service

    def describe(self):
        return "systemd service %s" % self.service


def _docker():
    """The docker SDK, imported only when a container is named: it costs a tenth of a second to import."""
    try:
        import docker
        import requests
    except ImportError:
        raise DependencyError("docker_container needs the Python library 'docker' where the module runs "
                              "(pip install docker)")
    return docker, (docker.errors.DockerException, requests.exceptions.RequestException)


class DockerHook:
    """Stop and start a container through the Docker API; paths inside it are mapped to the host via its mounts."""

    def __init__(self, name, docker_host):
        docker, self.errors = _docker()
        self.name = name
        try:
            self.client = docker.DockerClient(base_url=docker_host or os.environ.get("DOCKER_HOST")
                                              or "unix:///var/run/docker.sock", version="auto", timeout=120)
            self.container = self.client.containers.get(name)
        except docker.errors.NotFound:
            raise ConfigError("docker_container: no container named %s" % name)
        except self.errors as error:
            raise RedisError("cannot reach the Docker API for container %s: %s" % (name, first_line(error)))

    def describe(self):
        return "container %s" % self.name

    def run(self, action, _workdir, timeout):
        try:
            if action == "stop":
                self.container.stop(timeout=int(timeout))
            else:
                self.container.start()
        except self.errors as error:
            raise RedisError("could not %s container %s: %s" % (action, self.name, first_line(error)))

    def host_path(self, path):
        """Where a path inside the container lives on this host (the longest mount that holds it). The path is
        normalised first ('..' resolved), and what it leads to on this host, symlinks followed, must stay inside
        the mount's source: a path that leaves its mount is refused."""
        if not posixpath.isabs(path or ""):
            raise ConfigError("container %s reports %r, which is not an absolute path: set data_dir"
                              % (self.name, path))
        path = "/" + posixpath.normpath(path).lstrip("/")
        mounts = [m for m in self.container.attrs.get("Mounts") or [] if _inside(path, m["Destination"])]
        if not mounts:
            raise ConfigError("%s in container %s is not on a volume or bind mount, so this host cannot reach it; "
                              "use restore_method: keys" % (path, self.name))
        mount = max(mounts, key=lambda m: len(posixpath.normpath(m["Destination"])))
        source = os.path.normpath(mount["Source"])
        inner = posixpath.relpath(path, posixpath.normpath(mount["Destination"]))
        host = os.path.normpath(os.path.join(source, inner))
        if not _inside(os.path.realpath(host), os.path.realpath(source)):
            raise ConfigError("%s in container %s leads out of its mount (%s on this host) to %s: refused"
                              % (path, self.name, source, os.path.realpath(host)))
        return host


def _inside(path, directory):
    directory = posixpath.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def hook_from_params(params):
    if params.get("docker_container"):
        return DockerHook(params["docker_container"], params.get("docker_host"))
    if params.get("systemd_service"):
        return SystemdHook(params["systemd_service"])
    if params.get("stop_command"):
        return CommandHook(params["stop_command"], params["start_command"])
    return None


# --- the server -------------------------------------------------------------------------------------

def server_facts(server):
    info = server.info()
    return {"version": info.get("redis_version"), "role": info.get("role"),
            "used_memory": int(info["used_memory"]) if info.get("used_memory", "").isdigit() else None,
            "executable": info.get("executable") or None, "config_file": info.get("config_file") or None,
            "appendonly": bool(int(info.get("aof_enabled", 0))), "keyspace": redis_connection.keyspace(info)}


def _total(databases, field="keys"):
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


# --- present ----------------------------------------------------------------------------------------

@_engine_errors("taking a Redis snapshot")
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
            "keys": _total(facts["keyspace"]), "used_memory": facts["used_memory"],
            "rdb_path": disk.path if disk else None, "rdb_proven_by": disk.proof["by"] if disk else None}
    binary = redis_server.find_binary(config.redis_server_bin, [facts["executable"]], redis_connection.rdb_version_of(facts["version"]),
                            purpose="check the snapshot")
    plan["checker"] = binary.describe("redis-check-rdb")
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=None, msg="would snapshot %s (%s) into %s"
                    % (server.describe(), config.snapshot_method, repo.describe()))
    encoder = encoding.Encoder(config)
    workdir = _workdir()
    try:
        manifest, cleaned, retention = lifecycle.run_backup(
            repo, config, reporter,
            lambda backup_id: _take_snapshot(config, server, facts, binary, repo, encoder, disk, workdir, backup_id))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stats = manifest["statistics"]
    if stats["databases"] is None:
        reporter.warn("the RDB carries no per-database key counts (no RESIZEDB records): only the total is recorded")
    artifact = manifest["artifacts"][-1]
    size = sum(a["size"] for a in manifest["artifacts"])
    return dict(changed=True, backup_id=manifest["id"], location=repo.describe(manifest["id"]), source=repo.source,
                size=size, raw_size=artifact["raw_size"], duration=manifest["duration"],
                throughput_mb_s=round(artifact["raw_size"] / 1e6 / manifest["duration"], 1)
                if manifest["duration"] else None,
                artifacts=manifest["artifacts"], statistics=stats, compression=manifest["compression"],
                encryption=manifest["encryption"], retention=retention, cleaned_up=cleaned, plan=plan,
                msg="snapshot %s of %s: %d keys, RDB %d bytes, %d bytes stored in %.1fs"
                % (manifest["id"], server.describe(), stats["keys"], artifact["raw_size"], size, manifest["duration"]))


def _open_rdb(config, server, disk):
    if disk is not None:
        return redis_bgsave.BgsaveRdb(server, disk.path, config.timeout)
    return redis_replication.ReplicationRdb(config.connection, config.timeout)


def _take_snapshot(config, server, facts, binary, repo, encoder, disk, workdir, backup_id):
    """Write the snapshot's artifacts and return its manifest; run_backup() commits it."""
    started = utcnow()
    clock = time.monotonic()
    artifacts = []
    checker = source = None
    try:
        if encoder.wrapped_key:
            artifacts.append(encoding.store_key(repo, backup_id, encoder))
        checker = redis_rdb.RdbCheck(binary, workdir)
        inspector = redis_rdb.RdbInspector(checker)
        source = _open_rdb(config, server, disk)
        artifact = encoding.store_artifact(repo, backup_id, encoder.artifact_name(ARTIFACT_STEM), encoder,
                                         redis_rdb.InspectingReader(source, inspector))
        stats = inspector.finish()
        if disk is not None:
            disk.check(inspector.aux, server)
        artifact.update(kind="rdb", format="rdb", rdb_version=stats["rdb_version"])
        artifacts.append(artifact)
        if stats["used_memory"] is None:
            stats["used_memory"] = facts["used_memory"]
        duration = round(time.monotonic() - clock, 3)
        source_info = {"name": repo.source, "host": None if config.connection.unix_socket else config.connection.host,
                       "port": None if config.connection.unix_socket else config.connection.port,
                       "unix_socket": config.connection.unix_socket, "server_version": facts["version"],
                       "role": facts["role"]}
        method = {"name": config.snapshot_method}
        if config.snapshot_method == "replication":
            method.update(replid=source.replid, offset=source.offset, diskless=source.mark is not None)
        else:
            method.update(rdb_path=disk.path, read_while_saving=source.tailed, proven_by=disk.describe())
        manifest = dict(encoder.manifest(), id=backup_id, kind="redis", format="rdb", source=source_info,
                        tool={"name": "keel.ops.redis_snapshot", "version": VERSION,
                              "checker": binary.describe("redis-check-rdb")},
                        started=isoformat(started), finished=_now(), duration=duration,
                        labels=config.labels or {}, artifacts=artifacts, statistics=stats, method=method)
        return manifest
    except BaseException:
        if checker is not None:
            checker.kill()
        raise
    finally:
        if source is not None:
            source.close()


# --- checks against the manifest --------------------------------------------------------------------

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
        actual = {"all": {"keys": _total(actual), "expires": _total(actual, "expires")}}
    problems = [_describe_counts(db if db == "all" else "db" + db, actual.get(db, empty), expected.get(db, empty))
                for db in sorted(set(expected) | set(actual))
                if _mismatch(expected.get(db, empty), actual.get(db, empty), loaded)]
    if problems:
        raise IntegrityError("%s does not match the snapshot's manifest: %s" % (what, "; ".join(problems)))


def _rdb_artifact(backup):
    return next(a for a in backup.manifest["artifacts"] if a.get("kind") == "rdb")


def _select(config, reporter):
    repo = _repository(config, reporter)
    return repo, repo.select(config.backup_id or "latest", config.before)


def _check_binary(config, backup, hints=(), max_rdb=None, purpose="check the snapshot"):
    return redis_server.find_binary(config.redis_server_bin, list(hints), backup.manifest["statistics"]["rdb_version"],
                          max_rdb=max_rdb, purpose=purpose)


def _inspect_stream(repo, backup, identities, binary, workdir, sink):
    """Stream a snapshot's RDB into sink while redis-check-rdb checks it; returns what the RDB says."""
    inspector = redis_rdb.RdbInspector(redis_rdb.RdbCheck(binary, workdir))
    try:
        encoding.stream_into(repo, backup, _rdb_artifact(backup), identities, redis_rdb.InspectingWriter(sink, inspector))
    except BaseException:
        inspector.checker.kill()
        raise
    return inspector.finish()


def _load_into_temporary(config, repo, backup, identities, binary, workdir):
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


# --- restored ---------------------------------------------------------------------------------------

@_engine_errors("restoring a Redis snapshot")
def restore(config, reporter):
    """state=restored: bring a snapshot back into a server, by replacing its RDB or by writing its keys."""
    repo, chosen = _select(config, reporter)
    stats = chosen.manifest["statistics"]
    server = redis_connection.Server(config.connection)
    try:
        facts = server_facts(server)
        _check_target_version(chosen, facts, server)
        if config.restore_method == "file":
            plan = _plan_file(config, server, facts, chosen)
            binary = _check_binary(config, chosen, [facts["executable"]])
        else:
            plan = _plan_keys(config, server, facts, chosen)
            binary = _check_binary(config, chosen, [facts["executable"]], max_rdb=plan["target_rdb_version"],
                                   purpose="read the snapshot through a temporary redis-server whose DUMP the "
                                           "target reads")
        plan.update(backup_id=chosen.id, backup_time=isoformat(chosen.time), source=repo.source,
                    snapshot_keys=stats["keys"], redis_binary=binary.describe())
        if reporter.check_mode:
            return dict(changed=True, plan=plan, backup_id=chosen.id, msg="would restore snapshot %s into %s by %s"
                        % (chosen.id, server.describe(), plan["method"]))
        started = time.monotonic()
        with repo.hold(chosen, "redis_snapshot restore into %s" % server.describe()):
            checked = repo.check_artifacts(chosen)
            identities = encoding.open_identities(config, repo, chosen)
            result = _restore_by_method(config, server, plan, repo, chosen, identities, binary, reporter)
    finally:
        server.close()
    duration = round(time.monotonic() - started, 3)
    summary = result.pop("summary")
    return dict(result, changed=True, plan=plan, backup_id=chosen.id, artifacts_checked=checked, duration=duration,
                msg="restored snapshot %s into %s by %s: %s, in %.1fs"
                % (chosen.id, config.connection.describe(), plan["method"], summary, duration))


def _restore_by_method(config, server, plan, repo, backup, identities, binary, reporter):
    workdir = _workdir()
    try:
        if config.restore_method == "file":
            return _restore_file(config, server, plan, repo, backup, identities, workdir, binary, reporter)
        return _restore_keys(config, plan, repo, backup, identities, workdir, binary)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_target_version(backup, facts, server):
    rdb_version = backup.manifest["statistics"]["rdb_version"]
    if redis_connection.rdb_version_of(facts["version"]) < rdb_version:
        raise KeelError("snapshot %s was written by Redis %s (RDB version %d), which %s (Redis %s) cannot read: "
                        "restore into a server of that version or newer"
                        % (backup.id, backup.manifest["source"]["server_version"], rdb_version, server.describe(),
                           facts["version"]))


def _data_files(config, server, facts):
    """The server's RDB and AOF on this host. The data directory comes from data_dir or from the config file the
    server starts from - where it will load from after the restart - and must agree with the running server
    (CONFIG GET, which anyone with CONFIG can point elsewhere, is never enough on its own)."""
    hook = config.hook
    live_dir = server.config_get("dir")
    live = {"dir": hook.host_path(live_dir) if live_dir else None, "dbfilename": server.config_get("dbfilename"),
            "aof": server.config_get("appenddirname") or server.config_get("appendfilename")}
    if config.data_dir:
        declared, source = dict(live, dir=config.data_dir), "the data_dir option"
    elif facts["config_file"]:
        path = hook.host_path(facts["config_file"])
        declared = files.config_locations(files.read_config_file(path), path, redis_connection.parse_version(facts["version"]))
        declared["dir"] = hook.host_path(declared["dir"])
        source = "the config file %s" % path
    else:
        raise ConfigError("%s was started without a config file, so where it loads its data from at its next start "
                          "can only be read from the running server, which is not trusted for that: set data_dir "
                          "(its data directory on this host)" % server.describe())
    fields = ("dir", "dbfilename", "aof") if facts["appendonly"] else ("dir", "dbfilename")
    files.check_agreement(declared, source, live, fields)
    return files.DataFiles(declared["dir"], declared["dbfilename"], declared["aof"] if facts["appendonly"] else None)


def _plan_file(config, server, facts, backup):
    if facts["appendonly"] and not facts["config_file"]:
        raise KeelError("%s runs with appendonly yes but without a config file: it would start from its AOF and "
                        "ignore the restored RDB, and there is no file to switch AOF off in for that start; "
                        "use restore_method: keys" % server.describe())
    data = _data_files(config, server, facts)
    keys = _total(facts["keyspace"])
    if keys and not config.replace:
        raise KeelError("%s holds %d keys and the file method replaces all of them: set replace: true (its current "
                        "RDB and AOF are kept beside the new one), or use restore_method: keys"
                        % (server.describe(), keys))
    return {"method": "file", "target": server.describe(), "target_keys": keys, "hook": config.hook.describe(),
            "data_dir": data.directory, "rdb_path": data.rdb, "appendonly": facts["appendonly"],
            "aof_paths": [data.aof] if data.aof else [], "config_file": facts["config_file"],
            "config_path": config.hook.host_path(facts["config_file"]) if facts["config_file"] else None,
            "rdb_version": backup.manifest["statistics"]["rdb_version"]}


def _plan_keys(config, server, facts, backup):
    keys = _total(facts["keyspace"])
    return {"method": "keys", "target": server.describe(), "target_keys": keys, "replace": config.replace,
            "absolute_ttl": redis_connection.parse_version(facts["version"]) >= (5, 0, 0),
            "databases": sorted(backup.manifest["statistics"].get("databases") or {}, key=int),
            "target_rdb_version": redis_connection.rdb_version_of(facts["version"])}


class Interrupted(KeelError):
    """A signal (a cancelled or timed-out task) arrived while the server was down."""


@contextlib.contextmanager
def _signals_interrupt():
    """While the server may be down, SIGTERM, SIGINT and SIGHUP raise Interrupted, so that it is started again
    before the module ends; once one has arrived, the next ones are ignored until the module is done."""
    arrived = []

    def interrupt(number, _frame):
        if not arrived:
            arrived.append(number)
            raise Interrupted("interrupted by %s" % signal.Signals(number).name)

    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: the signals keep their handlers
        for number in STOP_SIGNALS:
            previous[number] = signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _restore_file(config, server, plan, repo, backup, identities, workdir, binary, reporter):
    staged = _stage_rdb(repo, backup, identities, binary, workdir, plan["rdb_path"])
    swap = files.FileSwap(staged, plan["rdb_path"], plan["aof_paths"])
    stopped = time.monotonic()  # from here on the server goes down: the time that matters to its clients
    try:
        _switch_aof_off(server, plan)
    except BaseException:
        swap.discard()
        raise
    with _signals_interrupt():
        try:
            config.hook.run("stop", workdir, config.timeout)
            redis_server.wait_down(config.connection, config.timeout)
            swap.apply()
            _start(config, workdir)
        except BaseException as error:  # pylint: disable=broad-except
            _bring_back(config, plan, swap, workdir, error, reporter)
        loaded = _after_start(config, plan, backup, swap)
    return {"previous_files": swap.previous(), "verification": {"loaded": loaded, "keys": _total(loaded)},
            "restore_duration": round(time.monotonic() - stopped, 3), "summary": "%d keys loaded" % _total(loaded)}


def _start(config, workdir):
    config.hook.run("start", workdir, config.timeout)
    redis_server.wait_loaded(config.connection, config.timeout)


def _answers(connection):
    try:
        connection.open_socket().close()
        return True
    except RedisError:
        return False


def _failure(error):
    if isinstance(error, KeelError):
        return str(error)
    if isinstance(error, OSError):
        return "moving the server's files failed: %s" % redis_resp.os_reason(error)
    return "%s: %s" % (error.__class__.__name__, str(error) or "no details")


def _bring_back(config, plan, swap, workdir, error, reporter):
    """After a failure once the stop began: start the server again. Returns only when it runs on the snapshot's
    RDB after all (a second start worked); otherwise raises, saying in which state the server was left and where
    its files are."""
    try:
        state = _recover(config, plan, swap, workdir, error)
    except BaseException as again:  # pylint: disable=broad-except
        state = "stopped (starting it again failed too: %s)" % _failure(again)
    if state == "restored":
        reporter.warn("%s; the second start worked" % _failure(error))
        return
    raise RedisError("%s. The server was left %s; %s" % (_failure(error), state, swap.where()))


def _recover(config, plan, swap, workdir, error):
    """Start the server again: once more on the snapshot's RDB if that was in place (unless the module was
    interrupted), else - or when that fails too - on its previous files, put back. "restored" or the state."""
    aof_off = (" with AOF off (its config file says appendonly no): once it has loaded, run CONFIG SET appendonly "
               "yes and CONFIG REWRITE" if plan["appendonly"] else "")
    if swap.placed and not isinstance(error, Interrupted):
        if not _answers(config.connection):
            with contextlib.suppress(KeelError):
                _start(config, workdir)
                return "restored"
        if _answers(config.connection):
            return "running on the restored data, maybe still loading it" + aof_off
    elif _answers(config.connection):  # it never stopped, or was interrupted before the stop took effect
        return "running on the restored data" + aof_off if swap.placed else _previous_aof_on(config, plan)
    swap.revert()
    if plan["appendonly"]:
        files.set_directive(plan["config_path"], "appendonly", "yes")
    _start(config, workdir)
    return "running on its previous data"


def _previous_aof_on(config, plan):
    """The server still runs on its data: undo the switch to appendonly no made for the restore."""
    state = "running on its previous data"
    if not plan["appendonly"]:
        return state
    try:
        server = redis_connection.Server(config.connection)
        try:
            _aof_on(server)
        finally:
            server.close()
    except KeelError as error:
        return state + " with AOF off (%s): run CONFIG SET appendonly yes and CONFIG REWRITE" % error
    return state


def _aof_on(server, timeout=None):
    """CONFIG SET appendonly yes (which rewrites the AOF from the data in memory; waited for, with a timeout), and
    the same in the config file."""
    server.call("switching AOF back on", "CONFIG", "SET", "appendonly", "yes")
    if timeout:
        redis_server.wait_aof_rewritten(server, timeout)
    server.call("writing appendonly yes back to the config file", "CONFIG", "REWRITE")


def _after_start(config, plan, backup, swap):
    """The server runs on the restored RDB: AOF back on (rewritten from the loaded data), key counts checked."""
    restarted = None
    try:
        restarted = redis_connection.Server(config.connection)
        if plan["appendonly"]:
            # The RDB was loaded with AOF off; switching it on rewrites the AOF from what is now in memory.
            _aof_on(restarted, config.timeout)
        loaded = redis_connection.keyspace(restarted.info("keyspace"))
        check_counts(backup.manifest["statistics"], loaded, "%s after the restore" % config.connection.describe(),
                     loaded=True)
        return loaded
    except BaseException as error:  # pylint: disable=broad-except
        raise RedisError("%s. The server runs on the restored data%s; %s"
                            % (_failure(error), " (check that AOF is on: CONFIG GET appendonly)"
                               if plan["appendonly"] else "", swap.where()))
    finally:
        if restarted is not None:
            restarted.close()


def _stage_rdb(repo, backup, identities, binary, workdir, rdb_path):
    """Write the RDB beside the server's as a hidden file, checked by redis-check-rdb and against the manifest,
    owned like the directory (the server must read it). Nothing of the server's is touched yet, and nothing is
    written through a symlink: a leftover of an interrupted run (or anything planted) at that name is removed,
    then the file is created new (O_EXCL|O_NOFOLLOW)."""
    directory = os.path.dirname(rdb_path)
    staged = os.path.join(directory, ".keel-restore-%s.rdb" % backup.id)
    try:
        if os.path.lexists(staged):
            os.unlink(staged)
        fd = files.create_exclusive(staged)
        owner = os.stat(directory)
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
    except OSError as error:
        raise RedisError("cannot write %s into the server's directory: %s; run the module as root or the redis "
                            "user (become: true)" % (staged, error.strerror or error))
    try:
        with redis_resp.failing_as("writing %s" % staged, "check the free space of that file system"):
            with os.fdopen(fd, "wb") as handle:
                found = _inspect_stream(repo, backup, identities, binary, workdir, handle)
                handle.flush()
                os.fsync(handle.fileno())
        check_counts(backup.manifest["statistics"], found["databases"], "the RDB written to %s" % staged)
    except BaseException:
        os.unlink(staged)
        raise
    return staged


def _switch_aof_off(server, plan):
    """With AOF on, switch it off in the config file before the stop, so that the next start loads the RDB."""
    if not plan["appendonly"]:
        return
    server.call("switching AOF off for the restore", "CONFIG", "SET", "appendonly", "no")
    try:
        server.call("writing appendonly no to the config file", "CONFIG", "REWRITE")
    except BaseException:
        server.call("switching AOF back on", "CONFIG", "SET", "appendonly", "yes")
        raise


def _restore_keys(config, plan, repo, backup, identities, workdir, binary):
    restore_started = time.monotonic()
    temp, loaded = _load_into_temporary(config, repo, backup, identities, binary, workdir)
    connections = []
    try:
        temp.promote()
        connections = [temp.connection.open_resp(), temp.connection.open_resp(), config.connection.open_resp()]
        scanner, reader, target = connections
        databases = sorted(loaded, key=int)
        for db in databases:  # a target with fewer databases fails here, before any write
            target.call("SELECT", db)
        if not config.replace:
            _refuse_conflicts(scanner, target, databases)
        copier = redis_keys.KeyCopier(reader, target, config.replace, plan["absolute_ttl"])
        restored = {}
        for db in databases:
            for resp in connections:
                resp.call("SELECT", db)
            before = copier.restored
            for keys in redis_keys.scan_keys(scanner, BATCH):
                copier.copy(keys)
            restored[db] = copier.restored - before
    finally:
        for resp in connections:
            resp.close()
        temp.stop()
    if copier.busy:
        raise KeelError("%d keys appeared in the target while the restore ran and were left as they were (%s); the "
                        "other %d keys were restored. Run again with replace: true to overwrite them"
                        % (len(copier.busy), ", ".join(copier.busy[:CONFLICTS_LISTED]), copier.restored))
    seconds = round(time.monotonic() - restore_started, 3)
    return {"restored": restored, "expired_meanwhile": copier.expired, "restore_duration": seconds,
            "verification": {"loaded": loaded, "restored": restored, "keys": copier.restored},
            "summary": "%d keys restored (%d expired meanwhile)" % (copier.restored, copier.expired)}


def _refuse_conflicts(scanner, target, databases):
    count, names = 0, []
    for db in databases:
        scanner.call("SELECT", db)
        target.call("SELECT", db)
        found, listed = redis_keys.find_conflicts(redis_keys.scan_keys(scanner, BATCH), target, CONFLICTS_LISTED - len(names))
        count += found
        names += ["db%s:%s" % (db, name) for name in listed]
    if count:
        raise KeelError("%d keys of the snapshot already exist in %s (%s%s); nothing was written. Set replace: true "
                        "to overwrite them" % (count, target.where, ", ".join(names), ", ..." if count > len(names)
                                               else ""))


# --- verified ---------------------------------------------------------------------------------------

@_engine_errors("verifying a Redis snapshot")
def verify(config, reporter):
    """state=verified: checksums, the RDB's own validity and its key counts, recorded in the repository."""
    repo, chosen = _select(config, reporter)
    if reporter.check_mode:
        return dict(changed=False, backup_id=chosen.id, msg="would verify snapshot %s" % chosen.id,
                    plan={"backup_id": chosen.id, "method": config.verify_method})
    started = time.monotonic()
    stats = chosen.manifest["statistics"]
    binary = _check_binary(config, chosen)
    with repo.hold(chosen, "redis_snapshot verification"):
        checked = repo.check_artifacts(chosen)
        identities = encoding.open_identities(config, repo, chosen)
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
    workdir = _workdir()
    try:
        started = time.monotonic()
        if config.verify_method == "check":
            found = _inspect_stream(repo, backup, identities, binary, workdir, redis_rdb.NullSink())
            check_counts(backup.manifest["statistics"], found["databases"], "the stored RDB")
            details = {"checksum": found["checksum"], "checked_by": found["checked_by"]}
        else:
            temp, loaded = _load_into_temporary(config, repo, backup, identities, binary, workdir)
            temp.stop()
            details = {"loaded": loaded, "loaded_by": binary.describe()}
        return details, round(time.monotonic() - started, 3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- absent and info --------------------------------------------------------------------------------

@_engine_errors("applying retention to Redis snapshots")
def prune(config, reporter):
    """state=absent: retention only."""
    retention, cleaned = lifecycle.prune(_repository(config, reporter), config, reporter)
    deleted = retention["deleted"]
    return dict(changed=bool(deleted), retention=retention, deleted=deleted, cleaned_up=cleaned,
                msg="%s %d snapshots" % ("would delete" if reporter.check_mode else "deleted", len(deleted)))


def _snapshot_summary(backup):
    summary = backup.summary()
    stats = backup.manifest.get("statistics") or {}
    summary.update(keys=stats.get("keys"), databases=stats.get("databases"), rdb_version=stats.get("rdb_version"),
                   redis_version=stats.get("redis_version"), checksum=stats.get("checksum"),
                   method=(backup.manifest.get("method") or {}).get("name"))
    return summary


@_engine_errors("listing Redis snapshots")
def describe_snapshots(params, reporter):
    """redis_snapshot_info: snapshots newest first, filtered, and whether the newest is older than max_age."""
    found, age, stale = listing.describe_repository(params, "redis", reporter, noun="snapshot")
    return dict(snapshots=[_snapshot_summary(b) for b in found], count=len(found), newest_age_hours=age, stale=stale)
