"""Physical backups, WAL archiving and point-in-time recovery against a real PostgreSQL of the test's own.

One server (module scope) archives its WAL through keel-wal into an encrypted local repository; the tests take
base backups under write load, restore them to points in time into fresh data directories, start each restored
server and count its rows. Tests that damage the archive work on a copy of the repository.
"""

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from pyrage import x25519

import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
from ansible_run import run_module
from conftest import unavailable
from pg_fixtures import conn_args

SYSTEM_PYTHON = "/usr/bin/python3"  # the server's unprivileged user cannot run an interpreter under /root


class Archiving:
    """A private server, its WAL archived into `repo` through keel-wal, and the options the modules need."""

    def __init__(self, root):
        self.root = root
        self.stack = stack_tool.Stack(root / "stack")
        self.facts = self.stack.start_service("postgres")["postgres"]
        self.user = pwd.getpwuid(os.stat(root / "stack" / "postgres").st_uid) if os.geteuid() == 0 else None
        self.repo = self.private_dir("repo")
        identity = x25519.Identity.generate()
        self.recipient = str(identity.to_public())
        self.identity_file = str(root / "backup.agekey")
        Path(self.identity_file).write_text("%s\n" % identity)
        os.chmod(self.identity_file, 0o600)
        self.archive_args = dict(conn_args(self.facts), repository=self.repo, source="db",
                                 command_directory=str(root / "cmd"), config_file=str(root / "etc" / "wal.json"),
                                 python=SYSTEM_PYTHON, encryption_recipients=[self.recipient])

    def private_dir(self, name):
        path = self.root / name
        path.mkdir(mode=0o700)
        if self.user:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return str(path)

    def enable(self, **extra):
        result = run_module("pg_wal_archive", dict(self.archive_args, **extra))
        assert "failed" not in result, result.get("msg")
        if result["restart_required"]:
            self.stack.stop_service("postgres")
            self.facts = self.stack.start_service("postgres")["postgres"]
            result = run_module("pg_wal_archive", dict(self.archive_args, **extra))
        assert (result.get("verified") or {}).get("archived"), (result, self.log()[-3000:])
        return result

    def log(self):
        return (self.root / "stack" / "logs" / "postgres.log").read_text(errors="replace")

    def args(self, **extra):
        args = dict(conn_args(self.facts), repository=self.repo, source="db", python=SYSTEM_PYTHON,
                    encryption_recipients=[self.recipient], decryption_identity_file=self.identity_file,
                    owner=self.user.pw_name if self.user else None)
        args.update(extra)
        return args

    def connect(self, port=None, database="keel"):
        conn = psycopg2.connect(host=self.facts["host"], port=port or self.facts["port"], user=self.facts["user"],
                                password=self.facts["password"], dbname=database)
        conn.autocommit = True
        return conn

    def sql(self, statement, params=None):
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def switch_wal(self):
        """Close the current segment and wait until it is archived, so a restore can replay it."""
        self.sql("SELECT pg_logical_emit_message(false, 'keel-test', 'switch')")  # an idle server does not switch
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            archived = self.sql("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
            if archived and archived >= segment:
                return segment
            time.sleep(0.1)
        raise AssertionError("segment %s was not archived: %s" % (segment, [
            line for line in self.log().splitlines() if "archive" in line or "keel-wal" in line][-6:]))


@pytest.fixture(scope="module")
def archiving():
    root = Path(tempfile.mkdtemp(prefix="keel-pitr-"))
    os.chmod(root, 0o755)
    try:
        server = Archiving(root)
    except stack_tool.StackError as err:
        unavailable("postgres: %s" % err)
    try:
        server.enable()
        server.sql("CREATE TABLE IF NOT EXISTS ledger (id bigint PRIMARY KEY, note text)")
        yield server
    finally:
        server.stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def workspace(archiving, request):
    """A directory of the test's own that the server's user can reach (pytest's tmp_path is 0700 under root)."""
    path = archiving.root / request.node.name[:60]
    path.mkdir(mode=0o755)
    return path


@contextlib.contextmanager
def started(server, data_directory):
    """Start PostgreSQL on a restored data directory (as the server's user, on a free port) for the test to read."""
    port = stack_tool.free_port()
    log = os.path.join(data_directory, "test.log")
    argv = [os.path.join(server.facts["bin_dir"], "pg_ctl"), "-D", data_directory, "-l", log, "-w", "-t", "60", "-o",
            "-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c archive_mode=off" % port]
    user = {"user": server.user.pw_uid, "group": server.user.pw_gid, "extra_groups": []} if server.user else {}
    started_ = subprocess.run(argv + ["start"], check=False, capture_output=True, **user)
    if started_.returncode != 0:
        raise AssertionError("the restored server does not start: %s" % Path(log).read_text(errors="replace")[-2000:])
    try:
        yield port
    finally:
        subprocess.run(argv[:3] + ["-m", "fast", "stop"], check=False, capture_output=True, **user)


def ids_in(server, data_directory):
    with started(server, data_directory) as port:
        with contextlib.closing(server.connect(port)) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT id FROM ledger ORDER BY id")
            return [row[0] for row in cursor.fetchall()]


class Writer(threading.Thread):
    """Commits one ledger row after another until stopped: write load during a base backup."""

    def __init__(self, server, first):
        threading.Thread.__init__(self, daemon=True)
        self.server, self.next_id, self.stop = server, first, threading.Event()

    def run(self):
        with contextlib.closing(self.server.connect()) as conn, conn.cursor() as cursor:
            while not self.stop.is_set():
                cursor.execute("INSERT INTO ledger VALUES (%s, 'load')", (self.next_id,))
                self.next_id += 1


def mark(server):
    """A moment between two commits: the last id committed before it, and the server's time then."""
    time.sleep(0.05)
    moment = server.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    time.sleep(0.05)
    return moment[0][0]


def test_a_base_backup_under_write_load_restores_to_three_points_with_exactly_the_rows_committed_before_each(
        archiving, workspace):
    writer = Writer(archiving, 1)
    writer.start()
    try:
        checked = run_module("pg_physical_backup", archiving.args(), check_mode=True)
        assert checked["changed"] and checked["backup_id"] is None, checked
        backup = run_module("pg_physical_backup", archiving.args())
    finally:
        writer.stop.set()
        writer.join()
    assert "failed" not in backup, backup.get("msg")
    assert backup["artifacts"][0]["name"] == "base.tar.zst.age"
    during = writer.next_id - 1
    assert during > 0
    points = []
    next_id = during + 1
    for _point in range(3):
        for _row in range(5):
            archiving.sql("INSERT INTO ledger VALUES (%s, 'after')", (next_id,))
            next_id += 1
        points.append((next_id - 1, mark(archiving)))
    archiving.sql("INSERT INTO ledger VALUES (%s, 'after the last point')", (next_id,))
    archiving.switch_wal()

    for index, (last_id, moment) in enumerate(points):
        target = str(workspace / ("restored%d" % index))
        os.mkdir(target, 0o700)
        if archiving.user:
            os.chown(target, archiving.user.pw_uid, archiving.user.pw_gid)
        result = run_module("pg_physical_backup", archiving.args(state="restored", data_directory=target,
                                                                 target="time", target_time=moment, archive=False))
        assert "failed" not in result, result.get("msg")
        assert result["backup_id"] == backup["backup_id"]
        assert result["replay"]["stopped"].startswith("recovery stopping before commit"), result["replay"]
        assert result["previous_data_directory"] is None
        assert oct(os.stat(target).st_mode & 0o777) == "0o700"
        assert ids_in(archiving, target) == list(range(1, last_id + 1)), (index, moment)

    info = run_module("pg_physical_backup_info", dict(repository=archiving.repo, source="db"))
    assert info["healthy"] and not info["changed"], info
    assert info["backups"][0]["wal"]["missing"] == []


def test_a_missing_segment_is_reported_and_a_restore_past_the_gap_fails_naming_it(archiving, workspace):
    run_module("pg_physical_backup", archiving.args())
    archiving.sql("INSERT INTO ledger VALUES (-1, 'in the segment that goes missing')")
    gone = archiving.switch_wal()
    archiving.sql("INSERT INTO ledger VALUES (-2, 'after the gap')")
    archiving.switch_wal()
    copy = workspace / "repo"
    shutil.copytree(archiving.repo, copy)
    if archiving.user:
        for folder, _dirs, files in os.walk(copy):
            for name in [folder] + [os.path.join(folder, f) for f in files]:
                os.chown(name, archiving.user.pw_uid, archiving.user.pw_gid)
    removed = list(copy.rglob(gone + "-*"))
    assert len(removed) == 1
    removed[0].unlink()

    info = run_module("pg_physical_backup_info", dict(repository=str(copy), source="db"))
    assert gone in info["gaps"] and not info["healthy"], info
    assert gone in json.dumps(info.get("warnings")), info.get("warnings")

    target = str(workspace / "restored")
    latest = run_module("pg_physical_backup", archiving.args(repository=str(copy), state="restored",
                                                             data_directory=target, archive=False))
    assert latest["failed"] and gone in latest["msg"] and "missing from the archive" in latest["msg"], latest
    assert not os.path.exists(target)
    later = archiving.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    past = run_module("pg_physical_backup", archiving.args(repository=str(copy), state="restored", data_directory=target,
                                                           target="time", target_time=later[0][0], archive=False))
    assert past["failed"] and "recovery ended before configured recovery target was reached" in past["msg"], past
    assert gone in past["msg"]
    assert not os.path.exists(target) and not list(workspace.glob(".keel-restore-*"))


def test_a_wrong_key_or_a_flipped_byte_is_refused_before_the_data_directory_is_touched(archiving, workspace):
    backup = run_module("pg_physical_backup", archiving.args())
    target = workspace / "data"
    target.mkdir()
    (target / "precious").write_text("the old cluster")
    other = workspace / "other.agekey"
    other.write_text("%s\n" % x25519.Identity.generate())
    wrong = run_module("pg_physical_backup", archiving.args(state="restored", data_directory=str(target), replace=True,
                                                            decryption_identity_file=str(other)))
    assert wrong["failed"] and "none of the decryption keys" in wrong["msg"], wrong

    copy = workspace / "repo"
    shutil.copytree(archiving.repo, copy)
    artifact = copy / "pgbase" / "db" / backup["backup_id"] / "base.tar.zst.age"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    flipped = run_module("pg_physical_backup", archiving.args(repository=str(copy), state="restored",
                                                              data_directory=str(target), replace=True))
    assert flipped["failed"] and "corrupt" in flipped["msg"], flipped
    assert os.listdir(target) == ["precious"] and (target / "precious").read_text() == "the old cluster"
    assert not list(workspace.glob(".keel-restore-*")) and not list(workspace.glob("data.keel-previous-*"))


def test_kill_9_in_a_wal_push_or_a_base_backup_leaves_nothing_listed_and_the_retry_succeeds(archiving, tmp_path):
    config = json.loads(Path(archiving.archive_args["config_file"]).read_text())
    config["repository"] = str(tmp_path / "repo")
    (tmp_path / "wal.json").write_text(json.dumps(config))
    name = "0000000100000000000000F0"
    segment = tmp_path / name
    segment.write_bytes(os.urandom(16 * 1024 * 1024))
    launcher = os.path.join(archiving.archive_args["command_directory"], "keel-wal")
    argv = [SYSTEM_PYTHON, launcher, "push", "--config", str(tmp_path / "wal.json"), str(segment), name]
    child = subprocess.Popen(argv)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(tmp_path.glob("repo/pgwal/db/*/.%s*" % name)):
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    archive_dir = tmp_path / "repo" / "pgwal" / "db" / name[:16]
    assert [p.name for p in archive_dir.iterdir() if not p.name.startswith(".")] == []
    assert subprocess.run(argv, check=False).returncode == 0  # what PostgreSQL's retry does
    assert len([p for p in archive_dir.iterdir() if not p.name.startswith(".")]) == 1

    archiving.sql("CREATE TABLE IF NOT EXISTS ballast AS SELECT g, md5(g::text) FROM generate_series(1, 400000) g")
    module = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "plugins", "modules", "pg_physical_backup.py")
    payload = tmp_path / "args.json"
    payload.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": archiving.args()}))
    before = run_module("pg_physical_backup_info", dict(repository=archiving.repo, source="db"))["count"]
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(module), "..", "..", ".build"))
    child = subprocess.Popen([sys.executable, module, str(payload)], env=env, stdout=subprocess.DEVNULL)
    folder = Path(archiving.repo) / "pgbase" / "db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [p for p in folder.glob("*/.base.tar*") if p.stat().st_size > 0]:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert run_module("pg_physical_backup_info", dict(repository=archiving.repo, source="db"))["count"] == before
    again = run_module("pg_physical_backup", archiving.args())
    assert "failed" not in again and again["cleaned_up"], again


