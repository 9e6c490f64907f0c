"""Benchmark: the weekly maintenance's PostgreSQL and log steps against what the runbook runs, side by side in one
run, on identical starting states.

Starts its own embedded stack (PostgreSQL, tools/stack.py), builds a bloated database once (orders with three
indexes; a third of the rows updated three times, autovacuum off so the dead tuples stay) and per round copies it
(CREATE DATABASE ... TEMPLATE, then ANALYZE so the statistics know its dead tuples; untimed), then:

  runbook    psql -c 'VACUUM ANALYZE' and psql -c 'REINDEX DATABASE' (what the runbook does; the reindex locks
             every table for its duration)
  safe tools vacuumdb --analyze and reindexdb --concurrently (every index, without the locks)
  keel       keel.ops.pg_maintenance: VACUUM (ANALYZE) of the tables with dead tuples, REINDEX INDEX CONCURRENTLY
             of the indexes whose estimated bloat passes 30%, the report

and reports the seconds, the dead tuples left and the index bytes after each. Logs: 20,000 files, half older than
seven days, removed by `find -mtime +7 -delete` and by keel.ops.log_cleanup. Figures go to stdout and
bench/results/maintenance.json.

    .venv/bin/python bench/maintenance.py [--rows 300000] [--repeat 3] [--files 20000]
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

from harness import BenchError, measure_rounds, module, run  # bench/, beside this script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "maintenance.json")
DAY = 86400

BLOAT_SQL = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric(12, 2), note text)
    WITH (autovacuum_enabled = false);
INSERT INTO orders SELECT g, g % 5000, (g % 1000) / 3.0, md5(g::text) FROM generate_series(1, {rows}) g;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_note ON orders (note);
UPDATE orders SET amount = amount + 1, note = md5(note) WHERE id % 3 = 0;
UPDATE orders SET amount = amount + 1, note = md5(note) WHERE id % 3 = 0;
UPDATE orders SET amount = amount + 1, customer_id = customer_id + 1 WHERE id % 3 = 0;
CREATE TABLE customers (id int PRIMARY KEY, name text) WITH (autovacuum_enabled = false);
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 5000) g;
"""


class Database:
    def __init__(self, pg):
        self.pg = pg
        self.env = dict(os.environ, PGHOST=pg["host"], PGPORT=str(pg["port"]), PGUSER=pg["user"],
                        PGPASSWORD=pg["password"], PGDATABASE=pg["database"])

    def tool(self, name, *argv):
        return run([os.path.join(self.pg["bin_dir"], name)] + list(argv), env=self.env, what=name)

    def sql(self, database, statement):
        return self.tool("psql", "-v", "ON_ERROR_STOP=1", "-d", database, "-Atc", statement).stdout.strip()

    def build(self, rows):
        self.sql("postgres", "DROP DATABASE IF EXISTS bloat_src")
        self.sql("postgres", "CREATE DATABASE bloat_src")
        self.tool("psql", "-v", "ON_ERROR_STOP=1", "-q", "-d", "bloat_src", "-c", BLOAT_SQL.format(rows=rows))

    def fresh_copy(self):
        self.sql("postgres", "DROP DATABASE IF EXISTS bloat_round WITH (FORCE)")
        self.sql("postgres", "CREATE DATABASE bloat_round TEMPLATE bloat_src")
        self.sql("bloat_round", "ANALYZE")  # a new database has no statistics; ANALYZE counts the dead tuples again

    def state(self):
        dead = self.sql("bloat_round", "SELECT sum(n_dead_tup) FROM pg_stat_user_tables")
        index_bytes = self.sql("bloat_round", "SELECT sum(pg_relation_size(indexrelid)) FROM pg_index i "
                                              "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname IN ('orders', 'customers')")
        return {"dead_tuples_after": int(dead or 0), "index_bytes_after": int(index_bytes)}


def timed_pg(db, action):
    def measure():
        db.fresh_copy()
        before = db.state()["index_bytes_after"]
        started = time.monotonic()
        action()
        seconds = time.monotonic() - started
        return dict(db.state(), seconds=seconds, index_bytes_before=before)
    return measure


