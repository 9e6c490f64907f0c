# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis_snapshot's engine: take, restore, verify and prune Redis RDB snapshots in a backup repository.

Snapshots use the repository and streaming pipeline of pg_backup (_backup.py, _repository.py); _redis.py speaks to
Redis. Each public function takes a RedisSnapshotConfig and a Reporter and returns the module's result. Nothing is
touched until it is known to be safe: a restore proves the checksums and the key, and checks the RDB itself and
its key counts against the manifest, before it stops a server or writes a key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.keel.ops.plugins.module_utils import _backup as common
from ansible_collections.keel.ops.plugins.module_utils import _pipeline as pipeline
from ansible_collections.keel.ops.plugins.module_utils import _redis as rd
from ansible_collections.keel.ops.plugins.module_utils import _repository as repository
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, KeelError

ARTIFACT_STEM = "dump.rdb"
CONFLICTS_LISTED = 10
BATCH = 1000


class RedisSnapshotConfig(common.BackupConfig):
    """Validated options of redis_snapshot; built from module params by from_params()."""

    @classmethod
    def from_params(cls, params):
        config = super(RedisSnapshotConfig, cls).from_params(params)
        config.connection = rd.Connection(
            host=params.get("login_host"), port=params.get("login_port"), unix_socket=params.get("login_unix_socket"),
            user=params.get("login_user"), password=params.get("login_password"), tls=params.get("tls"),
            validate_certs=params.get("validate_certs", True), ca_certs=params.get("ca_certs"),
            client_cert_file=params.get("client_cert_file"), client_key_file=params.get("client_key_file"),
            timeout=params.get("connect_timeout") or 10)
        if (params.get("timeout") or 0) <= 0:
            raise ConfigError("timeout must be a number of seconds above 0, got %s" % params.get("timeout"))
        if params.get("login_user") and not params.get("login_password"):
            raise ConfigError("login_user names an ACL user: give its password in login_password")
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
    return common.open_repository(config.__dict__, "redis", config.source_name(), reporter)


def _workdir():
    return tempfile.mkdtemp(prefix="keel-redis-")


def _now():
    return repository.isoformat(repository.utcnow())


# --- stop and start hooks ---------------------------------------------------------------------------

class CommandHook:
    """Stop and start the server with commands of the caller's (argv lists; they get no secret)."""

    def __init__(self, stop, start):
        self.argv = {"stop": list(stop), "start": list(start)}

    def describe(self):
        return "commands %s / %s" % (" ".join(self.argv["stop"]), " ".join(self.argv["start"]))

    def run(self, action, workdir, timeout):
        try:
            child = common.Child(self.argv[action], dict(os.environ), workdir, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL)
        except OSError as error:
            raise rd.RedisError("the %s hook %s cannot run: %s" % (action, self.argv[action][0],
                                                                   error.strerror or error))
        try:
            child.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise rd.RedisError("the %s hook (%s) did not finish within %ss" % (action, self.argv[action][0], timeout))
        try:
            child.finish()
        except common.ToolError as error:
            raise rd.RedisError("the %s hook failed: %s" % (action, error))

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
    except ImportError:
        raise DependencyError("docker_container needs the Python library 'docker' where the module runs "
                              "(pip install docker)")
    return docker


class DockerHook:
    """Stop and start a container through the Docker API; paths inside it are mapped to the host via its mounts."""

    def __init__(self, name, docker_host):
        docker = _docker()
        self.errors = docker.errors
        self.name = name
        try:
            self.client = docker.DockerClient(base_url=docker_host or os.environ.get("DOCKER_HOST")
                                              or "unix:///var/run/docker.sock", version="auto", timeout=120)
            self.container = self.client.containers.get(name)
        except docker.errors.NotFound:
            raise ConfigError("docker_container: no container named %s" % name)
        except docker.errors.DockerException as error:
            raise rd.RedisError("cannot reach the Docker API for container %s: %s" % (name, rd.first_line(error)))

    def describe(self):
        return "container %s" % self.name

    def run(self, action, _workdir, timeout):
        try:
            if action == "stop":
                self.container.stop(timeout=int(timeout))
            else:
                self.container.start()
        except self.errors.DockerException as error:
            raise rd.RedisError("could not %s container %s: %s" % (action, self.name, rd.first_line(error)))

    def host_path(self, path):
        """Where a path inside the container lives on this host (the longest mount that holds it)."""
        mounts = [m for m in self.container.attrs.get("Mounts") or []
                  if path == m["Destination"] or path.startswith(m["Destination"].rstrip("/") + "/")]
        if not mounts:
            raise ConfigError("%s in container %s is not on a volume or bind mount, so this host cannot reach it; "
                              "use restore_method: keys" % (path, self.name))
        mount = max(mounts, key=lambda m: len(m["Destination"]))
        return os.path.join(mount["Source"], os.path.relpath(path, mount["Destination"]))


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
            "appendonly": bool(int(info.get("aof_enabled", 0))), "keyspace": rd.keyspace(info)}


