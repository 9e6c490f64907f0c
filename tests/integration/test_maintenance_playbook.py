"""playbooks/weekly_maintenance.yml on one local host against the stack's real PostgreSQL, a private Redis, a private
HAProxy and real files: the window guard refusing and changing nothing, a full run whose report lands in the
history and is compared against by the next run, and maintenance mode that puts the backend back in service after
a failing step."""

import json
import os
import shutil
import socket
import subprocess
import time

import haproxy_admin
import pytest
import redis
from ansible_run import local_inventory, run_module, run_playbook
from conftest import unavailable
from http_fixture import start_server
from pg_fixtures import conn_args, connect, scratch_database

PLAYBOOK = "playbooks/weekly_maintenance.yml"
SUNDAY_IN_WINDOW = "2026-12-06T02:30:00Z"
WEDNESDAY = "2026-12-02T10:00:00Z"
DAY = 86400


@pytest.fixture
def database(postgres):
    with scratch_database(postgres, "keel_weekly") as name:
        conn = connect(postgres, name)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz NOT NULL) "
                        "WITH (autovacuum_enabled = false)")
            cur.execute("INSERT INTO events (at) SELECT now() - interval '60 days' FROM generate_series(1, 3000)")
            cur.execute("INSERT INTO events (at) SELECT now() FROM generate_series(1, 700)")
            cur.execute("UPDATE events SET at = at + interval '1 second' WHERE id > 3000")
        conn.close()
        yield name


