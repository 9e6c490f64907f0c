# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL's client tools: where they are, which version, and the argv of pg_dump, pg_dumpall and pg_restore;
with the names a database gets on local disk and in a repository (never shaped by the name itself)."""

import hashlib
import os
import re
import shutil
import subprocess

from ansible_collections.keel.ops.plugins.module_utils._errors import DependencyError
from ansible_collections.keel.ops.plugins.module_utils._postgres.conninfo import dbname_arg


TOOLS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")


_SLUG_SUFFIX = re.compile(r"-[0-9a-f]{16}$")  # what artifact_stem() appends; a plain name may not end like it


def local_name(database, suffix):
    """A file name under the work dir for a database, derived from a hash, so that no name can climb out of it."""
    return "db-%s%s" % (hashlib.sha256(database.encode("utf-8")).hexdigest()[:16], suffix)


def artifact_stem(database):
    """The repository file name of a database's dump: the name itself when it is plain, otherwise a readable
    slug plus a hash, so that '/', '..' or control characters in a name never shape a storage key."""
    if _PLAIN_NAME.match(database) and not _SLUG_SUFFIX.search(database):
        return database
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", database).strip("_")[:40]
    return "%s-%s" % (slug or "db", hashlib.sha256(database.encode("utf-8")).hexdigest()[:16])


def find_tools(bin_dir=None):
    """Absolute paths of the client tools, from bin_dir or PATH."""
    tools = {}
    for name in TOOLS:
        path = os.path.join(bin_dir, name) if bin_dir else shutil.which(name)
        if not path or not os.access(path, os.X_OK):
            where = "in %s" % bin_dir if bin_dir else "on PATH"
            raise DependencyError("%s was not found %s: install the PostgreSQL client tools (e.g. the "
                                  "postgresql-client package) or set bin_dir to the directory that holds them"
                                  % (name, where))
        tools[name] = path
    return tools


def tool_version(path):
    """'pg_dump (PostgreSQL) 18.1' -> (18, '18.1')."""
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.search(r"(\d+)(?:\.(\d+))?", output)
    if not match:
        raise DependencyError("cannot tell the version of %s from %r" % (path, output))
    return int(match.group(1)), match.group(0)


def check_client_version(tool_path, server_major, server_version):
    """pg_dump refuses servers newer than itself; say so before starting, with the fix."""
    major, version = tool_version(tool_path)
    if major < server_major:
        raise DependencyError(
            "%s is version %s but the server runs PostgreSQL %s: the client tools must be the server's major "
            "version or newer. Install postgresql-client-%d and set bin_dir (e.g. /usr/lib/postgresql/%d/bin)"
            % (os.path.basename(tool_path), version, server_version, server_major, server_major))
    return version


def pg_dump_argv(tool, database, snapshot=None, schemas=(), exclude_schemas=(), tables=(), exclude_tables=(),
                 jobs=1, directory=None, lock_wait_timeout=None):
    """pg_dump in custom format without its own compression (the pipeline compresses, on other cores), or
    directory format with jobs > 1. lock_wait_timeout (seconds) makes it fail instead of waiting forever for a
    table lock that another session holds."""
    argv = [tool, "--no-password", "--format=directory" if jobs > 1 else "--format=custom", "--compress=0"]
    if jobs > 1:
        argv += ["--jobs=%d" % jobs, "--file=%s" % directory]
    if snapshot:
        argv.append("--snapshot=%s" % snapshot)
    if lock_wait_timeout:
        argv.append("--lock-wait-timeout=%dms" % int(lock_wait_timeout * 1000))
    for flag, values in (("--schema", schemas), ("--exclude-schema", exclude_schemas), ("--table", tables),
                         ("--exclude-table", exclude_tables)):
        argv += ["%s=%s" % (flag, value) for value in values]
    return argv + [dbname_arg(database)]


def pg_dumpall_globals_argv(tool, superuser=True):
    argv = [tool, "--no-password", "--globals-only"]
    if not superuser:
        # Without superuser, role passwords cannot be read; the rest of the globals still can.
        argv.append("--no-role-passwords")
    return argv


def pg_restore_argv(tool, database, no_owner=False, role=None, schemas=(), tables=(), jobs=1, path=None):
    """pg_restore reading stdin (one stream, one transaction) or, with a path, a file or directory on disk,
    which is what --jobs needs."""
    argv = [tool, "--no-password", "--exit-on-error", dbname_arg(database)]
    if jobs > 1:
        argv.append("--jobs=%d" % jobs)
    else:
        argv.append("--single-transaction")  # all or nothing: a failed restore leaves an empty database
    if no_owner:
        argv += ["--no-owner", "--no-privileges"]
    if role:
        argv.append("--role=%s" % role)
    argv += ["--schema=%s" % schema for schema in schemas]
    argv += ["--table=%s" % table for table in tables]
    return argv + ([path] if path else [])
