# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a server is doing right now, for an incident record and the maintenance report: connections used against
max_connections, the sessions running longer than a threshold, those idle in a transaction, and who waits for a
lock held by whom. Read-only; query texts are cut to a length and can be left out, since they may hold literals."""

from ansible_collections.keel.ops.plugins.module_utils._postgres.catalog import translated

_SESSIONS_SQL = """
SELECT pid, usename, datname, application_name, host(client_addr), state, wait_event_type, wait_event,
       round(EXTRACT(EPOCH FROM now() - query_start)::numeric, 3)::float8,
       round(EXTRACT(EPOCH FROM now() - xact_start)::numeric, 3)::float8,
       pg_blocking_pids(pid), left(query, %(length)s)
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND state IS NOT NULL AND state <> 'idle'
ORDER BY query_start"""

FIELDS = ("pid", "user", "database", "application", "client", "state", "wait_event_type", "wait_event",
          "query_seconds", "transaction_seconds", "blocked_by", "query")


def _session(row, with_query):
    session = dict(zip(FIELDS, row))
    if not with_query:
        session.pop("query")
    return session


@translated("read pg_stat_activity")
def activity(conn, min_seconds=60.0, query_length=200, with_query=True):
    """The server's activity: connections, long-running and idle-in-transaction sessions, blocked sessions."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend'")
        used, allowed = cur.fetchone()
        cur.execute(_SESSIONS_SQL, {"length": max(int(query_length), 0)})
        sessions = [_session(row, with_query) for row in cur.fetchall()]
    return summarise(sessions, used, allowed, min_seconds)


def summarise(sessions, used, allowed, min_seconds):
    long_running = [s for s in sessions if s["state"] == "active" and (s["query_seconds"] or 0) >= min_seconds]
    idle = [s for s in sessions if s["state"].startswith("idle in transaction")
            and (s["transaction_seconds"] or 0) >= min_seconds]
    return {"connections": {"used": used, "max": allowed, "percent": round(100.0 * used / allowed, 1) if allowed else None},
            "long_running": long_running, "idle_in_transaction": idle,
            "blocked": [s for s in sessions if s["blocked_by"]], "active": len([s for s in sessions if s["state"] == "active"])}
