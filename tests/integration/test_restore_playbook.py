"""playbooks/restore.yml with the disaster_recovery role on one local host: backups of a PostgreSQL database, a
Redis server of the test's own, a configuration file set and a data file set with a SQLite database; a disaster
(database dropped, Redis flushed, data directory deleted, SQLite corrupted, configuration changed); a run without
the confirmation that changes nothing; then the recovery, whose data must be identical and whose report must say
where each part came from, what proves it, and the RTO."""

import json
import os
import shutil
import sqlite3
import time
import uuid

import pytest
import redis
from ansible_run import local_inventory, run_module, run_playbook
from pg_fixtures import conn_args, connect, create_database, database_exists, fingerprints
from redis_fixtures import dataset, fill

PLAYBOOK = "playbooks/restore.yml"


def _tree(root):
    """Every entry below root: relative path -> (mode, content or link target). A SQLite file is compared by its
    rows (_sqlite_rows): the online backup API copies pages, not the header's change counter."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if os.path.islink(path):
                found[os.path.relpath(path, root)] = (info.st_mode, os.readlink(path))
            elif os.path.isdir(path):
                found[os.path.relpath(path, root)] = (info.st_mode, None)
            elif name.endswith(".db"):
                found[os.path.relpath(path, root)] = (info.st_mode, "sqlite")
            else:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = (info.st_mode, handle.read())
    return found


def _sqlite_rows(path):
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT k, v FROM state ORDER BY k").fetchall()
    finally:
        db.close()


def _without_ttls(found):
    """Every key's type and value, and whether it expires: the TTL itself counts down while the test runs (a key
    restored with its remaining TTL), so the minutes left are not the test's to compare."""
    return dict((db, dict((key, (kind, value, ttl is not None)) for key, (kind, value, ttl) in keys.items()))
                for db, keys in found.items())


class Site:
    """What one test recovers: a database, a Redis, configuration and data directories, and their backups."""

    def __init__(self, tmp_path, postgres, private_redis):
        self.tmp_path, self.pg, self.redis = tmp_path, postgres, private_redis
        self.repo = str(tmp_path / "repo")
        self.database = "dr_%s" % uuid.uuid4().hex[:8]
        self.config_dir = tmp_path / "etc-app"
        self.data_dir = tmp_path / "srv-app"
        self.events = tmp_path / "services.log"

    def client(self, db=0):
        return redis.Redis(host=self.redis["host"], port=self.redis["port"], password=self.redis["password"], db=db)

    def build(self):
        create_database(self.pg, self.database, customers=50, orders=300)
        fill(self.client, databases=(0, 3))
        self.config_dir.mkdir()
        (self.config_dir / "app.yml").write_text("workers: 4\n")
        os.chmod(self.config_dir / "app.yml", 0o640)
        self.data_dir.mkdir()
        (self.data_dir / "uploads").mkdir()
        (self.data_dir / "uploads" / "a.txt").write_text("first upload\n")
        os.symlink("uploads/a.txt", self.data_dir / "latest")
        db = sqlite3.connect(str(self.data_dir / "clo.db"))
        db.execute("CREATE TABLE state (k TEXT PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO state VALUES (?, ?)", [("phase", "green"), ("run", "42")])
        db.commit()
        db.close()

    def snapshot(self):
        return {"postgres": fingerprints(self.pg, self.database), "redis": _without_ttls(dataset(self.client, (0, 3))),
                "config": _tree(self.config_dir), "data": _tree(self.data_dir),
                "sqlite": _sqlite_rows(str(self.data_dir / "clo.db"))}

    def back_up(self):
        ids = {}
        taken = run_module("pg_backup", dict(conn_args(self.pg), repository=self.repo, database=self.database))
        assert taken.returncode == 0, taken.get("msg")
        ids["postgres"] = taken["backup_id"]
        taken = run_module("redis_snapshot", dict(login_host=self.redis["host"], login_port=self.redis["port"],
                                                  login_password=self.redis["password"], repository=self.repo,
                                                  source="cache", redis_server_bin=self.redis["server_bin"]))
        assert taken.returncode == 0, taken.get("msg")
        ids["redis"] = taken["backup_id"]
        for name, path in (("app-config", self.config_dir), ("app-data", self.data_dir)):
            taken = run_module("file_backup", dict(repository=self.repo, source=name, paths=[str(path)]))
            assert taken.returncode == 0, taken.get("msg")
            ids[name] = taken["backup_id"]
        return ids

    def disaster(self):
        admin = connect(self.pg)
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE "%s" WITH (FORCE)' % self.database)
        admin.close()
        self.client().flushall()
        (self.config_dir / "app.yml").write_text("workers: 0  # a bad edit\n")
        shutil.copy(str(self.data_dir / "clo.db"), str(self.tmp_path / "clo.db.saved"))
        shutil.rmtree(str(self.data_dir))

    def role_vars(self, **extra):
        log = str(self.events)
        values = dict(
            disaster_recovery_hosts="all", disaster_recovery_repository=self.repo,
            disaster_recovery_postgres_databases=[self.database],
            disaster_recovery_postgres_login_host=self.pg["host"], disaster_recovery_postgres_login_port=self.pg["port"],
            disaster_recovery_postgres_login_user=self.pg["user"],
            disaster_recovery_postgres_login_password=self.pg["password"],
            disaster_recovery_postgres_bin_dir=self.pg["bin_dir"],
            disaster_recovery_redis_enabled=True, disaster_recovery_redis_source="cache",
            disaster_recovery_redis_login_host=self.redis["host"], disaster_recovery_redis_login_port=self.redis["port"],
            disaster_recovery_redis_login_password=self.redis["password"],
            disaster_recovery_redis_server_bin=self.redis["server_bin"],
            disaster_recovery_file_sets=[{"name": "app-config", "configuration": True}, {"name": "app-data"}],
            disaster_recovery_services_method="command",
            disaster_recovery_stop_command=["sh", "-c", "echo stop >> %s" % log],
            disaster_recovery_start_command=["sh", "-c", "echo start >> %s" % log],
            disaster_recovery_health_checks=[
                {"name": "database", "kind": "postgres", "host": self.pg["host"], "port": self.pg["port"],
                 "user": self.pg["user"], "password": self.pg["password"], "database": self.database},
                {"name": "cache", "kind": "redis", "host": self.redis["host"], "port": self.redis["port"],
                 "password": self.redis["password"]}],
            disaster_recovery_report_dir=str(self.tmp_path))
        values.update(extra)
        return values


