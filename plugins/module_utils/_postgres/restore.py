# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring logical PostgreSQL backups (state=restored), and proving they restore (state=verified).

Nothing is touched until it is known to be safe: checksums and the decryption key are proven first, a live
database is replaced by a checked copy built beside it, and every restore is checked against the row counts
the manifest recorded. Each public function takes a PgBackupConfig and a Reporter and returns the module's
result dict.
"""

import contextlib
import os
import shutil
import subprocess
import threading
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._postgres import catalog as pg_catalog
from ansible_collections.keel.ops.plugins.module_utils._postgres import replace as pg_replace
from ansible_collections.keel.ops.plugins.module_utils._postgres import scripts as pg_scripts
from ansible_collections.keel.ops.plugins.module_utils._postgres import tools as pg_tools

from ansible_collections.keel.ops.plugins.module_utils._backup import dirstream, encoding, lifecycle, pipeline
from ansible_collections.keel.ops.plugins.module_utils._backup.config import VERSION
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, utcnow
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._postgres import logical


def _restore_artifact(config, tools, repo, backup, artifact, identities, target, workdir, clean=False):
    """Stream the artifact into pg_restore's stdin, or (directory format, or jobs > 1) onto local disk first."""
    on_disk = artifact.get("format") == "directory" or config.jobs > 1
    path = None
    if on_disk:
        path = _restore_to_disk(repo, backup, artifact, identities, workdir)
    argv = pg_tools.pg_restore_argv(tools["pg_restore"], target, no_owner=config.no_owner, role=config.role,
                                    schemas=_restore_schemas(config), tables=_table_names(config.restore_tables),
                                    jobs=config.jobs if on_disk else 1, path=path)
    if clean:
        argv[1:1] = ["--clean", "--if-exists"]
    env = config.connection.child_env(workdir)
    if on_disk:
        return process.Child(argv, env, workdir).finish()
    child = process.Child(argv, env, workdir, stdin=subprocess.PIPE)
    try:
        encoding.stream_into(repo, backup, artifact, identities, child.proc.stdin)
        child.proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        # pg_restore stopped reading: either it failed (finish() raises with its words) or, restoring only some
        # tables, it had all it needed; the statistics check afterwards proves the latter.
        return child.finish()
    except BaseException:
        child.kill()
        raise
    return child.finish()


def _restore_to_disk(repo, backup, artifact, identities, workdir):
    """Unpack an artifact under workdir for pg_restore --jobs; only unencrypted backups get here."""
    if identities:
        raise ConfigError("restoring backup %s with jobs > 1 would write its decrypted dump to local disk; restore "
                          "encrypted backups with jobs: 1" % backup.id)
    if artifact.get("format") == "directory":
        path = os.path.join(workdir, "restore.dir")
        sink = dirstream.DirectoryWriter(path)
    else:
        path = os.path.join(workdir, "restore.dump")
        sink = open(path, "wb")
    try:
        encoding.stream_into(repo, backup, artifact, identities, sink)
    finally:
        sink.close()
    return path


def _restore_schemas(config):
    """restore_schemas, or else the schemas named in schema-qualified restore_tables."""
    if config.restore_schemas:
        return sorted(config.restore_schemas)
    return sorted(set(t.split(".", 1)[0] for t in config.restore_tables or () if "." in t))


def _table_names(tables):
    """pg_restore's --table takes bare names; schema qualification is applied through restore_schemas."""
    return [table.split(".", 1)[-1] for table in tables or ()]


def _database_artifact(backup, database):
    artifacts = [a for a in backup.manifest["artifacts"] if a["kind"] == "database"]
    if database:
        for artifact in artifacts:
            if artifact["database"] == database:
                return artifact
        raise KeelError("backup %s holds no database %s; it holds %s"
                        % (backup.id, database, ", ".join(a["database"] for a in artifacts) or "only globals"))
    if len(artifacts) != 1:
        raise ConfigError("backup %s holds %d databases (%s): name the one to restore with database"
                          % (backup.id, len(artifacts), ", ".join(a["database"] for a in artifacts)))
    return artifacts[0]


