# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logical PostgreSQL backups (pg_dump) for pg_backup: the options, the dump of each database beside exact row
counts from the same snapshot, taking a backup through the shared lifecycle, retention and the info listing.
Restores and verification are restore.py's.

Each public function takes a plain PgBackupConfig and a Reporter (warnings, check mode) and returns the
module's result dict.
"""

import os
import shutil
import subprocess
import threading

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._postgres import catalog as pg_catalog
from ansible_collections.keel.ops.plugins.module_utils._postgres import conninfo as pg_conninfo
from ansible_collections.keel.ops.plugins.module_utils._postgres import tools as pg_tools

from ansible_collections.keel.ops.plugins.module_utils._backup import dirstream, lifecycle, listing
from ansible_collections.keel.ops.plugins.module_utils._backup.config import BackupConfig
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, PostgresError, first_line


class PgBackupConfig(BackupConfig):
    """Validated options of pg_backup; built from module params by from_params()."""

    @classmethod
    def from_params(cls, params):
        config = super(PgBackupConfig, cls).from_params(params)
        config.connection = pg_conninfo.Connection.from_params(params)
        config.jobs = 1 if params.get("jobs") is None else params["jobs"]
        if config.jobs < 1:
            raise ConfigError("jobs must be at least 1, got %s" % config.jobs)
        for option in ("lock_wait_timeout", "statement_timeout"):
            if (params.get(option) or 0) < 0:
                raise ConfigError("%s must be a number of seconds, 0 for no limit; got %s" % (option, params[option]))
        if config.jobs > 1 and config.encrypted:
            raise ConfigError("jobs > 1 makes pg_dump write a directory of plaintext files before they could be "
                              "encrypted; with encryption use jobs: 1 (compression still runs on every core)")
        return config

    def source_name(self, database):
        """The repository folder for this server and database, unless the user named it."""
        if self.source:
            return self.source
        host = self.connection.host or "local"
        host = "local" if host.startswith("/") else host
        subject = {"database": pg_tools.artifact_stem(database or ""), "cluster": "cluster",
                   "globals": "globals"}[self.scope]
        return "%s-%s-%s" % (host, self.connection.port, subject)


def _repository(config, database, reporter):
    return lifecycle.open_repository(config.__dict__, "postgres", config.source_name(database), reporter)


class _RowCounter(threading.Thread):
    """Count rows in a second connection that imports the dump's snapshot, alongside pg_dump.

    Counting in the exporting connection itself would abort the snapshot on any error (say, a table the role
    may not read) and pg_dump would fail with a misleading "could not import the requested snapshot"."""

    def __init__(self, config, database, snapshot, filters):
        threading.Thread.__init__(self)
        self.args = (config, database, snapshot, filters)
        self.stats = None
        self.error = None

    def run(self):
        config, database, snapshot, filters = self.args
        try:
            conn = config.connection.connect(database, autocommit=False)
            try:
                pg_catalog.import_snapshot(conn, snapshot, lock_timeout=config.lock_wait_timeout,
                                           statement_timeout=config.statement_timeout)
                self.stats = pg_catalog.table_statistics(conn, filters)
            finally:
                conn.rollback()
                conn.close()
        except Exception as error:  # pylint: disable=broad-except
            self.error = error


def _dump_database(run, tools, database):
    """pg_dump one database into an artifact, with exact row counts taken from the same snapshot."""
    config = run.config
    snapshot_conn = config.connection.connect(database, autocommit=False)
    try:
        snapshot = pg_catalog.export_snapshot(snapshot_conn)
        filters = dict(schemas=config.schemas or (), exclude_schemas=config.exclude_schemas or (),
                       tables=config.tables or (), exclude_tables=config.exclude_tables or ())
        counter = _RowCounter(config, database, snapshot, filters)
        counter.start()
        try:
            dump = _dump_directory if config.jobs > 1 else _dump_stream
            artifact = dump(run, tools, database, snapshot, filters)
        except process.ToolError as error:
            raise _explained_lock_wait(error, config, database)
        finally:
            counter.join()
        if counter.error is not None:
            raise _explained_lock_wait(PostgresError("cannot count the rows the backup must record: %s"
                                                     % first_line(counter.error)), config, database)
        if artifact["raw_size"] == 0:
            raise PostgresError("pg_dump of %s produced no output" % database)
    finally:
        snapshot_conn.rollback()
        snapshot_conn.close()
    return artifact, counter.stats


def _explained_lock_wait(error, config, database):
    """A dump that gave up waiting for a table lock says so, with what to do, instead of a bare timeout."""
    text = str(error)
    if "lock timeout" in text or ("LOCK TABLE" in text and "statement timeout" in text):
        return PostgresError("waited lock_wait_timeout (%gs) for a table lock in %s that another session holds "
                             "or queues for (a migration?) and gave up, so nothing was stored; run the backup "
                             "outside that work, or raise lock_wait_timeout. %s"
                             % (config.lock_wait_timeout, database, text))
    return error


def _dump_stream(run, tools, database, snapshot, filters):
    """Custom format straight from pg_dump's stdout into the repository: nothing touches the local disk."""
    argv = pg_tools.pg_dump_argv(tools["pg_dump"], database, snapshot=snapshot,
                                 lock_wait_timeout=run.config.lock_wait_timeout, **filters)
    child = process.Child(argv, run.config.connection.child_env(run.workdir), run.workdir, stdout=subprocess.PIPE)
    try:
        artifact = run.store(pg_tools.artifact_stem(database) + ".dump", child.proc.stdout, kind="database",
                             format="custom")
        child.finish()
    except BaseException:
        child.kill()
        raise
    return artifact


