# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lock of an S3 repository: an object written with conditional puts and kept alive by a heartbeat, proven
by a synchronous renewal before every irreversible step."""

import calendar
import json
import threading
import time

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import (
    LOCK_MARGIN,
    LockInfo,
    describe_holder,
    from_iso,
    holder_record,
    iso,
    lock_timeout,
    parse_record,
    process_gone,
)


S3_LOCK_POLL = 1.0


class S3Lock:
    """The lock object holds {host, pid, owner, since, expires, token}.

    Taking it: PutObject with If-None-Match: * succeeds only if no lock object exists (moto >= 5.0 and AWS
    S3 honour it). A lock past its `expires`, or held by a pid that is gone from this very machine, is
    replaced with PutObject If-Match: <its ETag>, so of several runs taking over only one wins. While held,
    a heartbeat renews `expires` every ttl/3 (If-Match: our ETag; failing that, the lock was taken over and
    `lost` says so). Release deletes it with If-Match: our ETag, leaving a successor's lock alone.
    Expiry compares wall clocks of different hosts: keep them in NTP sync (seconds do not matter with
    the default ttl of 10 minutes).
    """

    def __init__(self, storage, key, timeout, ttl, owner):
        self._storage = storage
        self._key = key
        self._full = storage.full_key(key)
        self.location = storage.describe(key)
        self._timeout = timeout
        self._ttl = ttl
        self._owner = owner
        self._etag = None
        self._expires = None
        self._seen = {}
        self._info = None
        self._stop = threading.Event()
        self._heartbeat = None
        self._renewing = threading.Lock()  # the heartbeat and check() renew with the same ETag: one at a time
        self._last_error = None

    def __enter__(self):
        self._storage.require_conditional_writes(self.location)
        deadline = time.monotonic() + self._timeout
        record = holder_record(self._owner, self._ttl)
        while not self._try_acquire(record):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                expires = self._seen.get("expires")
                raise lock_timeout(self.location, self._timeout, self._seen,
                                   "wait for that run to finish or raise the lock timeout; if it died, the lock "
                                   "is taken over once it expires%s" % (" at %s" % expires if expires else ""))
            time.sleep(min(S3_LOCK_POLL, remaining))
            record = holder_record(self._owner, self._ttl)
        self._heartbeat = threading.Thread(target=self._beat, name="keel-s3-lock-heartbeat")
        self._heartbeat.daemon = True
        self._heartbeat.start()
        return self._info

    def _put(self, record, **condition):
        return self._storage.conditional("lock", self._key, "put_object", Key=self._full,
                                         Body=json.dumps(record).encode(), ContentType="application/json",
                                         **dict(self._storage.object_args(data=False), **condition))

    def _try_acquire(self, record):
        current = self._read()
        if current is None:
            response = self._put(record, IfNoneMatch="*")
            previous = None
        else:
            self._seen, etag, expires = current
            reason = self._stale(self._seen, expires)
            if reason is None:
                return False
            response = self._put(record, IfMatch=etag)
            previous = "took over lock %s from %s: %s" % (self.location, describe_holder(self._seen), reason)
        if response is None:
            return False  # another run got there first
        self._etag = response["ETag"]
        self._expires = from_iso(record["expires"])
        # Leftovers may go at once only when we replaced a holder whose process is proven gone; an expired or a
        # released lock says nothing of a writer that lost it earlier and may still be writing.
        settle = 0 if current is not None and process_gone(self._seen) else self._ttl
        self._info = LockInfo(self.location, record, confirm=self.confirm, settle=settle)
        if previous:
            self._info.took_over = previous
            self._info.note(previous)
        return True

    def _read(self):
        """(record, etag, expiry) of the current lock object, or None when there is none."""
        try:
            response = self._storage.call("lock", self._key, "get_object", Key=self._full)
            with self._storage.errors("lock", self._key):
                body = response["Body"].read()
        except NotFound:
            return None
        record = parse_record(body)  # {} when not ours or damaged: it still counts as held until it expires
        expires = from_iso(record.get("expires"))
        if expires is None:
            expires = calendar.timegm(response["LastModified"].utctimetuple()) + self._ttl
        return record, response["ETag"], expires

    @staticmethod
    def _stale(record, expires):
        if time.time() > expires:
            return "it expired at %s" % iso(expires)
        if process_gone(record):
            return "its process %s is gone from this host" % record.get("pid")
        return None

    def _beat(self):
        interval = max(self._ttl / 3.0, 0.2)
        while not self._stop.wait(interval):
            if not self._renew():
                return

    def _renew(self):
        """One conditional renewal: True while we hold the lock (a failed request is retried at the next beat
        until the lock would expire); False once it is lost."""
        with self._renewing:
            if self._info.lost:
                return False
            try:
                self._renew_once()
            except StorageError as err:
                self._last_error = err
                if time.time() <= self._expires:
                    return True  # a network hiccup: try again at the next beat
                self._lose("lock %s expired because it could not be renewed (%s)" % (self.location, err))
                return False
            return not self._info.lost

    def _renew_once(self):
        record = dict(self._info.holder, expires=iso(time.time() + self._ttl))
        response = self._put(record, IfMatch=self._etag)
        if response is None:
            self._lose("lock %s was taken over by another run while this one held it" % self.location)
            return
        self._etag, self._expires = response["ETag"], from_iso(record["expires"])
        self._info.holder = record
        self._last_error = None

    def confirm(self):
        """Renew now, synchronously, and raise unless this run provably still holds the lock with a margin left.

        The heartbeat alone cannot prove it: it runs every ttl/3, hides failed renewals until expiry, and a pause
        (a stopped process, a stuck request, a clock that jumped) can outlast the ttl without it noticing. Other
        hosts judge expiry by their own clocks, so a renewal must leave at least LOCK_MARGIN of the ttl."""
        with self._renewing:
            if not self._info.lost:
                started = time.time()
                try:
                    self._renew_once()
                except StorageError as err:
                    raise StorageError("cannot prove that this run still holds lock %s: renewing it failed (%s); "
                                       "nothing was committed or deleted, run it again" % (self.location, err))
                took = time.time() - started
                if not self._info.lost and took > self._ttl * (1 - LOCK_MARGIN):
                    self._lose("lock %s may have been taken over: renewing it took %.0fs of its %.0fs ttl"
                               % (self.location, took, self._ttl))
        if self._info.lost:
            raise StorageError("%s; nothing was committed or deleted, and the next run cleans up what this one "
                               "left" % self._info.lost)

    def _lose(self, text):
        self._info.lost = text
        self._info.note(text)

    def __exit__(self, *exc_info):
        self._stop.set()
        self._heartbeat.join()
        if not self._info.lost:
            try:
                self._storage.conditional("unlock", self._key, "delete_object", Key=self._full, IfMatch=self._etag)
            except StorageError as err:
                self._info.note("could not release lock %s (%s); it expires at %s, or a run on this host takes it "
                                "over sooner" % (self.location, err, iso(self._expires)))
        return False