def _expected_tables(stats, config):
    """The tables a (possibly partial) restore must bring back."""
    tables = sorted(stats["tables"])
    if config.restore_schemas:
        tables = [t for t in tables if t.split(".", 1)[0] in config.restore_schemas]
    if config.restore_tables:
        names = set(config.restore_tables)
        tables = [t for t in tables if t in names or t.split(".", 1)[1] in names]
    return tables


def _check_restored(config, target, stats, tables, partial):
    conn = config.connection.connect(target)
    try:
        actual = pg_catalog.table_statistics(conn)
    finally:
        conn.close()
    problems = pg_catalog.compare_statistics(stats, actual, tables=tables if partial else None)
    if problems:
        raise KeelError("restored database %s does not match backup statistics: %s"
                        % (target, "; ".join(problems)))
    return {"tables": len(tables), "rows": sum(stats["tables"][t] for t in tables),
            "large_objects": actual["large_objects"]}


def _target_state(connection, name):
    """'missing', 'empty' or 'not empty': what a restore into `name` would overwrite."""
    admin = connection.connect()
    try:
        if not pg_catalog.database_exists(admin, name):
            return "missing"
    finally:
        admin.close()
    conn = connection.connect(name)
    try:
        return "empty" if pg_catalog.user_object_count(conn) == 0 else "not empty"
    finally:
        conn.close()


def restore(config, reporter):
    """state=restored: restore a selected backup into a target database, then check it.

    A target that holds data is never dropped first: the backup is restored beside it into a staging database,
    checked against the manifest's statistics, and only then swapped in by renaming both in one transaction. Any
    failure before the swap leaves the target as it was."""
    tools = pg_tools.find_tools(config.bin_dir)
    repo, chosen = logical.select_backup(config, config.database, reporter)
    if not [a for a in chosen.manifest["artifacts"] if a.get("kind") == "database"] and _globals_artifact(chosen):
        return _restore_only_globals(config, tools, repo, chosen, reporter)
    artifact = _database_artifact(chosen, config.database if chosen.manifest["source"]["scope"] == "cluster"
                                  else None)
    stats = _statistics(chosen, artifact)
    target = config.target_database or artifact["database"]
    pg_catalog.validate_identifier(target, "target_database")
    partial = bool(config.restore_schemas or config.restore_tables)
    state = _target_state(config.connection, target)
    if config.restore_globals and not _globals_artifact(chosen):
        raise ConfigError("restore_globals: backup %s holds no globals; only scope cluster or globals backups do"
                          % chosen.id)
    swap = state == "not empty" and not partial
    plan = {"backup_id": chosen.id, "backup_time": isoformat(chosen.time), "source": repo.source,
            "artifact": artifact["name"], "target_database": target, "target_state": state,
            "restore_globals": bool(config.restore_globals), "drop_target": swap, "partial": partial,
            "staging_database": pg_replace.staging_name(target) if swap else None,
            "safety_backup": bool(config.safety_backup and state == "not empty")}
    if state == "not empty" and not config.replace:
        raise KeelError("target database %s is not empty: restoring would overwrite it. Set replace: true to replace "
                        "it%s, or restore into another target_database"
                        % (target, " (it is restored beside the current one and swapped in once checked; "
                                   "safety_backup: true also keeps a backup of it)" if not partial else ""))
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=chosen.id, target_database=target,
                    artifacts_checked=lifecycle.proven(repo, chosen, config),
                    msg="would restore backup %s into %s%s; its checksums and key are proven" % (
                        chosen.id, target, ", replacing it by a checked copy built beside it" if swap else ""))
    started = time.monotonic()
    with lifecycle.reading(repo, chosen, config, "pg_backup restore into %s" % target) as (checked, identities):
        safety = _safety_backup(config, target, reporter) if plan["safety_backup"] else None
        with _restore_lock(config, target, reporter) as admin:
            restored = _restore_into(config, tools, repo, chosen, artifact, identities, plan, stats, admin, reporter)
    duration = round(time.monotonic() - started, 3)
    return dict(changed=True, plan=plan, backup_id=chosen.id, target_database=target, artifacts_checked=checked,
                safety_backup=safety, verification=restored["verification"], duration=duration,
                restore_duration=restored["restore_duration"],
                msg="restored backup %s into %s: %d tables, %d rows match the backup, in %.1fs"
                % (chosen.id, target, restored["verification"]["tables"], restored["verification"]["rows"],
                   duration))


