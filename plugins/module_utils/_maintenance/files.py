# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Old log files removed from under given directories, for log_cleanup: the runbooks' `find -mtime +7 -delete`
with what it lacks - a dry-run listing with a byte count, and a walk that never leaves its root. Directories are
opened relative to their parent (os.fwalk) and files removed relative to theirs, so a symlink swapped in during the
walk cannot lead it anywhere else; symlinks themselves are never followed or removed, only regular files are."""

import fnmatch
import os
import stat
import time

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

DEFAULT_PATTERNS = ("*.log", "*.log.*")
DAY = 86400.0


def check_root(path):
    """The root as an absolute, resolved directory; a ConfigError for what cannot be one."""
    if not os.path.isabs(path):
        raise ConfigError("%s is not an absolute path; give the log directory's full path" % path)
    real = os.path.realpath(path)
    if real == "/":
        raise ConfigError("%s is the whole system; give the directories that hold logs" % path)
    if not os.path.isdir(real):
        raise ConfigError("%s is not a directory on this host" % path)
    return real


def matches(name, patterns, exclude):
    return any(fnmatch.fnmatch(name, p) for p in patterns) and not any(fnmatch.fnmatch(name, p) for p in exclude)


def old_files(root, patterns, exclude, older_than_days, recurse=True, now=None):
    """(path, bytes, age_days, dir_fd, name) of every regular file under `root` matching `patterns` (and no
    `exclude`) last modified more than `older_than_days` ago. dir_fd is only valid until the next item."""
    now = now or time.time()
    for top, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        if not recurse:
            dirs[:] = []
        for name in sorted(files):
            if not matches(name, patterns, exclude):
                continue
            try:
                info = os.lstat(name, dir_fd=dir_fd)
            except OSError:
                continue  # gone since the directory was read
            age = (now - info.st_mtime) / DAY
            if stat.S_ISREG(info.st_mode) and age > older_than_days:
                yield os.path.join(top, name), info.st_size, round(age, 2), dir_fd, name


def cleanup(paths, patterns=DEFAULT_PATTERNS, exclude=(), older_than_days=7, recurse=True, check_mode=False,
            list_limit=100, now=None):
    """What log_cleanup returns: files removed (listed up to `list_limit`), their count and bytes, per root."""
    if older_than_days < 0:
        raise ConfigError("older_than_days is %s; it must not be negative" % older_than_days)
    roots = [check_root(path) for path in paths]
    result = {"files": [], "count": 0, "bytes": 0, "errors": [], "roots": []}
    for root in roots:
        count = size = 0
        for path, length, age, dir_fd, name in old_files(root, patterns, exclude, older_than_days, recurse, now):
            if not check_mode:
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except OSError as error:
                    result["errors"].append({"path": path, "reason": error.strerror or str(error)})
                    continue
            count, size = count + 1, size + length
            if len(result["files"]) < list_limit:
                result["files"].append({"path": path, "bytes": length, "age_days": age})
        result["roots"].append({"path": root, "count": count, "bytes": size})
        result["count"], result["bytes"] = result["count"] + count, result["bytes"] + size
    result["changed"] = result["count"] > 0
    return result