def old_logs(root):
    stamp = time.time() - 30 * DAY
    for name in ("app.log.1", "worker.log"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("old\n" * 100)
        os.utime(str(path), (stamp, stamp))
    (root / "app.log").write_text("today\n")
    return root


def weekly_vars(tmp_path, postgres, database, **extra):
    values = dict(
        maintenance_hosts="all", maintenance_now=SUNDAY_IN_WINDOW,
        maintenance_report_dir=str(tmp_path / "history"),
        maintenance_postgres_databases=[{"name": database, "retention": [
            {"table": "events", "column": "at", "older_than_days": 30, "batch_size": 1000, "pause": 0}]}],
        maintenance_postgres_login_host=postgres["host"], maintenance_postgres_login_port=postgres["port"],
        maintenance_postgres_login_user=postgres["user"], maintenance_postgres_login_password=postgres["password"],
        maintenance_postgres_bin_dir=postgres["bin_dir"],
        maintenance_postgres_options={"vacuum_min_dead_tuples": 100, "lock_timeout": 2},
        maintenance_log_paths=[str(tmp_path / "logs")],
        maintenance_health_checks=[{"name": "host", "kind": "system",
                                    "thresholds": {"memory": {"warning": 101, "critical": 101},
                                                   "disk": {"warning": 101, "critical": 101}}}])
    values.update(extra)
    return values


def rows(postgres, database, query):
    conn = connect(postgres, database)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def history(tmp_path, host="db1"):
    folder = tmp_path / "history" / host
    return sorted(os.listdir(str(folder))) if folder.exists() else []


def audit_lines(tmp_path):
    with open(str(tmp_path / "audit.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_the_window_guard_refuses_outside_the_window_and_changes_nothing(tmp_path, postgres, database):
    logs = old_logs(tmp_path / "logs")
    run = run_playbook(PLAYBOOK, local_inventory(tmp_path), weekly_vars(tmp_path, postgres, database,
                                                                        maintenance_now=WEDNESDAY))
    assert run.returncode != 0
    assert "Refused: outside every maintenance window" in run.stdout and "Nothing was changed" in run.stdout
    assert "the next (weekly) opens 2026-12-06T02:00:00Z" in run.stdout, run.stdout[-3000:]
    assert (logs / "worker.log").exists() and (logs / "app.log.1").exists()
    assert rows(postgres, database, "SELECT count(*) FROM events") == [(3700,)]
    assert history(tmp_path) == []


def test_a_weekly_run_maintains_reports_into_the_history_and_the_next_run_compares(
        tmp_path, postgres, database, private_redis):
    logs = old_logs(tmp_path / "logs")
    cache = redis.Redis(host=private_redis["host"], port=private_redis["port"], password=private_redis["password"])
    cache.config_set("slowlog-log-slower-than", 0)
    cache.set("greeting", "hello")
    repo = str(tmp_path / "repo")
    web = start_server()
    taken = run_module("pg_backup", dict(conn_args(postgres), repository=repo, database=database, source=database))
    assert taken.returncode == 0, taken.get("msg")
    values = weekly_vars(tmp_path, postgres, database, maintenance_redis_enabled=True,
                         maintenance_redis_login_host=private_redis["host"],
                         maintenance_redis_login_port=private_redis["port"],
                         maintenance_redis_login_password=private_redis["password"],
                         maintenance_repository=repo, maintenance_verify_backups=[{"kind": "postgres", "source": database}],
                         maintenance_audit_log=str(tmp_path / "audit.jsonl"), maintenance_audit_actor="alice",
                         maintenance_notify_webhook_url=web.url("/hook"))
    first = run_playbook(PLAYBOOK, local_inventory(tmp_path), values)
    assert first.returncode == 0, first.stdout[-4000:]
    assert postgres["password"] not in first.stdout and private_redis["password"] not in first.stdout
    files = history(tmp_path)
    assert "latest.json" in files and len([f for f in files if f.endswith(".md")]) == 1
    report = json.loads((tmp_path / "history" / "db1" / "latest.json").read_text())
    assert report["result"] == "ok" and report["run"]["finished_inside"] is True and report["previous"] is None
    assert dict((s["step"], s["status"]) for s in report["steps"]) == {
        "postgres": "ok", "redis": "ok", "logs": "ok", "containers": "skipped", "sqlite": "skipped",
        "backups": "ok", "health": "ok"}
    [db] = report["postgres"]
    assert db["retention_deleted"] == 3000 and db["vacuumed"] >= 1 and db["growth_bytes"] is None
    assert rows(postgres, database, "SELECT count(*), min(at) > now() - interval '1 day' FROM events") == [(700, True)]
    assert rows(postgres, database, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'events'") == [(0,)]
    assert report["logs"]["count"] == 2 and not (logs / "worker.log").exists() and (logs / "app.log").exists()
    assert [b["status"] for b in report["backups"]] == ["verified"]
    trail = audit_lines(tmp_path)
    # one line per changing task: retention and vacuum, the old logs, the verified backup's record
    assert sorted(line["module"] for line in trail) == [
        "keel.ops.log_cleanup", "keel.ops.pg_backup", "keel.ops.pg_maintenance"]
    assert all(line["actor"] == "alice" and line["result"] == "changed" for line in trail)
    assert [line["target"]["database"] for line in trail if line["module"] == "keel.ops.pg_maintenance"] == [database]
    text = (tmp_path / "audit.jsonl").read_text()
    assert postgres["password"] not in text and private_redis["password"] not in text
    taken_entries = os.listdir(os.path.join(repo, "audit"))  # the backup itself, audited into its repository
    assert len(taken_entries) == 1
    posted = [json.loads(post["body"]) for post in web.posts]  # announced before and after
    assert [post["subject"] for post in posted][0] == "keel.ops weekly maintenance of db1 starts"
    assert len(posted) == 2 and posted[1]["subject"].startswith("keel.ops weekly maintenance of db1: ok")
    first_slowlog_id = report["redis"]["slowlog_last_id"]
    assert first_slowlog_id is not None and private_redis["password"] not in json.dumps(report)

    cache.get("between-the-runs")
    second = run_playbook(PLAYBOOK, local_inventory(tmp_path), values)
    assert second.returncode == 0, second.stdout[-4000:]
    again = json.loads((tmp_path / "history" / "db1" / "latest.json").read_text())
    assert again["previous"] == report["run"]["finished"]
    assert again["postgres"][0]["growth_bytes"] is not None and again["postgres"][0]["retention_deleted"] == 0
    assert again["redis"]["slowlog_last_id"] > first_slowlog_id
    assert len([f for f in history(tmp_path) if f.endswith(".json") and f != "latest.json"]) == 2
    # nothing left to delete, vacuum or remove: only the new verification record changed something
    assert [line["module"] for line in audit_lines(tmp_path)[len(trail):]] == ["keel.ops.pg_backup"]


# --------------------------------------------------------------------------------------------------------
# Maintenance mode, on a private HAProxy in front of a real HTTP server
# --------------------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def haproxy(tmp_path):
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if not binary:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    app = start_server()
    port, admin = free_port(), str(tmp_path / "admin.sock")
    config = tmp_path / "haproxy.cfg"
    config.write_text("""global
    stats socket %(admin)s mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout check 1s
frontend web
    bind 127.0.0.1:%(port)d
    default_backend app
backend app
    option httpchk GET /ok
    default-server inter 300ms fastinter 200ms downinter 300ms rise 1 fall 2
    server web1 127.0.0.1:%(app)d check
    server web2 127.0.0.1:%(app)d check
    server spare 127.0.0.1:%(app)d check
""" % {"admin": admin, "port": port, "app": app.server_address[1]})
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _attempt in range(100):
            if os.path.exists(admin) and all(state == ("2", "0") for state in haproxy_admin.server_states(admin).values()):
                break
            time.sleep(0.1)
        else:
            stopped = process.poll() is not None
            raise AssertionError("haproxy did not come up: %s" % (process.stderr.read(2000) if stopped else
                                                                  "still running, its servers not all up"))
        yield {"socket": admin, "frontend": "http://127.0.0.1:%d/ok" % port}
    finally:
        process.terminate()
        process.wait(timeout=10)
        app.shutdown()


def test_the_backend_is_back_in_service_after_a_failing_step_and_a_server_taken_out_before_stays_out(
        tmp_path, haproxy, postgres, database):
    haproxy_admin.admin(haproxy["socket"], "set server app/spare state maint")  # an operator's doing
    old_logs(tmp_path / "logs")
    damaged = tmp_path / "state.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    values = weekly_vars(tmp_path, postgres, database, maintenance_steps=["logs", "sqlite"],
                         maintenance_quiet_steps=["sqlite"], maintenance_sqlite_files=[str(damaged)],
                         maintenance_haproxy_socket=haproxy["socket"], maintenance_haproxy_backend="app",
                         maintenance_haproxy_drain_timeout=1,
                         maintenance_mode_checks=[{"name": "app", "kind": "http", "url": haproxy["frontend"]}])
    run = run_playbook(PLAYBOOK, local_inventory(tmp_path), values)
    assert run.returncode != 0 and "failed integrity_check" in run.stdout, run.stdout[-4000:]
    report = json.loads((tmp_path / "history" / "db1" / "latest.json").read_text())
    assert [(s["step"], s["status"]) for s in report["steps"]] == [("logs", "ok"), ("sqlite", "failed")]
    assert report["maintenance_mode"] == {"servers": ["web1", "web2"], "back_in_service": ["web1", "web2"],
                                          "checks": "healthy"}
    now = haproxy_admin.server_states(haproxy["socket"])
    assert now["web1"][1] == "0" and now["web2"][1] == "0" and now["spare"][1] != "0"
    assert damaged.read_bytes().endswith(b"\xff" * 100)


def test_the_monthly_run_reports_pending_updates_without_applying_them_in_its_own_window(tmp_path):
    if not shutil.which("apt-get"):
        unavailable("the updates step needs apt (Debian, Ubuntu)")
    values = {"maintenance_hosts": "all", "maintenance_now": "2026-12-06T01:30:00Z",  # the first Sunday, 01:00-05:00
              "maintenance_report_dir": str(tmp_path / "history"), "monthly_maintenance_steps": ["updates"],
              "maintenance_updates_update_cache": False}
    run = run_playbook("playbooks/monthly_maintenance.yml", local_inventory(tmp_path), values)
    assert run.returncode == 0, run.stdout[-4000:]
    report = json.loads((tmp_path / "history" / "db1" / "latest.json").read_text())
    assert report["run"]["kind"] == "monthly" and report["run"]["window"]["window"] == "monthly"
    assert report["run"]["finished_inside"] is True and report["steps"] == [{"step": "updates", "status": "ok"}]
    updates = report["updates"]
    assert updates["applied"] is False and isinstance(updates["reboot_required"], bool)
    assert all(set(item) == {"package", "installed", "candidate", "security"} for item in updates["pending"])
    weekly_window = run_playbook("playbooks/monthly_maintenance.yml", local_inventory(tmp_path),
                                 dict(values, maintenance_now="2026-12-13T01:30:00Z"))  # the second Sunday
    assert weekly_window.returncode != 0 and "the next (monthly) opens 2027-01-03T01:00:00Z" in weekly_window.stdout