def _restore_only_globals(config, tools, repo, backup, reporter):
    """A scope=globals backup holds roles and tablespaces only: restoring it replays them, when asked to."""
    if not config.restore_globals:
        raise ConfigError("backup %s holds only globals (roles, tablespaces): set restore_globals: true to replay "
                          "them" % backup.id)
    plan = {"backup_id": backup.id, "backup_time": isoformat(backup.time), "source": repo.source,
            "artifact": _globals_artifact(backup)["name"], "restore_globals": True, "target_database": None}
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=backup.id, artifacts_checked=lifecycle.proven(repo, backup, config),
                    msg="would replay the globals of backup %s; its checksums and key are proven" % backup.id)
    started = time.monotonic()
    workdir = process.workdir()
    try:
        with lifecycle.reading(repo, backup, config, "pg_backup restore of globals") as (checked, identities):
            _restore_globals(config, tools, repo, backup, identities, workdir, reporter)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = round(time.monotonic() - started, 3)
    return dict(changed=True, plan=plan, backup_id=backup.id, target_database=None, artifacts_checked=checked,
                duration=duration, restore_duration=duration,
                msg="replayed the globals of backup %s in %.1fs" % (backup.id, duration))


def _statistics(backup, artifact):
    stats = (backup.manifest.get("statistics") or {}).get(artifact["database"])
    if not isinstance(stats, dict) or not isinstance(stats.get("tables"), dict):
        raise IntegrityError("backup %s records no statistics for database %s, so a restore could not be checked: "
                             "its manifest is not one pg_backup wrote" % (backup.id, artifact["database"]))
    return stats


@contextlib.contextmanager
def _restore_lock(config, target, reporter):
    """One restore per target at a time (an advisory lock, freed by the server even if this process is killed);
    under it, what a killed restore left is repaired: a staging copy that never served is dropped, and the
    previous database that a completed swap did not get to drop is dropped, as that run would have."""
    admin = config.connection.connect()
    try:
        if not pg_replace.try_restore_lock(admin, target):
            raise KeelError("another restore into %s is running on %s; wait for it to finish"
                            % (target, config.connection.describe()))
        for leftover, why in ((pg_replace.staging_name(target), "the unfinished copy of a restore that was interrupted"),
                              (pg_replace.replaced_name(target), "the database that an interrupted restore replaced")):
            if pg_catalog.database_exists(admin, leftover):
                reporter.warn("dropped %s, %s into %s" % (leftover, why, target))
                pg_catalog.drop_database(admin, leftover)
        yield admin
    finally:
        admin.close()


