# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the maintenance report reads from Redis beyond INFO: the server's own advice (MEMORY DOCTOR, and LATENCY
DOCTOR when the latency monitor is on), the slow log from where the last report stopped, and the biggest keys per
type found by a sampled SCAN, as `redis-cli --bigkeys` does, but bounded in keys and in time so a large keyspace
never turns the report into load. Read-only; key names are the application's data, returned as text and cut."""

import time

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis.info import slowlog_entries
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import ReplyError

# How each type's size is counted, as redis-cli --bigkeys counts it.
LENGTH = {"string": ("STRLEN", "bytes"), "list": ("LLEN", "items"), "set": ("SCARD", "members"),
          "zset": ("ZCARD", "members"), "hash": ("HLEN", "fields"), "stream": ("XLEN", "entries")}
KEY_LENGTH = 200
SLOWLOG_MAX = 1024


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def doctor(server, info):
    """MEMORY DOCTOR's and LATENCY DOCTOR's advice; the latter only when latency-monitor-threshold is set, since
    without it the doctor has nothing to go on. A server that refuses them (renamed commands, ACL) says why."""
    advice = {}
    for name, command, wanted in (("memory", ("MEMORY", "DOCTOR"), True),
                                  ("latency", ("LATENCY", "DOCTOR"), _latency_monitored(server))):
        if not wanted:
            advice[name] = None
            continue
        try:
            advice[name] = _text(server.call("asking %s" % " ".join(command), *command)).strip()
        except RedisError as error:
            advice[name] = "unavailable: %s" % error
    advice["latency_monitor"] = advice["latency"] is not None
    advice["fragmentation_ratio"] = info.get("mem_fragmentation_ratio")
    return advice


def _latency_monitored(server):
    try:
        return int(server.config_get("latency-monitor-threshold") or 0) > 0
    except (RedisError, ValueError):
        return False


def slowlog_since(server, after_id=None, with_arguments=True, limit=SLOWLOG_MAX):
    """Slow log entries newer than `after_id` (all the server keeps, up to `limit`, without one), oldest first,
    and the id to resume from next time. Redis numbers entries upwards from its start; an id below the one asked
    for means it restarted, and everything it holds is new."""
    entries = slowlog_entries(server.call("reading the slow log", "SLOWLOG", "GET", str(limit)), with_arguments)
    newest = max([entry["id"] for entry in entries] or [after_id if after_id is not None else -1])
    restarted = after_id is not None and newest < after_id
    fresh = [entry for entry in entries if after_id is None or restarted or entry["id"] > after_id]
    return {"entries": sorted(fresh, key=lambda entry: entry["id"]), "last_id": newest if entries else after_id,
            "restarted": restarted}


def _sizes(resp, keys):
    """(type, length, memory) per key, in two pipelined round trips."""
    types = [_text(reply) if not isinstance(reply, ReplyError) else None
             for reply in resp.pipeline([("TYPE", key) for key in keys])]
    commands = []
    for key, kind in zip(keys, types):
        commands.append((LENGTH[kind][0], key) if kind in LENGTH else ("EXISTS", key))
        commands.append(("MEMORY", "USAGE", key, "SAMPLES", "5"))
    replies = resp.pipeline(commands)
    for index, (key, kind) in enumerate(zip(keys, types)):
        length, memory = replies[2 * index], replies[2 * index + 1]
        yield key, kind, length if isinstance(length, int) else None, memory if isinstance(memory, int) else None


def _keep(top, entry, size, limit):
    top.append((size, entry))
    top.sort(key=lambda item: -item[0])
    del top[limit:]


def bigkeys(server, max_keys=100000, seconds=5.0, top=5, db=0, batch=500, clock=time.monotonic):
    """The `top` biggest keys per type by length and overall by memory, from a SCAN of at most `max_keys` keys
    within `seconds` in database `db`; `complete` says whether the whole keyspace was seen."""
    deadline = clock() + seconds
    server.call("selecting database %d" % db, "SELECT", str(db))
    cursor, scanned, by_type, by_memory, counts = b"0", 0, {}, [], {}
    resp, cut = server.resp, False
    while True:
        cursor, keys = server.call("scanning the keyspace", "SCAN", cursor, "COUNT", str(batch))
        cut = len(keys) > max_keys - scanned
        keys = keys[:max(max_keys - scanned, 0)]
        for key, kind, length, memory in _sizes(resp, keys) if keys else ():
            if kind is None or kind == "none":
                continue  # expired or deleted between SCAN and TYPE
            entry = {"key": _text(key)[:KEY_LENGTH], "type": kind, "length": length, "memory": memory,
                     "unit": LENGTH.get(kind, ("", "items"))[1]}
            counts[kind] = counts.get(kind, 0) + 1
            _keep(by_type.setdefault(kind, []), entry, length or 0, top)
            _keep(by_memory, entry, memory or 0, top)
        scanned += len(keys)
        if cursor in (b"0", "0") or scanned >= max_keys or clock() >= deadline:
            break
    return {"db": db, "scanned": scanned, "complete": cursor in (b"0", "0") and not cut, "types": counts,
            "biggest": dict((kind, [entry for _size, entry in found]) for kind, found in sorted(by_type.items())),
            "by_memory": [entry for _size, entry in by_memory]}


def extra_info(server, info, params):
    """What redis_info adds for the maintenance report when asked: the doctors, the slow log since an id, the
    biggest keys."""
    found = {}
    if params["doctor"]:
        found["doctor"] = doctor(server, info)
    if params["slowlog_after_id"] is not None:
        since = slowlog_since(server, params["slowlog_after_id"], params["slowlog_arguments"])
        found.update(slowlog=since["entries"], slowlog_last_id=since["last_id"], slowlog_restarted=since["restarted"])
    if params["bigkeys"]:
        found["bigkeys"] = bigkeys(server, params["bigkeys_max_keys"], params["bigkeys_seconds"], params["bigkeys_top"],
                                   params["bigkeys_db"])
    return found


def flush_confirmation(db):
    return "flush db %d" % db


def check_flush(db, confirm):
    """A ConfigError unless `confirm` names database `db` as flush_confirmation() says; before anything connects."""
    if db < 0:
        raise ConfigError("db is %d; it must be a database number, 0 or more" % db)
    if (confirm or "").strip() != flush_confirmation(db):
        raise ConfigError("emptying database %d needs confirm: '%s' (got %r); nothing was flushed"
                          % (db, flush_confirmation(db), confirm))


def flush_db(server, db, confirm, check_mode=False):
    """FLUSHDB ASYNC of database `db`, only with its confirmation; the keys it held (0: nothing to do)."""
    check_flush(db, confirm)
    server.call("selecting database %d" % db, "SELECT", str(db))
    keys = server.call("counting the keys", "DBSIZE")
    if keys and not check_mode:
        server.call("flushing database %d" % db, "FLUSHDB", "ASYNC")
    return keys