def test_retention_never_removes_wal_a_kept_backup_needs(archiving, workspace):
    for _backup in range(3):
        archiving.sql("INSERT INTO ledger SELECT coalesce(max(id), 0) + 1, 'retention' FROM ledger")
        archiving.switch_wal()
        assert "failed" not in run_module("pg_physical_backup", archiving.args())
    copy = workspace / "repo"
    shutil.copytree(archiving.repo, copy)
    listed = run_module("pg_physical_backup_info", dict(repository=str(copy), source="db"))["backups"]
    check = run_module("pg_physical_backup", dict(archiving.args(repository=str(copy), state="absent", keep_last=2)),
                       check_mode=True)
    assert check["changed"] and check["wal"]["expired"], check
    pruned = run_module("pg_physical_backup", archiving.args(repository=str(copy), state="absent", keep_last=2))
    assert pruned["changed"] and pruned["wal"]["kept_from"] == listed[1]["start_wal"], pruned
    assert all(name < listed[1]["start_wal"] for name in pruned["wal"]["expired"])
    after = run_module("pg_physical_backup_info", dict(repository=str(copy), source="db"))
    assert [b["backup_id"] for b in after["backups"]] == [b["backup_id"] for b in listed[:2]]
    assert after["healthy"] and all(not b["wal"]["missing"] for b in after["backups"]), after
    rerun = run_module("pg_physical_backup", archiving.args(repository=str(copy), state="absent", keep_last=2))
    assert not rerun["changed"], rerun


