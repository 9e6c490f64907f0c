"""`make demo`: the whole story on the embedded stack, in one command.

    1. a health check            playbooks/health_check.yml
    2. backups to S3             playbooks/backup.yml: PostgreSQL, Redis, the app's files with its SQLite state,
                                 each verified, and an offsite copy to a second repository
    3. a disaster                the database dropped, Redis flushed, the uploads deleted, the SQLite file corrupted
    4. the recovery              playbooks/restore.yml with its confirmation
    5. verification              what came back is compared with what was there
    6. a DR drill                playbooks/dr_drill.yml: RTO and RPO against the objectives, the HTML dashboard

Run by the Makefile after `tools/stack.py start` and `tools/demo_data.py` (the stack's facts come from
$KEEL_STACK_DIR or .stack); exits non-zero when a step fails.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import psycopg2
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
STATE = os.environ.get("KEEL_STACK_DIR") or os.path.join(ROOT, ".stack")
CONFIRM = "yes-destroy-current-data"


class DemoError(RuntimeError):
    """A step failed; its output is above."""


STARTED = time.monotonic()


def step(number, title):
    print("\n\033[1m[%d/6 at %.0f s] %s\033[0m" % (number, time.monotonic() - STARTED, title), flush=True)


def playbook(name, *extra):
    started = time.monotonic()
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/demo", "playbooks/%s.yml" % name] + list(extra)
    env = dict(os.environ, ANSIBLE_DISPLAY_SKIPPED_HOSTS="false")
    if subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode != 0:
        raise DemoError("playbooks/%s.yml failed" % name)
    return time.monotonic() - started


class Site:
    """What the demo's data looks like, read straight from the services and the files."""

    def __init__(self, facts):
        pg, cache = facts["postgres"], facts.get("redis")
        self.pg = dict(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"])
        self.admin_db = pg["database"]
        self.redis = redis.Redis(host=cache["host"], port=cache["port"], password=cache["password"]) if cache else None
        self.app = os.path.join(os.path.realpath(STATE), "app")

    def _orders(self):
        try:
            conn = psycopg2.connect(dbname="shop", **self.pg)
        except psycopg2.OperationalError:
            return 0, None
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), md5(string_agg(id::text || amount::text || note, ',' ORDER BY id)) FROM orders")
            found = cur.fetchone()
        conn.close()
        return found

    def _sqlite(self):
        try:
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.app, "state", "clo.db"), uri=True)
            try:
                if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    return "corrupt"
                return db.execute("SELECT count(*) FROM runs").fetchone()[0]
            finally:
                db.close()
        except sqlite3.DatabaseError:
            return "corrupt"

    def _uploads(self):
        folder = os.path.join(self.app, "uploads")
        if not os.path.isdir(folder):
            return 0, None
        digest = hashlib.sha256()
        names = sorted(os.listdir(folder))
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                digest.update(name.encode() + handle.read())
        return len(names), digest.hexdigest()

    def look(self):
        orders, orders_md5 = self._orders()
        uploads, uploads_sha = self._uploads()
        return {"orders": orders, "orders_md5": orders_md5, "redis_keys": self.redis.dbsize() if self.redis else 0,
                "uploads": uploads, "uploads_sha256": uploads_sha, "sqlite_runs": self._sqlite()}

    def disaster(self):
        conn = psycopg2.connect(dbname=self.admin_db, **self.pg)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE "shop" WITH (FORCE)')
        conn.close()
        if self.redis:
            self.redis.flushall()
        shutil.rmtree(os.path.join(self.app, "uploads"))
        with open(os.path.join(self.app, "state", "clo.db"), "r+b") as handle:
            handle.seek(100)
            handle.write(os.urandom(4096))  # the header survives, the pages behind it do not


def table(before, lost, after):
    rows = [("orders in PostgreSQL", "orders"), ("keys in Redis", "redis_keys"), ("uploaded files", "uploads"),
            ("runs in the SQLite state", "sqlite_runs")]
    print("  %-26s %10s %10s %10s" % ("", "before", "disaster", "restored"))
    for label, key in rows:
        print("  %-26s %10s %10s %10s" % (label, before[key], lost[key], after[key]))


def drill_summary():
    reports = sorted(p for p in os.listdir(os.path.join(STATE, "reports")) if p.startswith("drill-"))
    worst = {}
    for folder in reports:
        path = os.path.join(STATE, "reports", folder)
        latest = sorted(name for name in os.listdir(path) if name.startswith("dr-drill-") and name.endswith(".json"))
        with open(os.path.join(path, latest[-1])) as handle:
            drill = json.load(handle)
        for key in ("rto_seconds", "rpo_seconds"):
            worst[key] = max(worst.get(key) or 0, drill["measured"][key] or 0)
        worst["objectives"] = drill["objectives"]
        worst["met"] = worst.get("met", True) and all(drill["met"].values())
        worst.setdefault("dashboards", []).append(os.path.join(path, "dashboard.html"))
    return worst


def main():
    with open(os.path.join(STATE, "stack.json")) as handle:
        site = Site(json.load(handle))
    try:
        step(1, "Health check")
        playbook("health_check")
        step(2, "Back up PostgreSQL, Redis, the app's files and SQLite state to S3, and copy them offsite")
        playbook("backup")
        before = site.look()
        step(3, "Disaster: drop the database, flush Redis, delete the uploads, corrupt the SQLite state")
        site.disaster()
        lost = site.look()
        table(before, lost, dict((key, "?") for key in lost))
        step(4, "Recover with playbooks/restore.yml (confirmed)")
        seconds = playbook("restore", "-e", "disaster_recovery_confirm=%s" % CONFIRM)
        step(5, "Verify that what came back is what was there")
        after = site.look()
        table(before, lost, after)
        if after != before:
            raise DemoError("the recovered data differs from the data before the disaster: %s" % sorted(
                key for key in before if before[key] != after[key]))
        print("  identical: every order (md5 of all rows), every Redis key, every upload (sha256), the SQLite state")
        step(6, "DR drill: restore the newest backups into scratch targets, measure RTO and RPO")
        playbook("dr_drill")
    except DemoError as error:
        print("\n\033[31mdemo failed: %s\033[0m" % error)
        return 1
    drill = drill_summary()
    objectives = drill["objectives"]
    print("\n\033[1mSummary (%.0f s)\033[0m" % (time.monotonic() - STARTED))
    print("  lost: the shop database (%s orders), %s Redis keys, %s uploads, the SQLite state"
          % (before["orders"], before["redis_keys"], before["uploads"]))
    print("  back: all of it, identical, in %.0f s with playbooks/restore.yml" % seconds)
    print("  drill: RTO %.1f s (objective %.0f s), RPO %.0f s (objective %.0f s): %s"
          % (drill["rto_seconds"], objectives["rto_seconds"], drill["rpo_seconds"], objectives["rpo_seconds"],
             "both met" if drill["met"] else "MISSED"))
    print("  dashboards: %s" % ", ".join(drill["dashboards"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
