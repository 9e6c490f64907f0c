# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Putting a file set's members in place under a root ('/' for their own places, or a target directory).

Every member is written beside its destination under a temporary name, checked (its sha256 against the index, a
SQLite database by integrity_check), given its attributes, and renamed into place; what it replaces is renamed
aside first and deleted only once every member is in place and synced to disk. A journal records each step before it is taken, so
a failure rolls everything back, and a run that finds the journal of one killed mid-way rolls that back first
(or, when it had already committed, finishes deleting what it had put aside).

Names come from a repository: data, never paths to trust. A member must be a plain relative name below one of
the backup's own paths, and the directory it lands in must resolve inside the root (no symbolic link, planted
by the archive or found on disk, leads it elsewhere)."""

import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import stat

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import sqlite
from ansible_collections.keel.ops.plugins.module_utils._files.archive import BLOCK, digest_of
from ansible_collections.keel.ops.plugins.module_utils._files.selection import SQLITE_SIDECARS

SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def check_name(name, tops, what="member"):
    """A member name from the archive, accepted only when it is a plain relative path below one of `tops`."""
    if (not name or "\0" in name or name.startswith("/") or os.path.normpath(name) != name
            or ".." in name.split("/")):
        raise IntegrityError("the archive's %s %r is not a plain relative path; nothing of it is restored" % (what, name))
    if not any(name == top or name.startswith(top + "/") for top in tops):
        raise IntegrityError("the archive's %s %s lies outside the paths the backup was taken of (%s); nothing of it "
                             "is restored" % (what, name, ", ".join("/" + top for top in tops)))
    return name


def _inside(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _lexists(path):
    return os.path.lexists(path)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif _lexists(path):
        os.unlink(path)


class Journal:
    """The steps of one restore, one JSON line each, written before the step is taken. Lines are written
    unbuffered (a kill -9 cannot lose them); the journal is synced when the restore starts and when it commits."""

    def __init__(self, path):
        self.path = path
        self.steps = []
        self._fd = None

    def start(self, header):
        """Create the journal already locked (the lock lasts as long as this process; a journal so locked is
        never repaired by another run): written under a private name, then linked to its own name, which fails
        when another restore's journal is there."""
        private = "%s.%d" % (self.path, os.getpid())
        self._fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self.add(dict(header, step="start"))
            os.fsync(self._fd)
            try:
                os.link(private, self.path)
            except FileExistsError:
                raise KeelError("another restore of the same files into the same place started at the same moment "
                                "(journal %s); wait for it to end" % self.path)
        finally:
            os.unlink(private)
        process.fsync_dir(os.path.dirname(self.path))

    def add(self, step):
        self.steps.append(step)
        os.write(self._fd, (json.dumps(step, sort_keys=True) + "\n").encode("utf-8"))

    def commit(self):
        self.add({"step": "commit"})
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if _lexists(self.path):
            os.unlink(self.path)

    @staticmethod
    def read(path):
        with open(path, encoding="utf-8") as handle:
            steps = []
            for line in handle:
                try:
                    steps.append(json.loads(line))
                except ValueError:  # the last line of a run killed while writing it
                    break
        return steps


def undo(steps):
    """Roll back the steps of a restore that did not commit, newest first; returns what could not be undone."""
    left = []
    for step in reversed(steps):
        try:
            if step["step"] in ("place", "temp") and _lexists(step["path"]):
                _remove(step["path"])
            elif step["step"] == "mkdir" and os.path.isdir(step["path"]):
                os.rmdir(step["path"])
            elif step["step"] == "aside" and _lexists(step["aside"]):
                if _lexists(step["path"]):
                    _remove(step["path"])
                os.rename(step["aside"], step["path"])
        except OSError as error:
            left.append("%s: %s" % (step.get("aside") or step["path"], error.strerror or error))
    return left


def finish(steps):
    """After a commit: delete what was put aside."""
    for step in steps:
        if step["step"] == "aside" and _lexists(step["aside"]):
            _remove(step["aside"])