@pytest.fixture
def site(tmp_path, postgres, private_redis):
    made = Site(tmp_path, postgres, private_redis)
    made.build()
    yield made
    admin = connect(postgres)
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % made.database)
    admin.close()


def test_a_full_recovery_brings_back_identical_data_and_reports_it(site, tmp_path):
    before = site.snapshot()
    ids = site.back_up()
    site.disaster()
    inventory = local_inventory(tmp_path)

    refused = run_playbook(PLAYBOOK, inventory, site.role_vars())
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert "Not confirmed, so nothing was changed" in refused.stdout, refused.stdout[-3000:]
    assert "restore %s from %s (database)" % (site.database, ids["postgres"]) in refused.stdout
    assert not database_exists(site.pg, site.database) and not site.data_dir.exists()
    assert site.client().dbsize() == 0 and not site.events.exists()
    assert not list(tmp_path.glob("recovery-*.json"))

    started = time.time()
    recovered = run_playbook(PLAYBOOK, inventory, site.role_vars(disaster_recovery_confirm="yes-destroy-current-data"))
    assert recovered.returncode == 0, recovered.stdout[-5000:]
    after = site.snapshot()
    for part in before:
        assert after[part] == before[part], part
    assert site.events.read_text().split() == ["stop", "start"]

    [path] = tmp_path.glob("recovery-db1-*.json")
    report = json.loads(path.read_text())
    assert report["status"] == "recovered" and report["failures"] == []
    assert 0 < report["rto_seconds"] <= time.time() - started
    assert [(p["phase"], p["name"], p["backup_id"], p["status"]) for p in report["parts"]] == [
        ("configuration", "app-config", ids["app-config"], "restored"),
        ("database", site.database, ids["postgres"], "restored"),
        ("redis", "cache", ids["redis"], "restored"),
        ("files", "app-data", ids["app-data"], "restored")]
    by_name = dict((p["name"], p) for p in report["parts"])
    assert by_name[site.database]["checks"]["row counts"].endswith("rows match")
    assert by_name["app-data"]["checks"]["integrity_check"] == "1 SQLite files ok"
    assert all(p["checks"]["checksums"] for p in report["parts"])
    assert report["health"]["healthy"] is True
    assert [p["status"] for p in report["prechecks"]] == ["ready"] * 4
    markdown = path.with_suffix(".md").read_text()
    assert markdown.startswith("# Recovery of db1: RECOVERED") and ids["postgres"] in markdown


def _flip_a_byte(folder):
    artifact = max((p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"),
                   key=lambda p: p.stat().st_size)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    return artifact


def test_a_corrupt_backup_fails_the_pre_check_and_nothing_is_touched(site, tmp_path):
    site.back_up()
    with connect(site.pg, site.database) as conn, conn.cursor() as cur:
        cur.execute("UPDATE sales.customers SET name = 'changed since the backup'")
    live = fingerprints(site.pg, site.database)
    _flip_a_byte(tmp_path / "repo" / "postgres")
    run = run_playbook(PLAYBOOK, local_inventory(tmp_path), site.role_vars(disaster_recovery_confirm="yes-destroy-current-data"))
    assert run.returncode != 0
    assert "failed their pre-check, so nothing was changed: database %s: " % site.database in run.stdout, \
        run.stdout[-3000:]
    assert "sha256" in run.stdout or "checksum" in run.stdout
    assert fingerprints(site.pg, site.database) == live and not site.events.exists()
    assert not list(tmp_path.glob("recovery-*.json"))


def test_point_in_time_picks_the_newest_backup_before_it_per_source(site, tmp_path):
    first = site.back_up()
    time.sleep(1.1)  # backup ids and times have whole seconds
    between = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)
    (site.data_dir / "uploads" / "a.txt").write_text("a later upload\n")
    second = run_module("file_backup", dict(repository=site.repo, source="app-data", paths=[str(site.data_dir)]))
    assert second.returncode == 0 and second["backup_id"] != first["app-data"]
    run = run_playbook(PLAYBOOK, local_inventory(tmp_path), site.role_vars(
        disaster_recovery_mode="files", disaster_recovery_before=between, disaster_recovery_services_method="none",
        disaster_recovery_health_checks=[], disaster_recovery_confirm="yes-destroy-current-data"))
    assert run.returncode == 0, run.stdout[-4000:]
    assert (site.data_dir / "uploads" / "a.txt").read_text() == "first upload\n"
    [path] = tmp_path.glob("recovery-db1-*.json")
    [part] = json.loads(path.read_text())["parts"]
    assert (part["name"], part["backup_id"]) == ("app-data", first["app-data"])
    assert part["selection"] == "the newest at or before %s" % between
