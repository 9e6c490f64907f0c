# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A repository in a local (or mounted) directory: files written beside their final name and renamed into
place, directories 0700 and files 0600, an flock() per source."""

import contextlib
import errno
import fcntl
import json
import os
import pwd
import stat
import time

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import (
    PARTIAL_MARK,
    PARTIAL_RE,
    NotFound,
    Storage,
    StorageError,
    Writer,
    human_size,
    key_parts,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import (
    LockInfo,
    check_lock_args,
    describe_holder,
    holder_record,
    iso,
    lock_timeout,
    parse_record,
)
from ansible_collections.keel.ops.plugins.module_utils._process import fsync_dir


LOCAL_LOCK_POLL = 0.1


def whoami():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid %d" % os.geteuid()


def _os_message(err, action, path):
    hints = {
        errno.EACCES: "permission denied; let the user running the module (%s) access it, or choose another "
                      "repository path" % whoami(),
        errno.ENOSPC: "no space left on the device; free space, prune old backups or use a larger volume",
        errno.EDQUOT: "disk quota exceeded; raise the quota, prune old backups or use another volume",
        errno.EROFS: "read-only file system; mount it read-write or choose another repository path",
        errno.ENOTDIR: "part of the path is a file, not a directory; fix the repository path",
    }
    hints[errno.EPERM] = hints[errno.EACCES]
    hint = hints.get(err.errno, "%s; check the path and the file system" % (err.strerror or err))
    return "cannot %s %s: %s" % (action, path, hint)


@contextlib.contextmanager
def _os_errors(action, path, not_found=False):
    """Turn OSError into StorageError (or NotFound for a missing key when asked)."""
    try:
        yield
    except FileNotFoundError as err:
        if not_found:
            raise NotFound("%s does not exist" % path) from None
        raise StorageError(_os_message(err, action, path)) from None
    except OSError as err:
        raise StorageError(_os_message(err, action, path)) from None


def _make_private_dirs(path):
    """mkdir -p giving 0700 to every directory it creates (os.makedirs applies the mode to the last one only).
    Each new directory's parent is fsynced, so that after a crash the path to a committed file still exists."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        _make_private_dirs(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return  # made concurrently, or a file: the caller's next step reports the latter
    fsync_dir(parent)


def _create_private_file(path):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def _walk(top):
    """os.walk that reports errors instead of skipping what it cannot read; as on S3, a prefix that is
    missing, or names a key rather than a directory, simply holds nothing."""
    def fail(err):
        if not isinstance(err, (FileNotFoundError, NotADirectoryError)):
            raise err
    return os.walk(top, onerror=fail)


