# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which files a file set holds: the paths given, walked without following symbolic links, narrowed by include
and exclude globs, with secrets (.env, private keys...) left out unless they are named, and sockets, FIFOs and
devices reported instead of stored."""

import fnmatch
import functools
import os
import re
import stat

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


# Left out of every file set unless a path names them or include_secrets matches them: a backup repository is
# often readable by more people than the host's secrets are.
SECRET_PATTERNS = (".env", ".env.*", "*.env", "*.key", "*.pem", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.kdbx",
                   "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".pgpass", ".netrc", ".git-credentials")

SQLITE_PATTERNS = ("*.db", "*.sqlite", "*.sqlite3")
SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def arcname(path):
    """The name a path has inside the archive: absolute, normalised, without the leading slash (as tar does)."""
    return os.path.normpath(path).lstrip("/")


def check_paths(paths):
    """The paths option: absolute, without '..', and none inside another (it would be stored twice)."""
    if not paths:
        raise ConfigError("paths: give at least one absolute path of a file or directory to back up")
    names = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise ConfigError("paths: %r is not an absolute path; give paths such as /srv/app/data" % (path,))
        if ".." in path.split("/"):
            raise ConfigError("paths: %s contains '..'; give the path it means without it" % path)
        if os.path.normpath(path) == "/":
            raise ConfigError("paths: / is the whole system; give the directories that hold the data")
        names.append(arcname(path))
    for name in names:
        for other in names:
            if name != other and (name + "/").startswith(other + "/"):
                raise ConfigError("paths: /%s is inside /%s, which already holds it; list it once" % (name, other))
    if len(set(names)) != len(names):
        raise ConfigError("paths: a path is listed twice")
    return names


@functools.lru_cache(maxsize=64)
def _compiled(patterns):
    """(regex for names, regex for relative paths, regex for absolute paths) of a tuple of globs; None when a kind
    has no glob. One regex per kind instead of a glob call per pattern per file."""
    def one(globs):
        return re.compile("|".join("(?:%s)" % fnmatch.translate(glob) for glob in globs)) if globs else None
    return (one([p for p in patterns if "/" not in p]), one([p.lstrip("/") for p in patterns if "/" in p]),
            one([p for p in patterns if "/" in p]))


def _matches(patterns, name, relative):
    """A pattern without '/' matches a name at any depth; one with '/' matches the path below the set's root (or the
    absolute path when it starts with '/'). '*' matches across '/'."""
    names, relatives, absolutes = _compiled(tuple(patterns))
    return bool((names and names.match(name)) or (relatives and relatives.match(relative))
                or (absolutes and absolutes.match("/" + relative)))


class Entry:
    """One thing found: its path on this host, its name in the archive, its lstat, and whether it is a SQLite
    database to copy through the online backup API."""

    __slots__ = ("path", "name", "stat", "sqlite")

    def __init__(self, path, name, st, sqlite=False):
        self.path, self.name, self.stat, self.sqlite = path, name, st, sqlite

    @property
    def kind(self):
        mode = self.stat.st_mode
        if stat.S_ISDIR(mode):
            return "directory"
        if stat.S_ISLNK(mode):
            return "symlink"
        return "file" if stat.S_ISREG(mode) else "special"


def is_sqlite(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


class Selection:
    """The rules of a file set; walk() yields its Entries in archive order (a directory before its contents) and
    collects what was left out in `excluded_secrets` and `skipped`."""

    def __init__(self, paths, include=None, exclude=None, include_secrets=None, sqlite=None, excluded_roots=()):
        self.names = check_paths(paths)
        self.paths = ["/" + name for name in self.names]
        self.include, self.exclude = list(include or []), list(exclude or [])
        self.include_secrets = list(include_secrets or [])
        self.sqlite = SQLITE_PATTERNS if sqlite is None else tuple(sqlite)
        self.excluded_roots = [os.path.realpath(root) for root in excluded_roots]
        self.excluded_secrets, self.skipped = [], []

    def walk(self):
        for top in self.paths:
            try:
                st = os.lstat(top)
            except OSError as error:
                raise ConfigError("paths: cannot read %s: %s" % (top, error.strerror or error))
            if stat.S_ISDIR(st.st_mode):
                yield Entry(top, arcname(top), st)
                yield from self._below(top, top)
            else:
                entry = self._entry(top, top, st, named=True)
                if entry is not None:
                    yield entry

    def _below(self, top, directory):
        try:
            names = sorted(os.listdir(directory))
        except OSError as error:
            raise ConfigError("cannot list %s: %s; run the task as a user that can read it (become: true)"
                              % (directory, error.strerror or error))
        sidecars = set()
        for name in names:
            path = os.path.join(directory, name)
            if name in sidecars or self._excluded_root(path):
                continue
            try:
                st = os.lstat(path)
            except OSError:  # gone since the listing: nothing to store
                continue
            if stat.S_ISDIR(st.st_mode):
                if not _matches(self.exclude, name, os.path.relpath(path, top)):
                    yield Entry(path, arcname(path), st)
                    yield from self._below(top, path)
                continue
            entry = self._entry(top, path, st)
            if entry is not None:
                if entry.sqlite:  # the online backup copy includes what its journal or WAL holds
                    sidecars.update(name + suffix for suffix in SQLITE_SIDECARS)
                yield entry

    def _excluded_root(self, path):
        return self.excluded_roots and os.path.realpath(path) in self.excluded_roots

    def _entry(self, top, path, st, named=False):
        name = os.path.basename(path)
        relative = os.path.relpath(path, top) if path != top else name
        if not named:
            if _matches(self.exclude, name, relative):
                return None
            if self.include and not _matches(self.include, name, relative):
                return None
            if _matches(SECRET_PATTERNS, name, relative) and not _matches(self.include_secrets, name, relative):
                self.excluded_secrets.append(path)
                return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            self.skipped.append({"path": path, "reason": _special_kind(st.st_mode) + ": not stored"})
            return None
        sqlite = (stat.S_ISREG(st.st_mode) and _matches(self.sqlite, name, relative) and is_sqlite(path))
        return Entry(path, arcname(path), st, sqlite)


def _special_kind(mode):
    for test, name in ((stat.S_ISSOCK, "socket"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"
