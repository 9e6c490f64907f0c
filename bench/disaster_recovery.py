"""Benchmark: playbooks/restore.yml against the runbook's restore (dropdb, createdb, pg_restore, tar -x), side by
side in one run, after the same disaster.

Starts its own embedded stack (PostgreSQL, tools/stack.py) in a state dir, creates the demo's data
(tools/demo_data.py: the shop database, the app's files with its SQLite state), backs both up once with keel
(local repository, the modules' defaults) and once as the runbook does (pg_dump -Fc, tar -cf), then per round:

  disaster  the database dropped, the uploads deleted, the SQLite state corrupted (untimed)
  runbook   dropdb --if-exists; createdb; pg_restore; tar -xf over the app directory
  keel      ansible-playbook playbooks/restore.yml, confirmed: every part pre-checked (checksums proven), the
            database restored beside the live one and swapped in once its row counts match, files staged,
            checked and renamed in, the report written

and checks after every restore that the data is back (row count, uploads, SQLite integrity_check). Redis is left
out: its restore is measured in bench/redis_snapshot.py. Figures go to stdout and bench/results/disaster_recovery.json.

    .venv/bin/python bench/disaster_recovery.py [--rows 300000] [--repeat 3] [--state-dir DIR]
"""

import argparse
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time

from harness import BenchError, measure_rounds, module, run  # bench/, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
RESULTS = os.path.join(ROOT, "bench", "results", "disaster_recovery.json")


class Site:
    def __init__(self, facts, state, work):
        pg = facts["postgres"]
        self.pg, self.state, self.work = pg, state, work
        self.app = os.path.join(os.path.realpath(state), "app")
        self.repo = os.path.join(work, "repo")
        self.env = dict(os.environ, PGHOST=pg["host"], PGPORT=str(pg["port"]), PGUSER=pg["user"],
                        PGPASSWORD=pg["password"], PGDATABASE=pg["database"])
        self.bin = pg["bin_dir"]

    def pg_tool(self, name, *argv):
        return run([os.path.join(self.bin, name)] + list(argv), env=self.env, what=name)

    def conn_args(self):
        return dict(login_host=self.pg["host"], login_port=self.pg["port"], login_user=self.pg["user"],
                    login_password=self.pg["password"], bin_dir=self.bin)

    def back_up(self):
        module("pg_backup", dict(self.conn_args(), repository=self.repo, database="shop", source="shop"))
        module("file_backup", dict(repository=self.repo, source="app", paths=[self.app]))
        self.pg_tool("pg_dump", "-Fc", "-f", os.path.join(self.work, "shop.pgc"), "shop")
        run(["tar", "-cf", os.path.join(self.work, "app.tar"), "-C", "/", self.app.lstrip("/")], what="tar -c")

    def disaster(self):
        self.pg_tool("dropdb", "--if-exists", "--force", "shop")
        shutil.rmtree(os.path.join(self.app, "uploads"))
        with open(os.path.join(self.app, "state", "clo.db"), "r+b") as handle:
            handle.seek(100)
            handle.write(os.urandom(4096))

    def check(self, rows):
        found = self.pg_tool("psql", "-d", "shop", "-Atc", "SELECT count(*) FROM orders").stdout.strip()
        uploads = len(os.listdir(os.path.join(self.app, "uploads")))
        db = sqlite3.connect(os.path.join(self.app, "state", "clo.db"))
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        if (found, uploads, integrity) != (str(rows), 200, "ok"):
            raise BenchError("not restored: %s orders, %d uploads, SQLite %s" % (found, uploads, integrity))

    def runbook(self):
        self.pg_tool("createdb", "shop")
        self.pg_tool("pg_restore", "-d", "shop", os.path.join(self.work, "shop.pgc"))
        run(["tar", "-xf", os.path.join(self.work, "app.tar"), "-C", "/"], what="tar -x")

    def playbook(self):
        inventory = os.path.join(self.work, "inventory.json")
        with open(inventory, "w") as handle:
            json.dump({"all": {"hosts": {"bench": {"ansible_connection": "local",
                                                   "ansible_python_interpreter": sys.executable}}}}, handle)
        extra = os.path.join(self.work, "vars.json")
        with open(extra, "w") as handle:
            os.chmod(extra, 0o600)
            json.dump({"disaster_recovery_hosts": "all", "disaster_recovery_repository": self.repo,
                       "disaster_recovery_confirm": "yes-destroy-current-data",
                       "disaster_recovery_postgres_databases": [{"database": "shop", "source": "shop"}],
                       "disaster_recovery_postgres_login_host": self.pg["host"],
                       "disaster_recovery_postgres_login_port": self.pg["port"],
                       "disaster_recovery_postgres_login_user": self.pg["user"],
                       "disaster_recovery_postgres_login_password": self.pg["password"],
                       "disaster_recovery_postgres_bin_dir": self.bin,
                       "disaster_recovery_file_sets": [{"name": "app"}],
                       "disaster_recovery_report_dir": os.path.join(self.work, "reports")}, handle)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build"))
        run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(ROOT, "playbooks", "restore.yml"),
             "-e", "@" + extra], env=env, what="restore.yml")
        reports = sorted(name for name in os.listdir(os.path.join(self.work, "reports")) if name.endswith(".json"))
        with open(os.path.join(self.work, "reports", reports[-1])) as handle:
            return json.load(handle)