def test_verified_replays_checks_files_and_indexes_and_records_it(archiving):
    result = run_module("pg_physical_backup", archiving.args(state="verified"))
    assert "failed" not in result, result.get("msg")
    assert result["files_verified"]["checked"] and result["checks"]["indexes_checked"] > 0
    assert result["replay"]["stopped"] == "recovery stopping after reaching consistency"
    listed = run_module("pg_physical_backup_info", dict(repository=archiving.repo, source="db"))["backups"]
    assert listed[0]["last_verified"] and listed[0]["backup_id"] == result["backup_id"]


def test_archiving_into_s3_keeps_the_secret_off_the_command_line_and_out_of_the_server_log(archiving, s3):
    from pg_fixtures import s3_args

    secret = s3["secret_key"]
    bucket = "s3://%s/wal-secret-test" % s3["bucket"]
    s3_config = str(archiving.root / "etc" / "s3-wal.json")
    try:
        result = run_module("pg_wal_archive", dict(archiving.archive_args, repository=bucket, config_file=s3_config,
                                                   **s3_args(s3)))
        assert "failed" not in result and result["verified"]["archived"], result.get("msg")
        assert secret not in json.dumps(result) and secret not in result.stdout + result.stderr
        command = archiving.sql("SHOW archive_command")[0][0]
        assert secret not in command and s3_config in command
        status = os.stat(s3_config)
        assert status.st_mode & 0o777 == 0o600
        if archiving.user:
            assert status.st_uid == archiving.user.pw_uid
        assert secret not in archiving.log()
        with open("/proc/%d/cmdline" % archiving.facts["pid"], "rb") as handle:
            assert secret.encode() not in handle.read()
    finally:
        archiving.enable()