def _restore_into(config, tools, repo, backup, artifact, identities, plan, stats, admin, reporter):
    """Restore into the target, or beside it and swap; returns the check's figures and the restore's duration."""
    target, partial, swap = plan["target_database"], plan["partial"], plan["drop_target"]
    into = plan["staging_database"] if swap else target
    in_place = partial and plan["target_state"] == "not empty"
    workdir = process.workdir()
    try:
        if config.restore_globals:
            _restore_globals(config, tools, repo, backup, identities, workdir, reporter)
        owner = config.role or (pg_replace.database_owner(admin, target) if swap else None)
        _prepare_target(config, admin, into, "missing" if swap else plan["target_state"], partial, stats, owner)
        started = time.monotonic()
        # Tables replaced inside a live database: one transaction (jobs: 1), so a failure rolls all of it back.
        restore_config = logical.PgBackupConfig(**dict(config.__dict__, jobs=1)) if in_place else config
        _restore_artifact(restore_config, tools, repo, backup, artifact, identities, into, workdir, clean=in_place)
        seconds = round(time.monotonic() - started, 3)
        with _flushing(config, swap):
            verification = _check_restored(config, into, stats, _expected_tables(stats, config), partial)
    except BaseException as error:
        if swap:
            with contextlib.suppress(KeelError):
                pg_catalog.drop_database(admin, into)
            if isinstance(error, KeelError):
                raise KeelError("%s. %s was not touched: the backup was restored beside it, into %s, which was "
                                "dropped again" % (error, target, into))
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if swap:
        previous = pg_replace.swap_in(admin, into, target)
        try:
            pg_catalog.drop_database(admin, previous)
        except KeelError as error:
            reporter.warn("the restored %s is in place; its previous version is kept as %s because dropping it "
                          "failed (%s): drop it when you no longer need it" % (target, previous, error))
    return {"verification": verification, "restore_duration": seconds}


@contextlib.contextmanager
def _flushing(config, wanted):
    """While the restored copy's row counts are checked (reads), write its data out (CHECKPOINT, writes) on
    another connection: DROP DATABASE of the replaced one forces a checkpoint afterwards, which then finds
    little left to write. Without the right to CHECKPOINT, that one checkpoint does it all."""
    if not wanted:
        yield
        return
    flusher = threading.Thread(target=_checkpoint, args=(config,), name="keel-restore-checkpoint")
    flusher.daemon = True
    flusher.start()
    try:
        yield
    finally:
        flusher.join()


def _checkpoint(config):
    try:
        conn = config.connection.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("CHECKPOINT")
        finally:
            conn.close()
    except Exception:  # pylint: disable=broad-except
        pass  # an optimisation only: the role may not CHECKPOINT (superuser or pg_checkpoint)


def _globals_artifact(backup):
    return next((a for a in backup.manifest["artifacts"] if a["kind"] == "globals"), None)


GLOBALS_LIMIT = 64 * 1024 * 1024


def _restore_globals(config, tools, repo, backup, identities, workdir, reporter):
    """Replay roles and tablespaces through psql. Roles that already exist make psql report errors and go on,
    which is what a restore into a living cluster needs; those errors come back as warnings.

    The script comes from a repository, so it is data until proven otherwise: read whole (globals are small) and
    refused if it holds any psql meta-command pg_dumpall does not write, before psql sees a byte of it."""
    artifact = _globals_artifact(backup)
    script = _read_globals(repo, backup, artifact, identities)
    pg_scripts.check_globals_script(script, "the globals of backup %s (%s)" % (backup.id, artifact["name"]))
    argv = [tools["psql"], "--no-password", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=0"]
    child = process.Child(argv, config.connection.child_env(workdir), workdir, stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL)
    try:
        child.proc.stdin.write(script.encode("utf-8"))
        child.proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        child.finish()  # psql stopped reading: its own words say why
        raise process.ToolError("psql stopped reading the globals of backup %s before their end: %s"
                                % (backup.id, child.stderr_tail() or "it gave no reason"))
    except BaseException:
        child.kill()
        raise
    errors = [line for line in child.finish().splitlines() if "ERROR" in line]
    if errors:
        reporter.warn("restoring the globals of backup %s: %d statements failed, e.g. %s"
                      % (backup.id, len(errors), errors[0]))


def _read_globals(repo, backup, artifact, identities):
    buffer = pipeline.LimitedBuffer(GLOBALS_LIMIT, "the globals of backup %s" % backup.id)
    encoding.stream_into(repo, backup, artifact, identities, buffer)
    try:
        return buffer.getvalue().decode("utf-8")
    except UnicodeDecodeError as error:
        raise IntegrityError("the globals of backup %s are not UTF-8 text (byte %d): pg_dumpall did not write them"
                             % (backup.id, error.start))


def _safety_backup(config, target, reporter):
    safety_config = logical.PgBackupConfig(**dict(config.__dict__, state="present", scope="database", database=target,
                                                  source=(config.safety_source or "%s-pre-restore" % target),
                                                  keep_last=None, keep_daily=None, keep_weekly=None, keep_monthly=None,
                                                  schemas=None, exclude_schemas=None, tables=None, exclude_tables=None,
                                                  labels={"reason": "safety backup before restore"}))
    result = logical.backup(safety_config, reporter)
    return {"backup_id": result["backup_id"], "source": result["source"], "location": result["location"]}


def _prepare_target(config, admin, target, state, partial, stats, owner):
    if state == "missing":
        pg_catalog.create_database(admin, target, owner=owner, encoding=stats.get("encoding"))
    if partial:
        _create_schemas(config, target)


def _create_schemas(config, target):
    schemas = _restore_schemas(config)
    if not schemas:
        return
    conn = config.connection.connect(target)
    try:
        with conn.cursor() as cur:
            for schema in sorted(schemas):
                cur.execute(pg_catalog.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pg_catalog.sql.Identifier(schema)))
    finally:
        conn.close()


