# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a Redis snapshot (state=restored): by file (stop the server through a hook, put the RDB in place,
start it) or by keys (DUMP/RESTORE through a temporary server that loads the snapshot).

Nothing is touched until it is known to be safe: the checksums and the key are proven, and the RDB itself and
its key counts are checked against the manifest, before a server is stopped or a key written. A file restore
writes only into the data directory the server starts from (files.py), and once the server is down, whatever
happens, it is started again and the message says on which data.
"""

import contextlib
import os
import shutil
import signal
import time

from ansible_collections.keel.ops.plugins.module_utils._redis import connection as redis_connection
from ansible_collections.keel.ops.plugins.module_utils._redis import keys as redis_keys
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp
from ansible_collections.keel.ops.plugins.module_utils._redis import server as redis_server

from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError, RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis import files
from ansible_collections.keel.ops.plugins.module_utils._redis.snapshot import (
    binary_for,
    check_counts,
    failures_reported,
    inspect_stream,
    load_into_temporary,
    make_workdir,
    select_snapshot,
    server_facts,
    total_keys,
)


CONFLICTS_LISTED = 10
BATCH = 1000
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@failures_reported("restoring a Redis snapshot")
def restore(config, reporter):
    """state=restored: bring a snapshot back into a server, by replacing its RDB or by writing its keys."""
    repo, chosen = select_snapshot(config, reporter)
    stats = chosen.manifest["statistics"]
    server = redis_connection.Server(config.connection)
    try:
        facts = server_facts(server)
        _check_target_version(chosen, facts, server)
        if config.restore_method == "file":
            plan = _plan_file(config, server, facts, chosen)
            binary = binary_for(config, chosen, [facts["executable"]])
        else:
            plan = _plan_keys(config, server, facts, chosen)
            binary = binary_for(config, chosen, [facts["executable"]], max_rdb=plan["target_rdb_version"],
                                purpose="read the snapshot through a temporary redis-server whose DUMP the "
                                "target reads")
        plan.update(backup_id=chosen.id, backup_time=isoformat(chosen.time), source=repo.source,
                    snapshot_keys=stats["keys"], redis_binary=binary.describe())
        if reporter.check_mode:
            return dict(changed=True, plan=plan, backup_id=chosen.id,
                        artifacts_checked=lifecycle.proven(repo, chosen, config),
                        msg="would restore snapshot %s into %s by %s; its checksums and key are proven"
                        % (chosen.id, server.describe(), plan["method"]))
        started = time.monotonic()
        with lifecycle.reading(repo, chosen, config, "redis_snapshot restore into %s" % server.describe()) as (checked, identities):
            result = _restore_by_method(config, server, plan, repo, chosen, identities, binary, reporter)
    finally:
        server.close()
    duration = round(time.monotonic() - started, 3)
    summary = result.pop("summary")
    return dict(result, changed=True, plan=plan, backup_id=chosen.id, artifacts_checked=checked, duration=duration,
                msg="restored snapshot %s into %s by %s: %s, in %.1fs"
                % (chosen.id, config.connection.describe(), plan["method"], summary, duration))


def _restore_by_method(config, server, plan, repo, backup, identities, binary, reporter):
    workdir = make_workdir()
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
    keys = total_keys(facts["keyspace"])
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
    keys = total_keys(facts["keyspace"])
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
    return {"previous_files": swap.previous(), "verification": {"loaded": loaded, "keys": total_keys(loaded)},
            "restore_duration": round(time.monotonic() - stopped, 3), "summary": "%d keys loaded" % total_keys(loaded)}


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
                found = inspect_stream(repo, backup, identities, binary, workdir, handle)
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
    temp, loaded = load_into_temporary(config, repo, backup, identities, binary, workdir)
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
