# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage interface every repository backend implements (local.py, s3.py), and its errors.

Keys are "/"-separated paths relative to the repository root ("postgres/db1/<backup_id>/manifest.json"); a
prefix is a directory of keys ("postgres/db1"). Every backend keeps the same promises:

- a key written through writer() or put() stays invisible until commit(), then appears whole;
- data streams with bounded memory (a local file is written as it comes, an S3 object goes up in parts);
- one run at a time holds lock(key), and a holder that died does not block the others for long (lock.py);
- every expected failure is a StorageError whose message says what failed, where and how to fix it,
  and never carries credentials.
"""

import re

from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError


class StorageError(KeelError):
    """Reading, writing, listing or locking in the backup repository failed."""


class NotFound(StorageError):
    """The key asked for does not exist."""


class LockTimeout(StorageError):
    """Another run kept the lock longer than we were willing to wait; `holder` is its record."""

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = holder or {}


MIB = 1024 * 1024
PARTIAL_MARK = ".partial-"
PARTIAL_RE = re.compile(r"^\..+\.partial-[0-9a-f]+$")


def key_parts(key, allow_empty=False, error=StorageError, what="storage key"):
    """Split a key or prefix into its parts, refusing what could escape the repository or mean nothing."""
    if not isinstance(key, str):
        raise error("%s must be a string, not %r" % (what, key))
    parts = [part for part in key.split("/") if part]
    if (not parts and not allow_empty) or any(part in (".", "..") or "\0" in part for part in parts):
        raise error("invalid %s %r: use a relative path such as postgres/db1/manifest.json, without '.' or '..'"
                    % (what, key))
    return parts


class Storage:
    """Bytes under keys. Subclasses: LocalStorage, S3Storage."""

    url = None

    def describe(self, key):
        """Printable location of a key (or of a prefix; "" is the repository itself)."""
        parts = key_parts(key, allow_empty=True)
        return "/".join([self.url.rstrip("/")] + parts) if parts else self.url

    def writer(self, key):
        raise NotImplementedError

    def reader(self, key):
        raise NotImplementedError

    def size(self, key):
        raise NotImplementedError

    def put(self, key, data):
        """Store a small object atomically: it is either absent or complete."""
        with self.writer(key) as writer:
            writer.write(data)
            writer.commit()

    def get(self, key):
        """The whole content of a small object; NotFound if absent."""
        with self.reader(key) as stream:
            return stream.read()

    def exists(self, key):
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def lock(self, key, timeout, ttl=600, owner=None):
        raise NotImplementedError


class Writer:
    """Streams one object under a temporary identity: commit() makes it appear whole, abort() makes it vanish.

    Used as a context manager it aborts unless commit() was called; any failure aborts it too.
    """

    def __init__(self, location):
        self.location = location
        self.bytes_written = 0
        self._state = "open"

    def write(self, data):
        self._require_open("write to")
        view = memoryview(data).cast("B")
        if view.nbytes:
            self._guarded(self._write, view)
            self.bytes_written += view.nbytes

    def commit(self):
        """Make the object visible under its key; returns its size."""
        self._require_open("commit")
        self._guarded(self._commit)
        self._state = "committed"
        return self.bytes_written

    def abort(self):
        """Drop what was written (best effort; cleanup_incomplete() removes any leftover later)."""
        if self._state == "open":
            self._state = "aborted"
            self._abort()

    def _guarded(self, step, *args):
        try:
            step(*args)
        except BaseException:
            self.abort()
            raise

    def _require_open(self, action):
        if self._state != "open":
            raise StorageError("cannot %s %s: its writer was already %s" % (action, self.location, self._state))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.abort()

    def _write(self, view):
        raise NotImplementedError

    def _commit(self):
        raise NotImplementedError

    def _abort(self):
        raise NotImplementedError


def human_size(size):
    if size < 1024:
        return "%d bytes" % size
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024.0
        if size < 1024 or unit == "GiB":
            break
    return "%.1f %s" % (size, unit)
