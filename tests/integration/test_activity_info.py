"""pg_activity_info and redis_info against the stack's real servers: a session idle in a transaction holding a
lock, another blocked behind it, and what Redis says about itself."""

import threading
import time

import redis
from ansible_run import run_module
from pg_fixtures import conn_args, connect


def test_pg_activity_info_names_the_idle_holder_and_the_session_it_blocks(postgres):
    holder = connect(postgres)
    with holder.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS keel_activity_probe (id int)")
        cur.execute("BEGIN")
        cur.execute("LOCK TABLE keel_activity_probe IN ACCESS EXCLUSIVE MODE")
        cur.execute("SELECT pg_backend_pid()")
        holder_pid = cur.fetchone()[0]
    waiter = connect(postgres)
    blocked = threading.Thread(target=lambda: waiter.cursor().execute("SELECT count(*) FROM keel_activity_probe"))
    blocked.start()
    try:
        found = None
        for _attempt in range(50):  # until the waiter shows up as waiting for the lock
            found = run_module("pg_activity_info", dict(conn_args(postgres), min_seconds=0, query_length=40))
            assert found.returncode == 0, found.get("msg")
            if any(holder_pid in s["blocked_by"] for s in found["blocked"]):
                break
            time.sleep(0.2)
        assert found["changed"] is False and found["connections"]["used"] >= 2 and found["connections"]["max"] > 0
        assert holder_pid in [s["pid"] for s in found["idle_in_transaction"]]
        [waiting] = [s for s in found["blocked"] if holder_pid in s["blocked_by"]]
        assert waiting["query"] == "SELECT count(*) FROM keel_activity_probe" and waiting["state"] == "active"
        hidden = run_module("pg_activity_info", dict(conn_args(postgres), min_seconds=0, include_queries=False))
        assert all("query" not in s for s in hidden["idle_in_transaction"] + hidden["blocked"])
    finally:
        holder.cursor().execute("ROLLBACK")
        blocked.join(timeout=30)
        waiter.close()
        holder.close()
    assert not blocked.is_alive()


def test_redis_info_reports_memory_keys_hit_rate_and_the_slow_log(private_redis):
    client = redis.Redis(host=private_redis["host"], port=private_redis["port"], password=private_redis["password"])
    client.config_set("slowlog-log-slower-than", 0)  # every command is slow: the log has entries to return
    client.set("a", "1")
    client.get("a")
    client.get("missing")
    args = dict(login_host=private_redis["host"], login_port=private_redis["port"],
                login_password=private_redis["password"], slowlog=5)
    found = run_module("redis_info", args)
    assert found.returncode == 0 and found["changed"] is False, found.get("msg")
    assert found["version"] == private_redis["version"] and found["role"] == "master"
    assert found["keyspace"]["0"]["keys"] == 1 and found["used_memory"] > 0 and found["hit_rate"] == 50.0
    assert 0 < len(found["slowlog"]) <= 5 and any(e["command"].startswith("GET") for e in found["slowlog"])
    assert private_redis["password"] not in str(found)
    without = run_module("redis_info", dict(args, slowlog_arguments=False))
    assert all(" " not in e["command"] for e in without["slowlog"])


def test_redis_info_resumes_the_slow_log_asks_the_doctors_and_finds_the_biggest_keys(private_redis):
    client = redis.Redis(host=private_redis["host"], port=private_redis["port"], password=private_redis["password"])
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("latency-monitor-threshold", 100)
    client.rpush("queue:big", *range(500))
    client.rpush("queue:small", 1, 2)
    client.hset("user:1", mapping=dict(("f%d" % i, i) for i in range(50)))
    client.set("blob", "x" * 20000)
    for i in range(300):
        client.set("k:%d" % i, i)
    args = dict(login_host=private_redis["host"], login_port=private_redis["port"],
                login_password=private_redis["password"])
    first = run_module("redis_info", dict(args, doctor=True, bigkeys=True, bigkeys_top=2))
    assert first.returncode == 0, first.get("msg")
    assert first["doctor"]["latency_monitor"] is True and first["doctor"]["memory"] and first["doctor"]["latency"]
    big = first["bigkeys"]
    assert big["complete"] is True and big["scanned"] == 304 and big["types"] == {"list": 2, "hash": 1, "string": 301}
    assert [k["key"] for k in big["biggest"]["list"]] == ["queue:big", "queue:small"]
    assert big["biggest"]["list"][0]["length"] == 500 and big["biggest"]["string"][0]["key"] == "blob"
    assert big["by_memory"][0]["key"] == "blob" and big["by_memory"][0]["memory"] > 20000
    client.get("after-the-first-report")
    resumed = run_module("redis_info", dict(args, slowlog_after_id=first["slowlog_last_id"]))
    commands = [e["command"] for e in resumed["slowlog"]]
    assert any(c == "GET after-the-first-report" for c in commands)
    assert all(e["id"] > first["slowlog_last_id"] for e in resumed["slowlog"]) and not resumed["slowlog_restarted"]
    bounded = run_module("redis_info", dict(args, bigkeys=True, bigkeys_max_keys=10))
    assert bounded["bigkeys"]["scanned"] == 10 and bounded["bigkeys"]["complete"] is False


def test_redis_flush_empties_only_the_confirmed_database(private_redis):
    client = redis.Redis(host=private_redis["host"], port=private_redis["port"], password=private_redis["password"])
    cache = redis.Redis(host=private_redis["host"], port=private_redis["port"], password=private_redis["password"], db=1)
    client.set("keep", "1")
    cache.mset({"page:1": "a", "page:2": "b"})
    args = dict(login_host=private_redis["host"], login_port=private_redis["port"],
                login_password=private_redis["password"], db=1)
    refused = run_module("redis_flush", dict(args, confirm="flush db 0"))
    assert refused["failed"] and "needs confirm: 'flush db 1'" in refused["msg"] and cache.dbsize() == 2
    check = run_module("redis_flush", dict(args, confirm="flush db 1"), check_mode=True)
    assert check["changed"] and check["key_count"] == 2 and cache.dbsize() == 2
    done = run_module("redis_flush", dict(args, confirm="flush db 1"))
    assert done["changed"] and done["key_count"] == 2
    assert cache.dbsize() == 0  # ASYNC frees the memory in the background; the keys are gone at once and client.get("keep") == b"1"
    again = run_module("redis_flush", dict(args, confirm="flush db 1"))
    assert not again["changed"] and again["key_count"] == 0