def test_the_restore_playbook_brings_the_cluster_back_to_the_moment_before_an_incident(archiving, workspace):
    from ansible_run import local_inventory, run_playbook

    assert "failed" not in run_module("pg_physical_backup", archiving.args())
    first = archiving.sql("SELECT coalesce(max(id), 0) + 1 FROM ledger")[0][0]
    archiving.sql("INSERT INTO ledger VALUES (%s, 'before the incident')", (first,))
    kept = [row[0] for row in archiving.sql("SELECT id FROM ledger ORDER BY id")]
    moment = mark(archiving)
    archiving.sql("DELETE FROM ledger")  # the incident
    archiving.switch_wal()
    data = workspace / "cluster"
    data.mkdir(mode=0o700)
    (data / "PG_VERSION").write_text("the damaged cluster\n")
    if archiving.user:
        os.chown(data, archiving.user.pw_uid, archiving.user.pw_gid)
    events = workspace / "events"
    role_vars = dict(
        disaster_recovery_hosts="all", disaster_recovery_repository=archiving.repo,
        disaster_recovery_postgres_cluster={"data_directory": str(data), "source": "db", "python": SYSTEM_PYTHON,
                                            "owner": archiving.user.pw_name if archiving.user else ""},
        disaster_recovery_postgres_login_user=archiving.facts["user"],
        disaster_recovery_postgres_bin_dir=archiving.facts["bin_dir"],
        disaster_recovery_decryption_identity_file=archiving.identity_file,
        disaster_recovery_before=moment, disaster_recovery_services_method="command",
        disaster_recovery_stop_command=["sh", "-c", "echo stop >> %s" % events],
        disaster_recovery_start_command=["sh", "-c", "echo start >> %s" % events],
        disaster_recovery_report_dir=str(workspace / "reports"))  # the role makes it 0750
    inventory = local_inventory(workspace)
    plan = run_playbook("playbooks/restore.yml", inventory, role_vars)
    assert plan.returncode != 0 and "nothing was changed" in plan.stdout, plan.stdout[-3000:]
    assert (data / "PG_VERSION").read_text() == "the damaged cluster\n"
    done = run_playbook("playbooks/restore.yml", inventory,
                        dict(role_vars, disaster_recovery_confirm="yes-destroy-current-data"))
    assert done.returncode == 0, done.stdout[-4000:]
    report = json.loads(next(workspace.glob("reports/recovery-*.json")).read_text())
    part = report["parts"][0]
    assert part["kind"] == "pgphysical" and part["status"] == "restored", part
    assert part["checks"]["replay"].startswith("recovery stopping before"), part
    assert events.read_text().split() == ["stop", "start"]
    assert list(workspace.glob("cluster.keel-previous-*"))
    assert ids_in(archiving, str(data)) == kept


