# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_wal_archive: continuous archiving of a server's WAL into a repository, set up on the database host.

Plan, then apply: keel-wal and its configuration installed (wal_install.py), proven by running it as the
server's user, then archive_mode/archive_command (and wal_level when it is minimal) set through ALTER SYSTEM and
a reload. archive_mode and wal_level only change on a restart, which is reported, not done. With verify, a WAL
switch proves that a segment reaches the archive.
"""

import os
import pwd
import subprocess
import time

from ansible_collections.keel.ops.plugins.module_utils._backup import encryption
from ansible_collections.keel.ops.plugins.module_utils._backup.config import s3_options
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, PostgresError
from ansible_collections.keel.ops.plugins.module_utils._postgres import physical, wal_install
from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_archive import WalArchive


SETTINGS = ("archive_mode", "archive_command", "archive_library", "wal_level")


class WalArchiveConfig(physical.PhysicalConfig):
    """The options of pg_wal_archive: those of the physical backups it archives for, and the async worker's."""

    @classmethod
    def from_params(cls, params):
        config = super(WalArchiveConfig, cls).from_params(params)
        if (config.batch or 1) < 1 or (config.workers or 1) < 1:
            raise ConfigError("batch and workers must be at least 1")
        return config


def current_settings(conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),))
        settings = dict(cursor.fetchall())
        # A setting that waits for a restart still shows its old value in pg_settings: what the files say wins,
        # so a second run does not set it again.
        cursor.execute("SELECT name, setting FROM pg_file_settings WHERE name = ANY(%s) AND (error IS NULL OR NOT "
                       "applied) ORDER BY seqno", (list(SETTINGS),))
        settings.update(cursor.fetchall())
        cursor.execute("SELECT current_setting('data_directory'), rolsuper FROM pg_roles WHERE rolname = current_user")
        data_directory, superuser = cursor.fetchone()
    return settings, data_directory, superuser


def desired_settings(current, archive_command, enabled):
    """The ALTER SYSTEM changes that make (or stop making) the server archive through keel-wal."""
    if not enabled:
        wanted = {"archive_mode": "off", "archive_command": ""}
    else:
        wanted = {"archive_mode": "on", "archive_command": archive_command}
        if current.get("archive_library"):
            wanted["archive_library"] = ""  # a library takes precedence over archive_command
        if current.get("wal_level") == "minimal":
            wanted["wal_level"] = "replica"
    return dict((name, value) for name, value in wanted.items() if current.get(name) != value)


def server_user(config, data_directory):
    """(uid, gid, name) of the user the server runs as: the owner of its data directory, unless named."""
    try:
        entry = pwd.getpwnam(config.os_user) if config.os_user else pwd.getpwuid(os.stat(data_directory).st_uid)
    except KeyError:
        raise ConfigError("os_user: no user %r on this host" % config.os_user)
    except OSError as error:
        raise ConfigError("cannot see the data directory %s to learn the server's user (%s): run this module on the "
                          "database host, or give os_user" % (data_directory, error.strerror))
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def command_config(config):
    """What keel-wal reads: the repository and its credentials, compression and the public keys. Never a
    private key: pushing only needs the recipients."""
    for index, text in enumerate(config.encryption_recipients or []):
        encryption.parse_recipient(text, "encryption_recipients[%d]" % index)
    record = {"repository": config.repository, "source": config.source_name(),
              "compression": config.compression or "zstd", "compression_level": config.compression_level,
              "encryption_recipients": [text for text, _recipient in config.recipients], "async": bool(config.async_push),
              "batch": config.batch or 1, "workers": config.workers or 2}
    if s3_options(config.__dict__):
        record["s3"] = s3_options(config.__dict__)
    return record


def selftest(python, directory, config_path, user):
    argv = [python, os.path.join(directory, "keel-wal"), "selftest", "--config", config_path]
    extra = {} if os.geteuid() == user[0] else {"user": user[0], "group": user[1], "extra_groups": []}
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **extra)
    except OSError as error:
        raise ConfigError("cannot run %s as %s: %s" % (python, user[2], error))
    if result.returncode != 0:
        raise ConfigError("keel-wal does not work as %s, the server's user, so archiving was not enabled: %s (give "
                          "python: an interpreter that user can run, and library_paths: where it finds zstandard, "
                          "pyrage and boto3)" % (user[2], (result.stderr or result.stdout).strip()[-800:]))


