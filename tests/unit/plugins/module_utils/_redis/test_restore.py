"""Restoring a snapshot: what a signal does while the server is down, which servers can read a snapshot, and
what a keys restore plans."""

import os
import signal
import time

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import Backup
from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError
from ansible_collections.keel.ops.plugins.module_utils._redis import restore as redis_restore


def test_a_signal_while_the_server_is_down_raises_once_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(redis_restore.Interrupted, match="interrupted by SIGTERM"):
        with redis_restore._signals_interrupt():  # pylint: disable=protected-access
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    with redis_restore._signals_interrupt():  # pylint: disable=protected-access
        with pytest.raises(redis_restore.Interrupted):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        os.kill(os.getpid(), signal.SIGTERM)  # the next one is ignored: the server is being started again
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is before


class Target:
    def describe(self):
        return "127.0.0.1:6380"


def snapshot_of(version, rdb_version, databases=None):
    return Backup({"id": "20261201T020000000Z-abcdef", "artifacts": [], "source": {"server_version": version},
                   "statistics": {"rdb_version": rdb_version, "keys": 3, "databases": databases}})


def test_a_snapshot_is_refused_by_a_server_too_old_to_read_it():
    newer = snapshot_of("7.2.4", 11)
    with pytest.raises(KeelError, match=r"written by Redis 7.2.4 \(RDB version 11\), which 127.0.0.1:6380 "
                                        r"\(Redis 6.2.6\) cannot read"):
        redis_restore._check_target_version(newer, {"version": "6.2.6"}, Target())  # pylint: disable=protected-access
    redis_restore._check_target_version(newer, {"version": "7.2.0"}, Target())  # pylint: disable=protected-access


class Options:
    replace = False


def test_a_keys_restore_plans_absolute_ttls_only_where_restore_absttl_exists():
    facts = {"keyspace": {"0": {"keys": 2, "expires": 0}}}
    snapshot = snapshot_of("7.0.15", 10, {"10": {"keys": 1}, "2": {"keys": 2}})
    plan = redis_restore._plan_keys(Options(), Target(), dict(facts, version="7.0.15"), snapshot)  # pylint: disable=protected-access
    assert plan["absolute_ttl"] and plan["databases"] == ["2", "10"] and plan["target_keys"] == 2
    old = redis_restore._plan_keys(Options(), Target(), dict(facts, version="4.0.14"), snapshot)  # pylint: disable=protected-access
    assert not old["absolute_ttl"] and old["target_rdb_version"] == 8