def test_a_dr_drill_restores_the_cluster_and_measures_rpo_from_the_newest_archived_wal(archiving, workspace):
    from ansible_run import local_inventory, run_playbook

    backup = run_module("pg_physical_backup", archiving.args())
    assert "failed" not in backup, backup.get("msg")
    time.sleep(2)
    archiving.sql("INSERT INTO ledger SELECT coalesce(max(id), 0) + 1, 'after the backup' FROM ledger")
    archiving.switch_wal()
    drills = workspace / "drills"
    drills.mkdir()
    drill_vars = dict(dr_drill_hosts="all", dr_drill_repository=archiving.repo, dr_drill_postgres_clusters=["db"],
                      dr_drill_postgres_login_user=archiving.facts["user"],
                      dr_drill_postgres_bin_dir=archiving.facts["bin_dir"],
                      dr_drill_postgres_owner=archiving.user.pw_name if archiving.user else "",
                      dr_drill_postgres_python=SYSTEM_PYTHON, dr_drill_decryption_identity_file=archiving.identity_file,
                      dr_drill_scratch_dir=str(workspace / "scratch"), dr_drill_report_dir=str(drills),
                      dr_drill_prometheus_textfile=str(workspace / "keel_dr_drill.prom"))
    run = run_playbook("playbooks/dr_drill.yml", local_inventory(workspace), drill_vars)
    assert run.returncode == 0, run.stdout[-5000:]
    [path] = drills.glob("dr-drill-*.json")
    source, = json.loads(path.read_text())["sources"]
    assert (source["kind"], source["backup_id"], source["result"]) == ("pgbase", backup["backup_id"], "passed")
    assert source["checks"]["files"] == "match the backup manifest" and source["checks"]["amcheck"].endswith("indexes")
    assert source["restore_seconds"] > 0
    backup_age = time.time() - time.mktime(time.strptime(backup["backup_id"][:15], "%Y%m%dT%H%M%S")) + time.timezone
    assert source["age_seconds"] < backup_age - 1, (source, backup_age)  # the WAL reaches past the backup