def _dump_directory(run, tools, database, snapshot, filters):
    """Directory format with parallel pg_dump workers, then stored as one tar artifact. Its files sit on local
    disk in plaintext for a while, which is why from_params() refuses jobs > 1 with encryption."""
    config = run.config
    directory = os.path.join(run.workdir, pg_tools.local_name(database, ".dir"))
    argv = pg_tools.pg_dump_argv(tools["pg_dump"], database, snapshot=snapshot, jobs=config.jobs,
                                 directory=directory, lock_wait_timeout=config.lock_wait_timeout, **filters)
    process.Child(argv, config.connection.child_env(run.workdir), run.workdir).finish()
    reader = dirstream.DirectoryReader(directory)
    try:
        return run.store(pg_tools.artifact_stem(database) + ".dir.tar", reader, kind="database", format="directory")
    finally:
        reader.close()
        shutil.rmtree(directory, ignore_errors=True)


def _dump_globals(run, tools, superuser):
    argv = pg_tools.pg_dumpall_globals_argv(tools["pg_dumpall"], superuser)
    child = process.Child(argv, run.config.connection.child_env(run.workdir), run.workdir, stdout=subprocess.PIPE)
    try:
        artifact = run.store("globals.sql", child.proc.stdout, kind="globals", format="sql")
        child.finish()
    except BaseException:
        child.kill()
        raise
    return artifact


def _databases_to_dump(config, admin):
    if config.scope == "globals":
        return []
    if config.scope == "cluster":
        return pg_catalog.list_databases(admin)
    if not config.database:
        raise ConfigError("state=present with scope=database needs database: the database to back up")
    if not pg_catalog.database_exists(admin, config.database):
        raise PostgresError("database %s does not exist on %s" % (config.database, config.connection.describe()))
    return [config.database]


def backup(config, reporter):
    """state=present: take a backup, then apply retention."""
    tools = pg_tools.find_tools(config.bin_dir)
    admin = config.connection.connect()
    try:
        server = pg_catalog.server_info(admin)
        client = pg_tools.check_client_version(tools["pg_dump"], server["major"], server["version"])
        databases = _databases_to_dump(config, admin)
    finally:
        admin.close()
    repo = _repository(config, config.database, reporter)
    plan = {"source": repo.source, "repository": repo.describe(), "databases": databases, "scope": config.scope,
            "server_version": server["version"]}
    if reporter.check_mode:
        return dict(changed=True, plan=plan, backup_id=None, msg="would back up %s into %s"
                    % (", ".join(databases) or "the globals", repo.describe()))
    run = lifecycle.BackupRun(config, reporter, repo, "keel.ops.pg_backup")
    manifest = lifecycle.run_backup(run, lambda run: _take_backup(run, tools, databases, server, client))
    result = run.result(manifest, plan)
    result["msg"] = "backup %s of %s: %d bytes stored in %.1fs" % (
        manifest["id"], ", ".join(databases) or "globals", result["size"], manifest["duration"])
    return result


def _take_backup(run, tools, databases, server, client):
    """Store every artifact of one backup and return its manifest; run_backup() commits it."""
    config = run.config
    statistics = {}
    if config.scope in ("cluster", "globals"):
        _dump_globals(run, tools, server["superuser"])
    for database in databases:
        artifact, statistics[database] = _dump_database(run, tools, database)
        artifact["database"] = database
    return run.manifest("postgres", "pg_dump", statistics=statistics, tool_details={"client": client},
                        source={"host": config.connection.host, "port": config.connection.port,
                                "database": config.database, "scope": config.scope,
                                "server_version": server["version"]},
                        options={"schemas": config.schemas, "exclude_schemas": config.exclude_schemas,
                                 "tables": config.tables, "exclude_tables": config.exclude_tables})


def select_backup(config, database_hint, reporter):
    repo = _repository(config, database_hint, reporter)
    return repo, repo.select(config.backup_id or "latest", config.before)


def prune(config, reporter):
    """state=absent: apply retention without taking a backup."""
    return lifecycle.prune(_repository(config, config.database, reporter), config, reporter)


def _has_database(database):
    return lambda backup: not database or database in [a.get("database") for a in backup.manifest["artifacts"]]


def describe_backups(params, reporter):
    """pg_backup_info: filtered backups newest first, and whether the newest is older than max_age hours."""
    backups, age, stale = listing.describe_repository(params, "postgres", reporter,
                                                      wanted=_has_database(params.get("database")))
    return dict(backups=[b.summary() for b in backups], count=len(backups), newest_age_hours=age, stale=stale)