class LocalStorage(Storage):
    """A repository in a local (or mounted) directory, created 0700 on first write; files are 0600."""

    def __init__(self, root):
        self.root = os.path.normpath(root)
        self.url = self.root

    def path_of(self, key, allow_empty=False):
        parts = key_parts(key, allow_empty=allow_empty)
        if parts and PARTIAL_RE.match(parts[-1]):
            raise StorageError("invalid storage key %r: names like .NAME%sHEX are reserved for unfinished writes"
                               % (key, PARTIAL_MARK))
        return os.path.join(self.root, *parts)

    def writer(self, key):
        return _LocalWriter(self.path_of(key), self._prune)

    def describe(self, key):
        return self.path_of(key, allow_empty=True)

    def reader(self, key):
        path = self.path_of(key)
        with _os_errors("read", path, not_found=True):
            # the caller closes it
            return open(path, "rb")  # pylint: disable=consider-using-with

    def size(self, key):
        path = self.path_of(key)
        with _os_errors("read", path, not_found=True):
            info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise NotFound("%s is not a file" % path)
        return info.st_size

    def list(self, prefix=""):
        """Every committed key under prefix (recursive, sorted); unfinished writes are not listed."""
        base = self.path_of(prefix, allow_empty=True)
        keys = []
        with _os_errors("list", base):
            for directory, _dirnames, filenames in _walk(base):
                relative = os.path.relpath(directory, self.root).replace(os.sep, "/")
                keys.extend(name if relative == "." else relative + "/" + name
                            for name in filenames if not PARTIAL_RE.match(name))
        return sorted(keys)

    def list_children(self, prefix=""):
        """Names of the directories under prefix that hold at least one committed key, as S3 would show them."""
        base = self.path_of(prefix, allow_empty=True)
        with _os_errors("list", base):
            try:
                entries = list(os.scandir(base))
            except (FileNotFoundError, NotADirectoryError):
                return []
            names = [entry.name for entry in entries
                     if entry.is_dir(follow_symlinks=False) and self._holds_keys(entry.path)]
        return sorted(names)

    @staticmethod
    def _holds_keys(directory):
        return any(not PARTIAL_RE.match(name) for _top, _dirs, names in _walk(directory) for name in names)

    def delete(self, keys):
        """Remove keys; missing ones are fine. Directories left empty go too, as they would on S3."""
        for key in keys:
            path = self.path_of(key)
            with _os_errors("delete", path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            self._prune(os.path.dirname(path))

    def delete_prefix(self, prefix):
        """Remove everything under prefix (unfinished writes included); the repository root itself is refused."""
        if not key_parts(prefix, allow_empty=True):
            raise StorageError("refusing to delete everything in %s: give a prefix inside the repository" % self.url)
        path = self.path_of(prefix)
        with _os_errors("delete", path):
            try:
                import shutil  # here: keel-wal loads this file once per WAL segment and never deletes
                shutil.rmtree(path)
            except (FileNotFoundError, NotADirectoryError):
                return
        self._prune(os.path.dirname(path))

    def _prune(self, directory):
        while directory.startswith(self.root + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (or gone): stop climbing
            directory = os.path.dirname(directory)

    def cleanup_incomplete(self, prefix="", settle=0):
        """Remove the partial files that writers killed before commit or abort left behind under prefix, once
        they are at least `settle` seconds old.

        Call it only while holding the lock that serialises writers of this prefix: a live writer's partial
        file looks the same as a dead one's.
        """
        base = self.path_of(prefix, allow_empty=True)
        removed = []
        newest = time.time() - settle
        with _os_errors("clean up", base):
            for directory, _dirnames, filenames in _walk(base):
                for name in filenames:
                    path = os.path.join(directory, name)
                    if PARTIAL_RE.match(name) and os.lstat(path).st_mtime <= newest:
                        removed.append(self._remove_partial(path))
        for text, path in removed:
            self._prune(os.path.dirname(path))
        return [text for text, path in removed]

    def newest_change(self, prefix):
        """When anything under prefix (partial writes included) was last written, as a Unix time; None if empty."""
        base = self.path_of(prefix)
        times = []
        with _os_errors("list", base):
            for directory, _dirnames, filenames in _walk(base):
                times.extend(os.lstat(os.path.join(directory, name)).st_mtime for name in filenames)
        return max(times) if times else None

    @staticmethod
    def _remove_partial(path):
        info = os.stat(path)
        os.unlink(path)
        return ("removed unfinished write %s (%s, last written %s)"
                % (path, human_size(info.st_size), iso(info.st_mtime)), path)

    def lock(self, key, timeout, ttl=600, owner=None):
        """Exclusive lock on a local file (flock). `ttl` is not needed: the kernel frees the lock when its
        holder exits, even on SIGKILL; flock also works across NFSv4 clients on Linux."""
        check_lock_args(timeout, ttl)
        return _LocalLock(self.path_of(key), timeout, owner)


class _LocalWriter(Writer):
    """Writes <dir>/.<name>.partial-<hex>, then fsync, rename over <name>, fsync the directory.

    `prune(directory)` removes the directories an aborted write leaves empty.
    """

    def __init__(self, path, prune):
        super().__init__(path)
        self._path = path
        self._prune = prune
        directory, name = os.path.split(path)
        self._partial = os.path.join(directory, "." + name + PARTIAL_MARK + os.urandom(6).hex())
        with _os_errors("write", path):
            _make_private_dirs(directory)
            try:
                fd = _create_private_file(self._partial)
            except FileNotFoundError:
                # delete() prunes empty directories; if it raced us, make the directory again, once
                _make_private_dirs(directory)
                fd = _create_private_file(self._partial)
        self._file = os.fdopen(fd, "wb")

    def _write(self, view):
        with _os_errors("write", self._path):
            self._file.write(view)

    def _commit(self):
        with _os_errors("write", self._path):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._partial, self._path)
            fsync_dir(os.path.dirname(self._path))

    def _abort(self):
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._partial)
        self._prune(os.path.dirname(self._path))


class _LocalLock:
    """flock() on the lock file, polled until the timeout; the holder's record is written into the file.

    A clean release removes the file, so a record found on taking the lock is that of a run that died
    holding it (the kernel freed its flock): the LockInfo says so, as on S3.
    """

    def __init__(self, path, timeout, owner):
        self.path = path
        self.timeout = timeout
        self.owner = owner
        self._fd = None

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        with _os_errors("lock", self.path):
            while not self._try_acquire():
                if time.monotonic() >= deadline:
                    raise lock_timeout(self.path, self.timeout, self._read_holder(),
                                       "wait for that run to finish, stop it, or raise the lock timeout "
                                       "(the lock frees itself when its process exits)")
                time.sleep(LOCAL_LOCK_POLL)
            record = holder_record(self.owner)
            try:
                previous = parse_record(os.pread(self._fd, 65536, 0))
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, json.dumps(record).encode(), 0)
            except OSError:
                self._release()
                raise
        info = LockInfo(self.path, record, confirm=self._confirm)
        if previous:
            info.took_over = "took over lock %s from %s: it ended without releasing it" % (
                self.path, describe_holder(previous))
            info.note(info.took_over)
        return info

    def _try_acquire(self):
        _make_private_dirs(os.path.dirname(self.path))
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            if self._still_linked(fd):
                self._fd = fd
                return True
            os.close(fd)  # the previous holder removed this file as it released it: lock the new one

    def _confirm(self):
        """flock cannot be lost, but the file can be removed by hand, letting another run lock a new one."""
        if self._fd is None or not self._still_linked(self._fd):
            raise StorageError("lock file %s was removed while this run held it, so another run may hold a new one: "
                               "nothing was committed or deleted; run it again" % self.path)

    def _still_linked(self, fd):
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)

    def _read_holder(self):
        try:
            with open(self.path, "rb") as handle:
                return parse_record(handle.read())
        except OSError:
            return {}

    def __exit__(self, *exc_info):
        self._release()
        return False

    def _release(self):
        # Unlink while still holding the lock; waiters on the old file notice (_still_linked) and retry.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