def verify(config, reporter):
    """state=verified: checksums, a restore into a scratch database, the statistics check; recorded."""
    tools = pg_tools.find_tools(config.bin_dir)
    repo, chosen = logical.select_backup(config, config.database, reporter)
    databases = [a for a in chosen.manifest["artifacts"] if a.get("kind") == "database"]
    if reporter.check_mode:
        return dict(changed=False, backup_id=chosen.id, msg="would verify backup %s" % chosen.id,
                    plan={"backup_id": chosen.id, "databases": [a["database"] for a in databases]})
    started = time.monotonic()
    results = []
    workdir = process.workdir()
    try:
        with lifecycle.reading(repo, chosen, config, "pg_backup verification") as (checked, identities):
            for artifact in databases:
                results.append(_verify_database(config, tools, repo, chosen, artifact, identities, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    duration = round(time.monotonic() - started, 3)
    rto = round(sum(r["restore_duration"] for r in results), 3)
    verification = {"time": isoformat(utcnow()), "result": "ok", "duration": duration, "restore_duration": rto,
                    "artifacts_checked": checked, "databases": results, "tool_version": VERSION}
    repo.record_verification(chosen.id, verification)
    return dict(changed=True, backup_id=chosen.id, source=repo.source, verification=verification, restore_duration=rto,
                duration=duration, msg="backup %s verified: checksums match and it restores in %.1fs (%s)"
                % (chosen.id, rto, ", ".join("%s: %d tables, %d rows" % (r["database"], r["tables"], r["rows"])
                                             for r in results)))


def _verify_database(config, tools, repo, backup, artifact, identities, workdir):
    scratch = "keel_verify_%s" % backup.id.split("-")[-1]
    stats = _statistics(backup, artifact)
    admin = config.connection.connect()
    try:
        pg_catalog.drop_database(admin, scratch)
        pg_catalog.create_database(admin, scratch, encoding=stats.get("encoding"))
    finally:
        admin.close()
    verify_config = logical.PgBackupConfig(**dict(config.__dict__, restore_schemas=None, restore_tables=None))
    try:
        started = time.monotonic()
        _restore_artifact(verify_config, tools, repo, backup, artifact, identities, scratch, workdir)
        seconds = round(time.monotonic() - started, 3)
        checked = _check_restored(verify_config, scratch, stats, sorted(stats["tables"]), False)
        conn = config.connection.connect(scratch)
        try:
            checked["amcheck_indexes"] = pg_catalog.check_indexes(conn)
        finally:
            conn.close()
    finally:
        admin = config.connection.connect()
        try:
            pg_catalog.drop_database(admin, scratch)
        finally:
            admin.close()
    return dict(checked, database=artifact["database"], restore_duration=seconds)