def apply(config, reporter):
    conn = config.connection.connect()
    try:
        current, data_directory, superuser = current_settings(conn)
        if not superuser:
            raise PostgresError("ALTER SYSTEM needs a superuser; %s is not one" % config.connection.user)
        enabled = config.state == "present"
        user = server_user(config, data_directory)
        directory = wal_install.plain_path(config.command_directory, "command_directory")
        config_path = wal_install.plain_path(config.config_file or "/etc/keel-ops/wal-%s.json" % config.source_name(),
                                             "config_file")
        python = wal_install.plain_path(config.python or wal_install.interpreter(), "python")
        command = wal_install.command_line(python, directory, "push", config_path)
        changed_files = []
        if enabled:
            changed_files = wal_install.install(directory, python, config.library_paths or wal_install.library_paths(),
                                                check_mode=reporter.check_mode)
            if wal_install.write_config(config_path, command_config(config), user[:2], check_mode=reporter.check_mode):
                changed_files.append(config_path)
        settings = desired_settings(current, command, enabled)
        plan = {"files": changed_files, "settings": settings, "archive_command": command, "os_user": user[2]}
        if not reporter.check_mode:
            if enabled:
                selftest(python, directory, config_path, user)
            _alter_system(conn, settings)
        pending = _pending_restart(conn) if not reporter.check_mode else \
            [name for name in settings if name in ("archive_mode", "wal_level")]
        verified = None
        if enabled and config.verify and not reporter.check_mode and not pending:
            verified = verify_archiving(conn, config, config.wal_timeout or 60)
    finally:
        conn.close()
    changed = bool(plan["files"] or settings)
    if pending:
        reporter.warn("restart PostgreSQL to apply %s; archiving %s until then"
                      % (", ".join(pending), "does not start" if enabled else "continues"))
    return dict(changed=changed, plan=plan, restart_required=bool(pending), pending_restart=pending,
                archive_command=command if enabled else None, config_file=config_path, verified=verified,
                msg="%s WAL archiving of %s into %s%s" % ("would set up" if reporter.check_mode and changed else
                                                          "set up" if changed else "already set up",
                                                          config.connection.describe(), config.repository,
                                                          "; restart needed" if pending else ""))


def _alter_system(conn, settings):
    with conn.cursor() as cursor:
        for name, value in sorted(settings.items()):
            cursor.execute("ALTER SYSTEM SET %s = %%s" % name, (value,))  # names come from SETTINGS only
        if settings:
            cursor.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)  # the reload is asynchronous: let the postmaster read the file before pending_restart is


def _pending_restart(conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_settings WHERE pending_restart AND name = ANY(%s) ORDER BY 1",
                       (list(SETTINGS),))
        return [row[0] for row in cursor.fetchall()]


def verify_archiving(conn, config, timeout):
    """Write a WAL record, switch segments, and wait for that segment in the server's archiver statistics and in
    the archive itself."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_walfile_name(pg_logical_emit_message(false, 'keel.ops', 'archive check'))")
        segment = cursor.fetchone()[0]
        cursor.execute("SELECT pg_switch_wal()")
    archive = WalArchive(open_storage(config.repository, s3_options(config.__dict__)), config.source_name())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if archive.stored(segment):
            return {"segment": segment, "archived": True}
        time.sleep(0.2)
    with conn.cursor() as cursor:
        cursor.execute("SELECT last_failed_wal, last_failed_time FROM pg_stat_archiver")
        failed = cursor.fetchone()
    raise PostgresError("WAL segment %s did not reach %s within %ds%s: see the server log for keel-wal's message"
                        % (segment, archive.describe(), timeout,
                           " (last failure: %s at %s)" % failed if failed and failed[0] else ""))
