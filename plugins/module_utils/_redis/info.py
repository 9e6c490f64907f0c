# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a Redis server says about itself, for an incident record and the maintenance report: the figures of INFO
that matter (memory, fragmentation, clients, hit rate, persistence, keyspace) and the slow log. Read-only; slow
log arguments are cut and can be left out, since they are the commands' data."""

from ansible_collections.keel.ops.plugins.module_utils._redis.connection import keyspace

FIGURES = (("version", "redis_version", str), ("role", "role", str), ("uptime_seconds", "uptime_in_seconds", int),
           ("connected_clients", "connected_clients", int), ("blocked_clients", "blocked_clients", int),
           ("used_memory", "used_memory", int), ("used_memory_human", "used_memory_human", str),
           ("maxmemory", "maxmemory", int), ("mem_fragmentation_ratio", "mem_fragmentation_ratio", float),
           ("ops_per_second", "instantaneous_ops_per_sec", int), ("evicted_keys", "evicted_keys", int),
           ("rdb_last_bgsave_status", "rdb_last_bgsave_status", str), ("rdb_last_save_time", "rdb_last_save_time", int),
           ("aof_enabled", "aof_enabled", lambda value: value == "1"))


def _figure(info, name, convert):
    try:
        return convert(info[name])
    except (KeyError, TypeError, ValueError):
        return None


def figures(info):
    """INFO's figures by our names (None where the server lacks one), the hit rate and the keyspace."""
    found = dict((ours, _figure(info, theirs, convert)) for ours, theirs, convert in FIGURES)
    hits, misses = _figure(info, "keyspace_hits", int) or 0, _figure(info, "keyspace_misses", int) or 0
    found["hit_rate"] = round(100.0 * hits / (hits + misses), 1) if hits + misses else None
    found["keyspace"] = keyspace(info)
    return found


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def slowlog_entries(reply, with_arguments=True, length=200):
    """SLOWLOG GET's reply as dicts: id, time (epoch), microseconds, and the command cut to `length` characters
    (only its name without with_arguments)."""
    entries = []
    for item in reply or []:
        command = [_text(part) for part in (item[3] if len(item) > 3 else [])]
        text = " ".join(command if with_arguments else command[:1])
        entries.append({"id": int(item[0]), "time": int(item[1]), "microseconds": int(item[2]),
                        "command": text[:length], "client": _text(item[4]) if len(item) > 4 else None})
    return entries


def server_info(server, slowlog=10, with_arguments=True):
    """figures() of the server, its slow log's newest `slowlog` entries, and the whole INFO."""
    info = server.info()
    entries = slowlog_entries(server.call("reading the slow log", "SLOWLOG", "GET", str(slowlog)), with_arguments) \
        if slowlog else []
    return dict(figures(info), slowlog=entries, slowlog_last_id=max(entry["id"] for entry in entries) if entries else None,
                info=dict((k, v) for k, v in info.items() if not isinstance(v, dict)))
