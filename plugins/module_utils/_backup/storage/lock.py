# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lock records: who holds a repository lock (host, pid namespace, boot, pid, owner), since and until when, how
that is told, and whether a holder is provably gone. LockInfo is what a held lock hands to its with-block.
The locks themselves are the backends': flock in local.py, conditional writes in s3_lock.py."""

import json
import os
import time

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import LockTimeout, StorageError
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


LOCK_MARGIN = 1 / 3.0  # of an S3 lock's ttl, left after a confirming renewal for clock skew between hosts


def iso(timestamp):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def from_iso(text):
    try:
        import calendar  # the imports of this file are kept light: keel-wal loads it once per WAL segment
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def _read_first_line(path):
    try:
        with open(path) as handle:
            return handle.readline().strip() or None
    except (IOError, OSError):
        return None


def _machine():
    """What makes a pid meaningful: the host name and, on Linux, the pid namespace and the boot."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    import socket
    return {"host": socket.gethostname(), "pidns": pidns, "boot": _read_first_line("/proc/sys/kernel/random/boot_id")}


def holder_record(owner, ttl=None):
    now = time.time()
    record = _machine()
    record.update(pid=os.getpid(), since=iso(now))
    if owner:
        record["owner"] = owner
    if ttl is not None:
        record.update(expires=iso(now + ttl), token=os.urandom(8).hex())
    return record


def parse_record(data):
    """A lock record from the bytes of a lock file or object; {} when there is none or it is not ours."""
    try:
        record = json.loads(data.decode())
    except ValueError:  # also UnicodeDecodeError
        return {}
    return record if isinstance(record, dict) else {}


def describe_holder(record):
    """'host db1 pid 4242 (pg_backup) since 2024-05-01T02:00:00Z' from a lock record."""
    if not record:
        return "another process (it has not recorded who it is yet)"
    text = "host %s pid %s" % (record.get("host", "?"), record.get("pid", "?"))
    if record.get("owner"):
        text += " (%s)" % record["owner"]
    if record.get("since"):
        text += " since %s" % record["since"]
    return text


def process_gone(record):
    """True when the holder ran on this very machine (host, pid namespace, boot) and its pid no longer exists.

    A reused pid only makes us wait for the lock to expire, which is the safe direction.
    """
    here = _machine()
    if any(record.get(name) != value for name, value in here.items()):
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists but belongs to another user
    return False


def check_lock_args(timeout, ttl):
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError("lock timeout must be a number of seconds >= 0, not %r" % (timeout,))
    if not isinstance(ttl, (int, float)) or ttl <= 0:
        raise ConfigError("lock ttl must be a number of seconds > 0, not %r" % (ttl,))


def lock_timeout(location, timeout, record, advice):
    return LockTimeout("gave up after %ss waiting for lock %s, held by %s: %s"
                       % (timeout, location, describe_holder(record), advice), record)


class LockInfo:
    """What lock() hands to its with-block: where the lock is, our record, and anything worth a warning.

    took_over: text naming the dead or expired holder we replaced, or None.
    lost: text explaining that another run took the lock over while we held it (S3 only), or None.
    warnings: every such text, for the module to pass to warn().
    settle: how old (seconds) a leftover of another writer must be before cleanup may remove it. 0 where this
            lock proves the previous writer is gone (flock, or its pid is gone from this host); the lock's ttl
            where it cannot (an S3 lock that expired: its holder may only be paused, and still writing).

    check() before every irreversible step (writing a manifest, deleting backups): it proves, then and there,
    that this run still holds the lock.
    """

    def __init__(self, location, holder, confirm=None, settle=0):
        self.location = location
        self.holder = holder
        self.took_over = None
        self.lost = None
        self.warnings = []
        self.settle = settle
        self._confirm = confirm

    def note(self, text):
        self.warnings.append(text)

    def check(self):
        if self.lost:
            raise StorageError(self.lost)
        if self._confirm is not None:
            self._confirm()
