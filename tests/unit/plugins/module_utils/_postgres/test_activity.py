"""What pg_activity_info makes of pg_stat_activity's sessions."""

from ansible_collections.keel.ops.plugins.module_utils._postgres.activity import FIELDS, _session, summarise


def row(pid, state, query_seconds, transaction_seconds, blocked_by=()):
    return _session((pid, "app", "shop", "web", "10.0.0.5", state, None, None, query_seconds, transaction_seconds,
                     list(blocked_by), "SELECT 1"), with_query=True)


def test_long_running_idle_in_transaction_and_blocked_sessions_are_told_apart():
    sessions = [row(1, "active", 120.0, 120.0), row(2, "active", 5.0, 5.0, blocked_by=[1]),
                row(3, "idle in transaction", 1.0, 300.0), row(4, "idle in transaction (aborted)", 0.5, 90.0),
                row(5, "idle in transaction", 1.0, 10.0)]
    found = summarise(sessions, used=12, allowed=100, min_seconds=60)
    assert [s["pid"] for s in found["long_running"]] == [1]
    assert [s["pid"] for s in found["idle_in_transaction"]] == [3, 4]
    assert [s["pid"] for s in found["blocked"]] == [2] and found["active"] == 2
    assert found["connections"] == {"used": 12, "max": 100, "percent": 12.0}


def test_query_texts_can_be_left_out():
    session = _session(tuple(range(len(FIELDS))), with_query=False)
    assert "query" not in session and session["pid"] == 0