def make_logs(root, files):
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    old = time.time() - 30 * DAY
    for index in range(files):
        folder = os.path.join(root, "app%02d" % (index % 20))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "app.log.%d" % index)
        with open(path, "w") as handle:
            handle.write("x" * 512)
        if index % 2:
            os.utime(path, (old, old))


def timed_logs(root, files, action):
    def measure():
        make_logs(root, files)
        started = time.monotonic()
        action()
        seconds = time.monotonic() - started
        left = sum(len(names) for _dir, _dirs, names in os.walk(root))
        if left != files - files // 2:
            raise BenchError("%d log files left, not %d" % (left, files - files // 2))
        return {"seconds": seconds}
    return measure


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300000, help="rows of the bloated orders table")
    parser.add_argument("--repeat", type=int, default=3, help="N rounds of every timed step; the fastest is kept")
    parser.add_argument("--files", type=int, default=20000, help="log files, half of them old")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import keel_stack  # pylint: disable=import-outside-toplevel

    state = tempfile.mkdtemp(prefix="keel-bench-maint-", dir="/tmp")
    os.chmod(state, 0o711)  # PostgreSQL runs as an unprivileged user and must traverse it
    logs = tempfile.mkdtemp(prefix="keel-bench-logs-", dir="/tmp")
    stack = keel_stack.Stack(state)
    pg_runs, log_runs = {}, {}
    try:
        pg = stack.start(services=["postgres"])["postgres"]
        db = Database(pg)
        db.build(args.rows)
        login = dict(login_host=pg["host"], login_port=pg["port"], login_user=pg["user"], login_password=pg["password"])
        measure_rounds([
            ("runbook: VACUUM ANALYZE; REINDEX DATABASE", timed_pg(db, lambda: (
                db.sql("bloat_round", "VACUUM ANALYZE"), db.sql("bloat_round", "REINDEX DATABASE bloat_round")))),
            ("vacuumdb --analyze; reindexdb --concurrently", timed_pg(db, lambda: (
                db.tool("vacuumdb", "--analyze", "-d", "bloat_round"),
                db.tool("reindexdb", "--concurrently", "-d", "bloat_round")))),
            ("keel pg_maintenance", timed_pg(db, lambda: module("pg_maintenance", dict(login, database="bloat_round")))),
        ], args.repeat, pg_runs)
        measure_rounds([
            ("find -mtime +7 -delete", timed_logs(logs, args.files, lambda: run(
                ["find", logs, "-type", "f", "-name", "*.log.*", "-mtime", "+7", "-delete"]))),
            ("keel log_cleanup", timed_logs(logs, args.files, lambda: module(
                "log_cleanup", {"paths": [logs], "older_than_days": 7, "list_limit": 0}))),
        ], args.repeat, log_runs)
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    print("\n%-48s %9s %12s %14s" % ("weekly PostgreSQL maintenance (%d rows)" % args.rows, "seconds", "dead left",
                                     "index MiB"))
    for key, result in pg_runs.items():
        if "error" in result:
            print("%-48s FAILED: %s" % (key, result["error"]))
            continue
        cells = (key, result["seconds"], result["dead_tuples_after"], result["index_bytes_before"] / 2.0 ** 20,
                 result["index_bytes_after"] / 2.0 ** 20)
        print("%-48s %9.2f %12d %6.1f -> %5.1f" % cells)
    print("\n%-48s %9s" % ("old logs removed (%d of %d files)" % (args.files // 2, args.files), "seconds"))
    for key, result in log_runs.items():
        print("%-48s %9s" % (key, "FAILED: %s" % result["error"] if "error" in result else "%.2f" % result["seconds"]))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.platform(), "rows": args.rows,
                   "files": args.files, "repeat": args.repeat, "postgres": pg_runs, "logs": log_runs}, handle, indent=2)
    print("\nwrote %s" % os.path.relpath(RESULTS, ROOT))


if __name__ == "__main__":
    main()
