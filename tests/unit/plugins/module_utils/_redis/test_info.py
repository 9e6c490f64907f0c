"""The figures of INFO and the slow log, as redis_info returns them."""

from ansible_collections.keel.ops.plugins.module_utils._redis.info import figures, slowlog_entries


def test_figures_convert_what_the_server_says_and_leave_out_what_it_lacks():
    info = {"redis_version": "7.0.15", "role": "master", "used_memory": "2048", "mem_fragmentation_ratio": "1.25",
            "keyspace_hits": "30", "keyspace_misses": "10", "aof_enabled": "0", "db0": {"keys": "3", "expires": "1"},
            "connected_clients": "not a number"}
    found = figures(info)
    assert found["version"] == "7.0.15" and found["used_memory"] == 2048 and found["mem_fragmentation_ratio"] == 1.25
    assert found["hit_rate"] == 75.0 and found["aof_enabled"] is False and found["connected_clients"] is None
    assert found["keyspace"] == {"0": {"keys": 3, "expires": 1}} and found["maxmemory"] is None
    assert figures({})["hit_rate"] is None


def test_slow_log_entries_cut_the_command_and_can_leave_its_data_out():
    reply = [[7, 1700000000, 15000, [b"SET", b"session:1", b"x" * 500], b"127.0.0.1:5000", b""]]
    [entry] = slowlog_entries(reply)
    assert entry["id"] == 7 and entry["microseconds"] == 15000 and entry["client"] == "127.0.0.1:5000"
    assert entry["command"].startswith("SET session:1 xxx") and len(entry["command"]) == 200
    assert slowlog_entries(reply, with_arguments=False)[0]["command"] == "SET"
    assert slowlog_entries([[1, 2, 3]])[0]["command"] == ""
