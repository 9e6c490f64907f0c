"""The S3 lock's own decisions against a scripted storage: when a holder is stale, what a takeover may clean up,
renewals that fail or come too late, and release (S3 itself is tests/integration/test_storage.py's)."""

import contextlib
import datetime
import io
import json
import os
import subprocess
import sys
import time
import types

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import s3_lock
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import LockTimeout, NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import holder_record, iso

LOCATION = "s3://bucket/postgres/db1/.lock"


class ScriptedStorage:
    """The calls S3Lock makes: get_object answers `current` (a lock record, or NotFound when None); each conditional
    call takes the next of `answers` (a response, None for a lost condition, or an exception to raise)."""

    def __init__(self, current=None, answers=()):
        self.current, self.answers, self.calls = current, list(answers), []

    def full_key(self, key):
        return key

    def describe(self, key):
        return "s3://bucket/" + key

    def require_conditional_writes(self, location):
        pass

    def object_args(self, data=True):
        return {}

    @contextlib.contextmanager
    def errors(self, action, key=None):
        yield

    def call(self, action, key, method, **kwargs):
        if self.current is None:
            raise NotFound("no lock")
        return {"Body": io.BytesIO(json.dumps(self.current).encode()), "ETag": "etag-theirs",
                "LastModified": datetime.datetime.now(datetime.timezone.utc)}

    def conditional(self, action, key, method, **kwargs):
        self.calls.append((method, dict((k, v) for k, v in kwargs.items() if k.startswith("If"))))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer


def held(storage, ttl=600):
    """An entered lock; with the default ttl its heartbeat waits 200s, so only the test renews it."""
    lock = s3_lock.S3Lock(storage, "postgres/db1/.lock", 0, ttl, "pg_backup db1")
    return lock, lock.__enter__()


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_holder_is_stale_once_expired_or_when_its_process_is_gone_from_this_host():
    later, earlier = time.time() + 600, time.time() - 60
    alive = holder_record("a live run", 600)
    assert s3_lock.S3Lock._stale(alive, later) is None
    assert s3_lock.S3Lock._stale(alive, earlier) == "it expired at %s" % iso(earlier)
    pid = dead_pid()
    assert s3_lock.S3Lock._stale(dict(alive, pid=pid), later) == "its process %d is gone from this host" % pid
    assert s3_lock.S3Lock._stale(dict(alive, pid=pid, host="elsewhere"), later) is None


def test_a_live_holder_is_waited_for_and_never_overwritten():
    storage = ScriptedStorage(current=holder_record("the other run", 600))
    with pytest.raises(LockTimeout, match="gave up after 0s waiting for lock %s, held by host .* pid %d \\(the other "
                                          "run\\)" % (LOCATION, os.getpid())):
        held(storage)
    assert storage.calls == []


@pytest.mark.parametrize("holder, settle", [("expired elsewhere", 600), ("crashed here", 0)])
def test_a_takeover_lets_cleanup_remove_leftovers_at_once_only_when_the_holder_is_proven_dead(holder, settle):
    if holder == "expired elsewhere":
        previous = dict(holder_record(holder, 600), expires=iso(time.time() - 5), host="elsewhere")
    else:
        previous = dict(holder_record(holder, 600), pid=dead_pid())
    storage = ScriptedStorage(current=previous, answers=[{"ETag": "etag-ours"}, {}])
    lock, info = held(storage)
    assert storage.calls == [("put_object", {"IfMatch": "etag-theirs"})]
    assert info.settle == settle and info.took_over.startswith("took over lock %s from host" % LOCATION)
    assert info.warnings == [info.took_over]
    lock.__exit__(None, None, None)


def test_a_failed_heartbeat_is_retried_until_the_lock_would_expire_then_the_lock_is_lost():
    storage = ScriptedStorage(answers=[{"ETag": "etag-1"}, StorageError("read timeout"), StorageError("read timeout")])
    lock, info = held(storage)
    assert lock._renew() is True and info.lost is None  # a hiccup: the next beat tries again
    lock._expires = time.time() - 1
    assert lock._renew() is False
    assert info.lost == "lock %s expired because it could not be renewed (read timeout)" % LOCATION
    with pytest.raises(StorageError, match="expired because it could not be renewed"):
        info.check()  # before any irreversible step
    lock.__exit__(None, None, None)
    assert [method for method, _condition in storage.calls] == ["put_object"] * 3  # a lost lock is not deleted


def test_a_renewal_that_takes_most_of_the_ttl_no_longer_proves_the_lock(monkeypatch):
    storage = ScriptedStorage(answers=[{"ETag": "etag-1"}])
    lock, info = held(storage)
    clock = [time.time()]

    def slow_renewal():
        clock[0] += 500  # of a 600s ttl: less than LOCK_MARGIN is left for the clocks of other hosts
        return {"ETag": "etag-3"}

    storage.answers = [{"ETag": "etag-2"}, slow_renewal]
    monkeypatch.setattr(s3_lock, "time", types.SimpleNamespace(time=lambda: clock[0]))
    info.check()  # a prompt renewal proves it
    with pytest.raises(StorageError, match="may have been taken over: renewing it took 500s of its 600s ttl"):
        info.check()
    monkeypatch.undo()
    lock.__exit__(None, None, None)
    assert storage.calls[-1][0] == "put_object"  # the lock it may have lost is left alone


def test_release_deletes_only_the_lock_this_run_last_wrote_and_a_failure_is_a_warning():
    storage = ScriptedStorage(answers=[{"ETag": "etag-1"}, {"ETag": "etag-2"}, StorageError("access denied")])
    lock, info = held(storage)
    info.check()
    lock.__exit__(None, None, None)
    assert storage.calls[-1] == ("delete_object", {"IfMatch": "etag-2"})
    assert info.warnings == ["could not release lock %s (access denied); it expires at %s, or a run on this host "
                             "takes it over sooner" % (LOCATION, info.holder["expires"])]