def _total(databases, field="keys"):
    return sum(counts[field] for counts in (databases or {}).values())


def _rdb_path(config, server):
    directory, filename = server.config_get("dir"), server.config_get("dbfilename")
    if not directory or not filename:
        raise rd.RedisError("%s does not tell where it saves (CONFIG GET dir/dbfilename gave nothing; is CONFIG "
                            "renamed?): use snapshot_method: replication" % server.describe())
    path = os.path.join(directory, filename)
    return config.hook.host_path(path) if config.hook else path


# --- present ----------------------------------------------------------------------------------------

def snapshot(config, reporter):
    """state=present: take a snapshot, then apply retention."""
    server = rd.Server(config.connection)
    facts = server_facts(server)
    repo = _repository(config, reporter)
    rdb_path = _rdb_path(config, server) if config.snapshot_method == "bgsave" else None
    plan = {"source": repo.source, "repository": repo.describe(), "method": config.snapshot_method,
            "server": server.describe(), "server_version": facts["version"], "role": facts["role"],
            "keys": _total(facts["keyspace"]), "used_memory": facts["used_memory"], "rdb_path": rdb_path}
    binary = rd.find_binary(config.redis_server_bin, [facts["executable"]], rd.rdb_version_of(facts["version"]),
                            purpose="check the snapshot")
    plan["checker"] = binary.describe("redis-check-rdb")
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=None, msg="would snapshot %s (%s) into %s"
                    % (server.describe(), config.snapshot_method, repo.describe()))
    encoder = common.Encoder(config)
    workdir = _workdir()
    try:
        manifest, cleaned, retention = common.run_backup(
            repo, config, reporter,
            lambda backup_id: _take_snapshot(config, server, facts, binary, repo, encoder, rdb_path, workdir,
                                             backup_id))
    finally:
        server.close()
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


def _open_rdb(config, server, rdb_path):
    if config.snapshot_method == "bgsave":
        return rd.BgsaveRdb(server, rdb_path, config.timeout)
    return rd.ReplicationRdb(config.connection, config.timeout)


