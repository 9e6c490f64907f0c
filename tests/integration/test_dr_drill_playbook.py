"""playbooks/dr_drill.yml with the dr_drill role on one local host: the newest backups of a PostgreSQL database, a
Redis server and a file set with a SQLite database are restored into scratch targets and proven; the report, the
history and the dashboard are written; production is untouched and no scratch target is left; a missed RPO
objective fails the drill."""

import json
import os
import time

from ansible_run import local_inventory, run_module, run_playbook
from pg_fixtures import connect, fingerprints
from test_restore_playbook import Site

PLAYBOOK = "playbooks/dr_drill.yml"


def _drill_vars(site, **extra):
    values = dict(
        dr_drill_hosts="all", dr_drill_repository=site.repo, dr_drill_postgres_databases=[site.database],
        dr_drill_postgres_login_host=site.pg["host"], dr_drill_postgres_login_port=site.pg["port"],
        dr_drill_postgres_login_user=site.pg["user"], dr_drill_postgres_login_password=site.pg["password"],
        dr_drill_postgres_bin_dir=site.pg["bin_dir"], dr_drill_redis_sources=["cache"],
        dr_drill_redis_server_bin=site.redis["server_bin"], dr_drill_file_sets=["app-data"],
        dr_drill_scratch_dir=str(site.tmp_path / "scratch"), dr_drill_report_dir=str(site.tmp_path / "drills"),
        dr_drill_prometheus_textfile=str(site.tmp_path / "keel_dr_drill.prom"))
    values.update(extra)
    return values


def _scratch_databases(pg):
    conn = connect(pg)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'keel_verify_%%'")
        found = cur.fetchone()[0]
    conn.close()
    return found


def test_a_drill_proves_every_source_in_scratch_targets_and_keeps_its_history(tmp_path, postgres, private_redis):
    site = Site(tmp_path, postgres, private_redis)
    site.build()
    ids = site.back_up()
    live = fingerprints(postgres, site.database)
    keys = site.client().dbsize()
    (tmp_path / "drills").mkdir()
    inventory = local_inventory(tmp_path)

    run = run_playbook(PLAYBOOK, inventory, _drill_vars(site))
    assert run.returncode == 0, run.stdout[-5000:]
    [path] = (tmp_path / "drills").glob("dr-drill-*.json")
    drill = json.loads(path.read_text())
    assert drill["result"] == "passed" and drill["failures"] == [] and drill["met"] == {"rto": True, "rpo": True}
    assert [(s["kind"], s["backup_id"], s["result"]) for s in drill["sources"]] == [
        ("postgres", ids["postgres"], "passed"), ("redis", ids["redis"], "passed"), ("files", ids["app-data"], "passed")]
    postgres_checks = drill["sources"][0]["checks"]
    assert postgres_checks["amcheck"].endswith("indexes") and postgres_checks["statistics"].endswith("rows")
    assert drill["sources"][2]["checks"]["integrity_check"] == "1 SQLite files ok"
    assert drill["measured"]["rto_seconds"] > 0 and drill["measured"]["rpo_seconds"] >= 0
    assert all((s["size"] or 0) > 0 and s["age_seconds"] is not None for s in drill["sources"]), drill["sources"]
    assert fingerprints(postgres, site.database) == live and site.client().dbsize() == keys, "production untouched"
    assert _scratch_databases(postgres) == 0 and os.listdir(str(tmp_path / "scratch")) == []
    dashboard = (tmp_path / "drills" / "dashboard.html").read_text()
    assert "Disaster Recovery Dashboard" in dashboard and site.database in dashboard
    metrics = (tmp_path / "keel_dr_drill.prom").read_text()
    assert 'keel_dr_drill_success{host="db1"} 1' in metrics

    time.sleep(1.1)  # drill ids have whole seconds
    missed = run_playbook(PLAYBOOK, inventory, _drill_vars(site, dr_drill_rpo_objective=1, dr_drill_pick="random"))
    assert missed.returncode != 0
    assert "RPO objective missed" in missed.stdout, missed.stdout[-3000:]
    [second] = [p for p in (tmp_path / "drills").glob("dr-drill-*.json") if p != path]
    picked = json.loads(second.read_text())["sources"]  # one backup per source in the window: that one
    assert [s["error"] for s in picked] == [None, None, None], picked
    assert [(s["backup_id"], s["result"]) for s in picked] == [(ids["postgres"], "passed"), (ids["redis"], "passed"),
                                                               (ids["app-data"], "passed")]
    history = json.loads((tmp_path / "repo" / "drills" / "db1.json").read_text())  # kept in the backup repository
    assert [entry["result"] for entry in history] == ["passed", "failed"]
    assert run_module("dr_drill_history", {"repository": site.repo, "host": "db1"})["history"] == history
    assert 'keel_dr_drill_success{host="db1"} 0' in (tmp_path / "keel_dr_drill.prom").read_text()