def test_every_tablespace_is_backed_up_verified_and_restored_where_the_mapping_says(archiving, workspace):
    location = workspace / "ts"
    location.mkdir(mode=0o700)
    if archiving.user:
        os.chown(location, archiving.user.pw_uid, archiving.user.pw_gid)
    archiving.sql("CREATE TABLESPACE keel_ts LOCATION '%s'" % location)
    try:
        archiving.sql("CREATE TABLE far_away (id int) TABLESPACE keel_ts")
        archiving.sql("INSERT INTO far_away SELECT generate_series(1, 1000)")
        refused = run_module("pg_physical_backup", archiving.args())
        assert refused["failed"] and "allow_plaintext_staging" in refused["msg"], refused.get("msg")
        backup = run_module("pg_physical_backup", archiving.args(allow_plaintext_staging=True))
        assert "failed" not in backup, backup.get("msg")
        kinds = sorted(artifact["kind"] for artifact in backup["artifacts"])
        assert kinds == ["base", "manifest", "tablespace"], backup["artifacts"]
        archiving.switch_wal()
        verified = run_module("pg_physical_backup", archiving.args(state="verified"))
        assert "failed" not in verified and verified["files_verified"]["checked"], verified.get("msg")

        target, moved = workspace / "data", workspace / "ts-restored"
        busy = run_module("pg_physical_backup", archiving.args(state="restored", data_directory=str(target),
                                                               archive=False, target="immediate"))
        assert busy["failed"] and "not empty" in busy["msg"] and "tablespace_mapping" in busy["msg"], busy.get("msg")
        restored = run_module("pg_physical_backup", archiving.args(
            state="restored", data_directory=str(target), archive=False, target="immediate",
            tablespace_mapping={"keel_ts": str(moved)}))
        assert "failed" not in restored, restored.get("msg")
        [link] = (target / "pg_tblspc").iterdir()
        assert os.readlink(link) == str(moved)
        with started(archiving, str(target)) as port:
            with contextlib.closing(archiving.connect(port)) as conn, conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM far_away")
                assert cursor.fetchone()[0] == 1000
    finally:
        archiving.sql("DROP TABLE IF EXISTS far_away")
        archiving.sql("DROP TABLESPACE IF EXISTS keel_ts")
