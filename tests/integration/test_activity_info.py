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