def repair(journal_path, warn):
    """What a killed restore left: undone when it had not committed, finished when it had. Raises with the exact
    cleanup when the undo cannot complete."""
    if not _lexists(journal_path):
        return None
    fd = os.open(journal_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise KeelError("another restore of the same files into the same place is running (its journal %s is "
                            "locked by a live process); wait for it to end" % journal_path)
        return _repair(journal_path, warn)
    finally:
        os.close(fd)


def _repair(journal_path, warn):
    steps = Journal.read(journal_path)
    committed = any(step.get("step") == "commit" for step in steps)
    if committed:
        finish(steps)
        what = "finished deleting what an interrupted restore had put aside (it had completed)"
    else:
        left = undo(steps)
        if left:
            raise KeelError("a restore interrupted earlier (journal %s) could not be rolled back: %s; put those "
                            "files back by hand (the journal lists every step, newest last), then delete the "
                            "journal" % (journal_path, "; ".join(left)))
        what = "rolled back a restore interrupted earlier: its files were put back as they were"
    os.unlink(journal_path)
    warn("%s (journal %s)" % (what, journal_path))
    return "finished" if committed else "rolled back"


class Owners:
    """Who restored files belong to: the archive's owner by name, else by number, when running as root (as tar
    does); otherwise the user running the task, without setuid, setgid or sticky bits."""

    def __init__(self):
        self.restore = os.geteuid() == 0
        self._users, self._groups = {}, {}

    def ids(self, record):
        if not self.restore:
            return None
        return (self._lookup(self._users, pwd.getpwnam, record.get("user"), record["uid"]),
                self._lookup(self._groups, grp.getgrnam, record.get("group"), record["gid"]))

    @staticmethod
    def _lookup(cache, lookup, name, number):
        if not name:
            return number
        if name not in cache:
            try:
                cache[name] = lookup(name)[2]
            except KeyError:
                cache[name] = number
        return cache[name]

    def mode(self, record):
        return record["mode"] & (0o7777 if self.restore else ~SPECIAL_BITS & 0o7777)


class Placement:
    """One restore's writes under `root`: members of the archive placed, or left alone when already as stored."""

    def __init__(self, root, tops, journal, token, identical=()):
        self.root, self.tops, self.journal, self.token = root.rstrip("/") or "/", tops, journal, token
        self.identical = set(identical)  # names the plan found already holding the stored content
        self.owners = Owners()
        self._real_root = os.path.realpath(self.root)
        self._dirs, self._synced = [], set()
        self._count = 0
        self._proven = set()  # (directory, top) already resolved inside their bounds; forgotten when a link is made
        self.counts = {"created": 0, "replaced": 0, "unchanged": 0, "attributes": 0}

    def dest(self, name):
        return os.path.join(self.root, name)

    def _parent(self, name):
        """The directory a member lands in, created if missing, proven to resolve inside the root and, below a
        top, inside that top."""
        parent = os.path.dirname(self.dest(name))
        top = next(top for top in self.tops if name == top or name.startswith(top + "/"))
        if (parent, top) in self._proven:
            return parent
        bound = os.path.realpath(self.dest(top)) if name != top else self._real_root
        self._make_dirs(parent)
        real = os.path.realpath(parent)
        if not _inside(real, bound) or not _inside(real, self._real_root):
            raise IntegrityError("restoring %s would write into %s, outside %s (a symbolic link on the way); nothing "
                                 "was written there" % (name, real, bound))
        self._proven.add((parent, top))
        return parent

    def _make_dirs(self, path):
        missing = []
        while not _lexists(path):
            missing.append(path)
            path = os.path.dirname(path)
        for directory in reversed(missing):
            self.journal.add({"step": "mkdir", "path": directory})
            os.mkdir(directory, 0o755)

    def _temp(self, parent, kind):
        self._count += 1
        return os.path.join(parent, ".keel-%s-%s-%d" % (kind, self.token, self._count))

    def _swap(self, temp, dest, sidecars=False):
        """Rename temp over dest, putting what dest holds (and, for SQLite, its journal, WAL and shm) aside."""
        replaced = False
        for path in [dest] + ([dest + suffix for suffix in SQLITE_SIDECARS] if sidecars else []):
            if _lexists(path):
                aside = self._temp(os.path.dirname(dest), "aside")
                self.journal.add({"step": "aside", "path": path, "aside": aside})
                os.rename(path, aside)
                replaced = replaced or path == dest
        self.journal.add({"step": "place", "path": dest})
        os.rename(temp, dest)
        self._synced.add(os.path.dirname(dest))
        self.counts["replaced" if replaced else "created"] += 1

    def directory(self, record):
        name = check_name(record["name"], self.tops)
        dest, parent = self.dest(name), self._parent(name)
        if not (os.path.isdir(dest) and not os.path.islink(dest)):
            if _lexists(dest):
                aside = self._temp(parent, "aside")
                self.journal.add({"step": "aside", "path": dest, "aside": aside})
                os.rename(dest, aside)
            self.journal.add({"step": "mkdir", "path": dest})
            os.mkdir(dest, 0o700)
            self.counts["created"] += 1
        self._dirs.append((dest, record))

    def file(self, record, reader):
        """Write a regular member from `reader`, or consume it when the destination already holds it."""
        name = check_name(record["name"], self.tops)
        dest, parent = self.dest(name), self._parent(name)
        if self._same_file(dest, record, name in self.identical):
            _check_digest(digest_of(reader), record)
            self._settle(dest, record)
            return
        temp = self._temp(parent, "new")
        self.journal.add({"step": "temp", "path": temp})
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            digest = hashlib.sha256()
            for block in iter(lambda: reader.read(BLOCK), b""):
                digest.update(block)
                out.write(block)
            out.flush()
            _check_digest(digest.hexdigest(), record)
            self._attributes(out.fileno(), record)
        if record.get("sqlite"):
            sqlite.integrity_check(temp, "the restored SQLite database %s" % dest)
        self._swap(temp, dest, sidecars=record.get("sqlite"))

    def symlink(self, record):
        name = check_name(record["name"], self.tops)
        dest, parent = self.dest(name), self._parent(name)
        if os.path.islink(dest) and os.readlink(dest) == record["link"]:
            self._settle(dest, record, link=True)
            return
        temp = self._temp(parent, "new")
        self.journal.add({"step": "temp", "path": temp})
        self._proven.clear()  # a directory proven before may now be reached through this link
        os.symlink(record["link"], temp)
        self._link_attributes(temp, record)
        self._swap(temp, dest)

    def hardlink(self, record):
        name = check_name(record["name"], self.tops)
        target = self.dest(check_name(record["link"], self.tops, "hard link target"))
        dest, parent = self.dest(name), self._parent(name)
        if not os.path.isfile(target) or os.path.islink(target):
            raise IntegrityError("the hard link %s points at %s, which the archive did not restore before it"
                                 % (name, record["link"]))
        if _lexists(dest) and os.path.samefile(dest, target) and not os.path.islink(dest):
            self.counts["unchanged"] += 1
            return
        temp = self._temp(parent, "new")
        self.journal.add({"step": "temp", "path": temp})
        os.link(target, temp)
        self._swap(temp, dest)

    @staticmethod
    def _same_file(dest, record, hashed=False):
        try:
            st = os.lstat(dest)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != record["size"]:
            return False
        if hashed:
            return True
        with open(dest, "rb") as handle:
            return digest_of(handle) == record["sha256"]

    def _settle(self, dest, record, link=False):
        """A destination that already holds the member: fix only attributes that differ."""
        st = os.lstat(dest)
        ids = self.owners.ids(record)
        want_mode = None if link else self.owners.mode(record)
        if ((ids is None or (st.st_uid, st.st_gid) == ids) and (link or stat.S_IMODE(st.st_mode) == want_mode)
                and int(st.st_mtime) == int(record["mtime"])):
            self.counts["unchanged"] += 1
            return
        if link:
            self._link_attributes(dest, record)
        else:
            fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self._attributes(fd, record)
            finally:
                os.close(fd)
        self.counts["attributes"] += 1

    def _attributes(self, fd, record):
        ids = self.owners.ids(record)
        if ids is not None:
            os.fchown(fd, *ids)
        os.fchmod(fd, self.owners.mode(record))
        os.utime(fd, (record["mtime"], record["mtime"]))

    def _link_attributes(self, path, record):
        ids = self.owners.ids(record)
        if ids is not None:
            os.lchown(path, *ids)
        os.utime(path, (record["mtime"], record["mtime"]), follow_symlinks=False)

    def commit(self):
        """Every member is in place: directories get their attributes (deepest first, after their contents
        changed their mtimes), renames are made durable, and what was put aside is deleted."""
        for dest, record in reversed(self._dirs):
            st = os.lstat(dest)
            ids = self.owners.ids(record)
            if ((ids is not None and (st.st_uid, st.st_gid) != ids)
                    or stat.S_IMODE(st.st_mode) != self.owners.mode(record)):
                fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    self._attributes(fd, record)
                finally:
                    os.close(fd)
            else:
                os.utime(dest, (record["mtime"], record["mtime"]), follow_symlinks=False)
        # Files, renames and directories are made durable together before the commit (20,000 fsyncs took 9 s of a
        # 26 s restore); until then the journal can still put back what was set aside.
        process.sync_filesystems(sorted(self._synced | set(d for d, _r in self._dirs)))
        self.journal.commit()
        finish(self.journal.steps)

    def rollback(self):
        return undo(self.journal.steps)

    @property
    def changed(self):
        return bool(self.counts["created"] or self.counts["replaced"] or self.counts["attributes"])


def _check_digest(found, record):
    if found != record["sha256"]:
        raise IntegrityError("%s in the archive does not match the sha256 its index recorded (%s, found %s); the "
                             "backup is damaged, nothing of this restore is kept" % (record["name"], record["sha256"], found))