def _take_snapshot(config, server, facts, binary, repo, encoder, rdb_path, workdir, backup_id):
    """Write the snapshot's artifacts and return its manifest; run_backup() commits it."""
    started = repository.utcnow()
    clock = time.monotonic()
    artifacts = []
    checker = source = None
    try:
        if encoder.wrapped_key:
            artifacts.append(common.store_key(repo, backup_id, encoder))
        checker = rd.RdbCheck(binary, workdir)
        inspector = rd.RdbInspector(checker)
        source = _open_rdb(config, server, rdb_path)
        artifact = common.store_artifact(repo, backup_id, encoder.artifact_name(ARTIFACT_STEM), encoder,
                                         rd.InspectingReader(source, inspector))
        stats = inspector.finish()
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
            method.update(rdb_path=rdb_path, read_while_saving=source.tailed)
        manifest = dict(encoder.manifest(), id=backup_id, kind="redis", format="rdb", source=source_info,
                        tool={"name": "keel.ops.redis_snapshot", "version": common.VERSION,
                              "checker": binary.describe("redis-check-rdb")},
                        started=repository.isoformat(started), finished=_now(), duration=duration,
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
        raise pipeline.IntegrityError("%s does not match the snapshot's manifest: %s" % (what, "; ".join(problems)))


def _rdb_artifact(backup):
    return next(a for a in backup.manifest["artifacts"] if a.get("kind") == "rdb")


def _select(config, reporter):
    repo = _repository(config, reporter)
    return repo, repo.select(config.backup_id or "latest", config.before)


def _check_binary(config, backup, hints=(), max_rdb=None, purpose="check the snapshot"):
    return rd.find_binary(config.redis_server_bin, list(hints), backup.manifest["statistics"]["rdb_version"],
                          max_rdb=max_rdb, purpose=purpose)


def _inspect_stream(repo, backup, identities, binary, workdir, sink):
    """Stream a snapshot's RDB into sink while redis-check-rdb checks it; returns what the RDB says."""
    inspector = rd.RdbInspector(rd.RdbCheck(binary, workdir))
    try:
        common.stream_into(repo, backup, _rdb_artifact(backup), identities, rd.InspectingWriter(sink, inspector))
    except BaseException:
        inspector.checker.kill()
        raise
    return inspector.finish()


def _load_into_temporary(config, repo, backup, identities, binary, workdir):
    """A temporary server holding the snapshot, checked key for key-count against the manifest."""
    stats = backup.manifest["statistics"]
    databases = max([int(db) for db in stats.get("databases") or {}] + [15]) + 1
    temp = rd.TemporaryServer(binary, workdir, databases)
    try:
        temp.load(lambda sink: common.stream_into(repo, backup, _rdb_artifact(backup), identities, sink),
                  _rdb_artifact(backup)["raw_size"], config.timeout)
        loaded = temp.keyspace()
        check_counts(stats, loaded, "the snapshot loaded into a temporary redis-server")
        return temp, loaded
    except BaseException:
        temp.stop()
        raise


# --- restored ---------------------------------------------------------------------------------------

def restore(config, reporter):
    """state=restored: bring a snapshot back into a server, by replacing its RDB or by writing its keys."""
    repo, chosen = _select(config, reporter)
    stats = chosen.manifest["statistics"]
    server = rd.Server(config.connection)
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
        plan.update(backup_id=chosen.id, backup_time=repository.isoformat(chosen.time), source=repo.source,
                    snapshot_keys=stats["keys"], redis_binary=binary.describe())
        if reporter.check_mode:
            return dict(changed=True, plan=plan, backup_id=chosen.id, msg="would restore snapshot %s into %s by %s"
                        % (chosen.id, server.describe(), plan["method"]))
        started = time.monotonic()
        checked = repo.check_artifacts(chosen)
        identities = common.open_identities(config, repo, chosen)
        workdir = _workdir()
        try:
            if config.restore_method == "file":
                result = _restore_file(config, server, plan, repo, chosen, identities, workdir, binary)
            else:
                result = _restore_keys(config, plan, repo, chosen, identities, workdir, binary)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.close()
    duration = round(time.monotonic() - started, 3)
    summary = result.pop("summary")
    return dict(result, changed=True, plan=plan, backup_id=chosen.id, artifacts_checked=checked, duration=duration,
                msg="restored snapshot %s into %s by %s: %s, in %.1fs"
                % (chosen.id, config.connection.describe(), plan["method"], summary, duration))


def _check_target_version(backup, facts, server):
    rdb_version = backup.manifest["statistics"]["rdb_version"]
    if rd.rdb_version_of(facts["version"]) < rdb_version:
        raise KeelError("snapshot %s was written by Redis %s (RDB version %d), which %s (Redis %s) cannot read: "
                        "restore into a server of that version or newer"
                        % (backup.id, backup.manifest["source"]["server_version"], rdb_version, server.describe(),
                           facts["version"]))


def _plan_file(config, server, facts, backup):
    hook = config.hook
    directory = server.config_get("dir")
    rdb_path = hook.host_path(os.path.join(directory, server.config_get("dbfilename")))
    aof_paths = []
    if facts["appendonly"]:
        if not facts["config_file"]:
            raise KeelError("%s runs with appendonly yes but without a config file: it would start from its AOF and "
                            "ignore the restored RDB, and there is no file to switch AOF off in for that start; "
                            "use restore_method: keys" % server.describe())
        name = server.config_get("appenddirname") or server.config_get("appendfilename")
        aof_paths.append(hook.host_path(os.path.join(directory, name)))
    keys = _total(facts["keyspace"])
    if keys and not config.replace:
        raise KeelError("%s holds %d keys and the file method replaces all of them: set replace: true (its current "
                        "RDB and AOF are kept beside the new one), or use restore_method: keys"
                        % (server.describe(), keys))
    return {"method": "file", "target": server.describe(), "target_keys": keys, "hook": hook.describe(),
            "rdb_path": rdb_path, "appendonly": facts["appendonly"], "aof_paths": aof_paths,
            "config_file": facts["config_file"], "rdb_version": backup.manifest["statistics"]["rdb_version"]}


def _plan_keys(config, server, facts, backup):
    keys = _total(facts["keyspace"])
    return {"method": "keys", "target": server.describe(), "target_keys": keys, "replace": config.replace,
            "absolute_ttl": rd.parse_version(facts["version"]) >= (5, 0, 0),
            "databases": sorted(backup.manifest["statistics"].get("databases") or {}, key=int),
            "target_rdb_version": rd.rdb_version_of(facts["version"])}


def _restore_file(config, server, plan, repo, backup, identities, workdir, binary):
    staged = _stage_rdb(repo, backup, identities, binary, workdir, plan["rdb_path"])
    stopped = time.monotonic()  # from here on the server goes down: the time that matters to its clients
    try:
        _stop_for_restore(config, server, plan, workdir)
    except BaseException:
        os.unlink(staged)
        raise
    previous = _set_aside([plan["rdb_path"]] + plan["aof_paths"])
    os.replace(staged, plan["rdb_path"])
    _fsync_dir(os.path.dirname(plan["rdb_path"]))
    try:
        config.hook.run("start", workdir, config.timeout)
        rd.wait_loaded(config.connection, config.timeout)
    except rd.RedisError as error:
        raise rd.RedisError("%s. The snapshot's RDB is in place at %s; the server's previous files are %s"
                            % (error, plan["rdb_path"], ", ".join(previous) or "none (it had no RDB or AOF)"))
    restarted = rd.Server(config.connection)
    try:
        if plan["appendonly"]:
            # The RDB was loaded with AOF off; switching it on rewrites the AOF from what is now in memory.
            restarted.call("switching AOF back on", "CONFIG", "SET", "appendonly", "yes")
            rd.wait_aof_rewritten(restarted, config.timeout)
            restarted.call("writing appendonly yes back to the config file", "CONFIG", "REWRITE")
        loaded = rd.keyspace(restarted.info("keyspace"))
    finally:
        restarted.close()
    check_counts(backup.manifest["statistics"], loaded, "%s after the restore" % config.connection.describe(),
                 loaded=True)
    return {"previous_files": previous, "verification": {"loaded": loaded, "keys": _total(loaded)},
            "restore_duration": round(time.monotonic() - stopped, 3), "summary": "%d keys loaded" % _total(loaded)}


def _stage_rdb(repo, backup, identities, binary, workdir, rdb_path):
    """Write the RDB beside the server's as a hidden file, checked by redis-check-rdb and against the manifest,
    owned like the directory (the server must read it). Nothing of the server's is touched yet."""
    directory = os.path.dirname(rdb_path)
    staged = os.path.join(directory, ".keel-restore-%s.rdb" % backup.id)
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        owner = os.stat(directory)
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
    except OSError as error:
        raise rd.RedisError("cannot write into the server's directory %s: %s; run the module as root or the redis "
                            "user (become: true)" % (directory, error.strerror or error))
    try:
        with os.fdopen(fd, "wb") as handle:
            found = _inspect_stream(repo, backup, identities, binary, workdir, handle)
            handle.flush()
            os.fsync(handle.fileno())
        check_counts(backup.manifest["statistics"], found["databases"], "the RDB written to %s" % staged)
    except BaseException:
        os.unlink(staged)
        raise
    return staged


def _stop_for_restore(config, server, plan, workdir):
    """Stop the server; with AOF on, switch it off in the config file first, so the next start loads the RDB."""
    if plan["appendonly"]:
        server.call("switching AOF off for the restore", "CONFIG", "SET", "appendonly", "no")
        try:
            server.call("writing appendonly no to the config file", "CONFIG", "REWRITE")
        except rd.RedisError:
            server.call("switching AOF back on", "CONFIG", "SET", "appendonly", "yes")
            raise
    try:
        config.hook.run("stop", workdir, config.timeout)
        rd.wait_down(config.connection, config.timeout)
    except BaseException:
        if plan["appendonly"]:
            raise rd.RedisError("the server could not be stopped, and its config file now says appendonly no: run "
                                "CONFIG SET appendonly yes and CONFIG REWRITE on it to undo that")
        raise


def _set_aside(paths):
    """Rename what the restore replaces to <name>.pre-restore-<time>: the previous state stays recoverable."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kept = []
    for path in paths:
        if os.path.lexists(path):
            os.rename(path, "%s.pre-restore-%s" % (path, stamp))
            kept.append("%s.pre-restore-%s" % (path, stamp))
    return kept


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        copier = rd.KeyCopier(reader, target, config.replace, plan["absolute_ttl"])
        restored = {}
        for db in databases:
            for resp in connections:
                resp.call("SELECT", db)
            before = copier.restored
            for keys in rd.scan_keys(scanner, BATCH):
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
        found, listed = rd.find_conflicts(rd.scan_keys(scanner, BATCH), target, CONFLICTS_LISTED - len(names))
        count += found
        names += ["db%s:%s" % (db, name) for name in listed]
    if count:
        raise KeelError("%d keys of the snapshot already exist in %s (%s%s); nothing was written. Set replace: true "
                        "to overwrite them" % (count, target.where, ", ".join(names), ", ..." if count > len(names)
                                               else ""))


# --- verified ---------------------------------------------------------------------------------------

def verify(config, reporter):
    """state=verified: checksums, the RDB's own validity and its key counts, recorded in the repository."""
    repo, chosen = _select(config, reporter)
    if reporter.check_mode:
        return dict(changed=False, backup_id=chosen.id, msg="would verify snapshot %s" % chosen.id,
                    plan={"backup_id": chosen.id, "method": config.verify_method})
    started = time.monotonic()
    checked = repo.check_artifacts(chosen)
    identities = common.open_identities(config, repo, chosen)
    stats = chosen.manifest["statistics"]
    binary = _check_binary(config, chosen)
    workdir = _workdir()
    try:
        check_started = time.monotonic()
        if config.verify_method == "check":
            found = _inspect_stream(repo, chosen, identities, binary, workdir, rd.NullSink())
            check_counts(stats, found["databases"], "the stored RDB")
            details = {"checksum": found["checksum"], "checked_by": found["checked_by"]}
        else:
            temp, loaded = _load_into_temporary(config, repo, chosen, identities, binary, workdir)
            temp.stop()
            details = {"loaded": loaded, "loaded_by": binary.describe()}
        seconds = round(time.monotonic() - check_started, 3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = round(time.monotonic() - started, 3)
    verification = dict(details, time=_now(), result="ok", method=config.verify_method,
                        duration=duration, restore_duration=seconds, artifacts_checked=checked, keys=stats["keys"],
                        databases=stats.get("databases"), tool_version=common.VERSION)
    repo.record_verification(chosen.id, verification)
    return dict(changed=True, backup_id=chosen.id, verification=verification, duration=duration,
                restore_duration=seconds,
                msg="snapshot %s verified (%s): checksums match, the RDB is valid and holds the %d keys recorded"
                % (chosen.id, config.verify_method, stats["keys"]))


# --- absent and info --------------------------------------------------------------------------------

def prune(config, reporter):
    """state=absent: retention only."""
    retention, cleaned = common.prune(_repository(config, reporter), config, reporter)
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


def describe_snapshots(params, reporter):
    """redis_snapshot_info: snapshots newest first, filtered, and whether the newest is older than max_age."""
    found, age, stale = common.describe_repository(params, "redis", reporter, noun="snapshot")
    return dict(snapshots=[_snapshot_summary(b) for b in found], count=len(found), newest_age_hours=age, stale=stale)
