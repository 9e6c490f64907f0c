# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Installing keel-wal where PostgreSQL can run it: the engine files it imports (copied from the running module's
own payload, so the database host needs neither Ansible nor the collection), a launcher, its configuration file,
and the command lines that name them.

    <directory>/keel-wal                                   the launcher: <python> plus the library path
    <directory>/lib/ansible_collections/keel/ops/plugins/module_utils/...   the files keel-wal imports
"""

import ast
import importlib
import json
import os
import re
import shlex
import sys
import tempfile

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

# Imported here, unused, so that a module's AnsiballZ payload carries everything command_sources() copies.
from ansible_collections.keel.ops.plugins.module_utils._backup import encryption  # noqa: F401  pylint: disable=unused-import
from ansible_collections.keel.ops.plugins.module_utils._backup.storage import local, s3, url  # noqa: F401  pylint: disable=unused-import
from ansible_collections.keel.ops.plugins.module_utils._postgres import wal_archive, wal_command  # noqa: F401  pylint: disable=unused-import


ROOT_PACKAGE = "ansible_collections.keel.ops.plugins.module_utils"
COMMAND_MODULE = ROOT_PACKAGE + "._postgres.wal_command"
# Modules keel-wal imports only inside functions, by name, on the paths it takes.
ENTRY_MODULES = (COMMAND_MODULE, ROOT_PACKAGE + "._postgres.wal_archive", ROOT_PACKAGE + "._backup.storage.url",
                 ROOT_PACKAGE + "._backup.storage.local", ROOT_PACKAGE + "._backup.storage.s3",
                 ROOT_PACKAGE + "._backup.encryption")
# A path that goes into archive_command is run by /bin/sh: keep it to characters that need no quoting at all.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")

LAUNCHER = """#!%(python)s
# keel-wal: archive_command and restore_command of keel.ops (installed by keel.ops.pg_wal_archive).
import sys
sys.path[:0] = %(paths)r
from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_command import main
sys.exit(main(sys.argv[1:]))
"""


def plain_path(path, option):
    if not _PLAIN_PATH.match(path or "") or "/../" in path + "/":
        raise ConfigError("%s must be an absolute path of letters, digits and . _ / + - only (it is part of a "
                          "command PostgreSQL runs through the shell), got %r" % (option, path))
    return path


def _imports_of(name, source):
    """The keel.ops module_utils modules a module imports, wherever in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(ROOT_PACKAGE):
            for alias in node.names:
                candidate = "%s.%s" % (node.module, alias.name)
                found.add(candidate if _is_module(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(ROOT_PACKAGE + "."))
    found.discard(name)
    return found


def _is_module(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def command_sources():
    """{module name: source} of everything keel-wal can import, read from the loaders of this process (a
    module's AnsiballZ payload, or the collection on disk)."""
    sources, pending = {}, list(ENTRY_MODULES)
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        module = importlib.import_module(name)
        source = module.__loader__.get_source(name)
        sources[name] = source
        pending.extend(_imports_of(name, source))
    return sources


def planned_files(directory, python, extra_paths):
    """{path: content} of an installation: the launcher and every module with its packages' __init__.py."""
    lib = os.path.join(directory, "lib")
    files = {os.path.join(directory, "keel-wal"): LAUNCHER % {"python": python, "paths": [lib] + list(extra_paths)}}
    for name, source in command_sources().items():
        parts = name.split(".")
        for depth in range(1, len(parts)):
            files.setdefault(os.path.join(lib, *parts[:depth]) + "/__init__.py", "")
        files[os.path.join(lib, *parts) + ".py"] = source
    return files


def library_paths(modules=("zstandard", "pyrage", "boto3", "botocore")):
    """Where this interpreter finds the libraries keel-wal needs, for a launcher run by another interpreter."""
    paths = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        folder = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
        if folder not in paths:
            paths.append(folder)
    return paths


def _current(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def write_atomically(path, content, mode, owner=None):
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".keel-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if owner is not None:
            os.chown(temporary, *owner)
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def install(directory, python, extra_paths, check_mode=False):
    """Install (or bring up to date) keel-wal under `directory`; returns the paths that changed."""
    plain_path(directory, "command_directory")
    plain_path(python, "python")
    changed = []
    for path, content in sorted(planned_files(directory, python, extra_paths).items()):
        if _current(path) != content:
            changed.append(path)
            if not check_mode:
                write_atomically(path, content, 0o755 if path.endswith("keel-wal") else 0o644)
    if changed and not check_mode:
        compile_library(python, os.path.join(directory, "lib"))
    return changed


def compile_library(python, lib):
    """Byte-compile the library with the interpreter that runs it: the server's user cannot write __pycache__
    here, and would otherwise compile every file again on each WAL segment."""
    import subprocess

    result = subprocess.run([python, "-m", "compileall", "-q", lib], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError("python %s cannot compile keel-wal (%s): give python, an interpreter of version 3.8 or "
                          "newer" % (python, (result.stderr or result.stdout).strip()[-300:]))


def write_config(path, config, owner, check_mode=False):
    """The 0600 configuration file keel-wal reads, owned by the server's user; returns True when it changed."""
    plain_path(path, "config_file")
    content = json.dumps(config, indent=2, sort_keys=True) + "\n"
    try:
        status = os.stat(path)
        same = _current(path) == content and (status.st_uid, status.st_gid) == tuple(owner) \
            and status.st_mode & 0o777 == 0o600
    except OSError:
        same = False
    if not same and not check_mode:
        write_atomically(path, content, 0o600, owner)
    return not same


def command_line(python, directory, action, config_path):
    """archive_command ('push') or restore_command ('fetch') naming keel-wal and its configuration file."""
    operands = "%p %f" if action == "push" else "%f %p"
    return "%s %s %s --config %s %s" % (shlex.quote(python), shlex.quote(os.path.join(directory, "keel-wal")),
                                        action, shlex.quote(config_path), operands)


def interpreter():
    return sys.executable