def timed(site, rows, action):
    def measure():
        site.disaster()
        started = time.monotonic()
        report = action()
        seconds = time.monotonic() - started
        site.check(rows)
        result = {"seconds": seconds}
        if isinstance(report, dict):
            result.update(rto_seconds=report["rto_seconds"], precheck_seconds=report["precheck_seconds"])
        return result
    return measure


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300000, help="orders in the shop database")
    parser.add_argument("--repeat", type=int, default=3, help="N rounds of every timed step; the fastest is kept")
    parser.add_argument("--state-dir", help="stack state dir to use and keep; default: a fresh one, removed")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import keel_stack  # pylint: disable=import-outside-toplevel

    state = args.state_dir or tempfile.mkdtemp(prefix="keel-bench-dr-", dir="/tmp")
    os.makedirs(state, exist_ok=True)
    os.chmod(state, 0o711)  # PostgreSQL runs as an unprivileged user and must traverse it
    work = tempfile.mkdtemp(prefix="keel-bench-dr-work-", dir="/tmp")
    stack = keel_stack.Stack(state)
    runs = {}
    try:
        facts = stack.start(services=["postgres"])
        env = dict(os.environ, KEEL_STACK_DIR=state)
        run([sys.executable, os.path.join(ROOT, "tools", "demo_data.py"), "--rows", str(args.rows)], env=env,
            what="demo_data.py")
        site = Site(facts, state, work)
        site.back_up()
        measure_rounds([("runbook (dropdb, createdb, pg_restore, tar -x)", timed(site, args.rows, site.runbook)),
                        ("keel restore.yml (pre-checked, swapped)", timed(site, args.rows, site.playbook))],
                       args.repeat, runs)
        dump = os.path.getsize(os.path.join(work, "shop.pgc"))
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
        if not args.state_dir:
            shutil.rmtree(state, ignore_errors=True)
    print("\n%-50s %9s %9s %10s" % ("restore after the disaster (%d orders, %.0f MB dump, 200 files)"
                                    % (args.rows, dump / 2.0 ** 20), "seconds", "RTO", "pre-check"))
    for key, result in runs.items():
        if "error" in result:
            print("%-50s FAILED: %s" % (key, result["error"]))
            continue
        print("%-50s %9.2f %9s %10s" % (key, result["seconds"], "%.2f" % result["rto_seconds"]
                                        if "rto_seconds" in result else "-",
                                        "%.2f" % result["precheck_seconds"] if "precheck_seconds" in result else "-"))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.platform(), "rows": args.rows,
                   "dump_bytes": dump, "repeat": args.repeat, "runs": runs}, handle, indent=2)
    print("\nwrote %s" % os.path.relpath(RESULTS, ROOT))


if __name__ == "__main__":
    main()
