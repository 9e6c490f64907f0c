"""keel.ops.pg_backup and pg_backup_info against the real PostgreSQL and S3 endpoint of the embedded stack."""

import json
import os
import signal
import time
import uuid

import pytest
from ansible_run import cmdlines, run_four_ways, run_module, start_module, wait_for_partial
# big_db is a fixture: imported to be used by name in test signatures
from pg_fixtures import (  # noqa: F401 pylint: disable=unused-import
    SLOW,
    backup,
    big_db,
    conn_args,
    connect,
    create_database,
    database_exists,
    fingerprints,
    restore,
    s3_args,
)
from pyrage import x25519


@pytest.fixture
def dbname(postgres):
    name = "shop_%s" % uuid.uuid4().hex[:8]
    create_database(postgres, name)
    return name


@pytest.fixture
def repo(tmp_path):
    return str(tmp_path / "repo")


def test_backup_four_ways_then_round_trip_is_identical(postgres, dbname, repo):
    runs = run_four_ways("pg_backup", dict(conn_args(postgres), repository=repo, database=dbname))
    assert [r.returncode for r in runs] == [0, 0, 0, 0], runs[1].get("msg")
    assert [r["changed"] for r in runs] == [True, True, True, True]  # every real run takes a new backup
    assert runs[0]["backup_id"] is None and "would back up %s" % dbname in runs[0]["msg"]
    first, second = runs[1], runs[3]
    assert first["backup_id"] < second["backup_id"]
    stats = first["statistics"][dbname]
    assert stats["tables"]["sales.orders"] == 2000 and stats["tables"]["audit.log"] == 2000
    assert stats["large_objects"] == 3
    assert first["compression"] == {"algorithm": "zstd", "level": 1} and first["encryption"] is None
    assert 0 < first["size"] < first["raw_size"]

    info = run_module("pg_backup_info", {"repository": repo})
    assert [b["backup_id"] for b in info["backups"]] == [second["backup_id"], first["backup_id"]]
    assert info["backups"][0]["last_verified"] is None

    target = dbname + "_restored"
    plan = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=repo, database=dbname,
                                        target_database=target), check_mode=True)
    assert plan["changed"] is True and plan["plan"]["target_state"] == "missing"
    assert not database_exists(postgres, target)  # check mode touched nothing
    done = restore(postgres, repo, dbname, target)
    assert done.returncode == 0, done.get("msg")
    assert done["backup_id"] == second["backup_id"]
    assert done["verification"]["rows"] == sum(stats["tables"].values())
    assert fingerprints(postgres, target) == fingerprints(postgres, dbname)

    refused = restore(postgres, repo, dbname, target)
    assert refused.returncode == 1
    assert "target database %s is not empty" % target in refused["msg"] and "replace: true" in refused["msg"]


def test_encrypted_backup_to_s3_restores_and_wrong_key_touches_nothing(postgres, s3, dbname, age_key, tmp_path):
    recipient, identity_file = age_key
    repo = "s3://%s/%s" % (s3["bucket"], uuid.uuid4().hex)
    taken = backup(postgres, repo, dbname, encryption_recipients=[recipient], **s3_args(s3))
    assert taken.returncode == 0, taken.get("msg")
    assert taken["encryption"]["recipients"][0].startswith("sha256:")
    assert taken["artifacts"][0]["name"].endswith(".dump.zst.age")

    other = tmp_path / "other.agekey"
    other.write_text(str(x25519.Identity.generate()) + "\n")
    target = dbname + "_enc"
    wrong = restore(postgres, repo, dbname, target, decryption_identity_file=str(other), **s3_args(s3))
    assert wrong.returncode == 1 and "none of the decryption keys given can decrypt this backup" in wrong["msg"]
    missing = restore(postgres, repo, dbname, target, **s3_args(s3))
    assert missing.returncode == 1 and "is encrypted" in missing["msg"] and "decryption_identity_file" in missing["msg"]
    assert not database_exists(postgres, target)

    done = restore(postgres, repo, dbname, target, decryption_identity_file=identity_file, **s3_args(s3))
    assert done.returncode == 0, done.get("msg")
    assert fingerprints(postgres, target) == fingerprints(postgres, dbname)
    assert s3["secret_key"] not in done.stdout + taken.stdout


def test_passphrase_file_encryption(postgres, dbname, repo, tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    assert backup(postgres, repo, dbname, encryption_passphrase_file=str(secret)).returncode == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("incorrect horse\n")
    refused = restore(postgres, repo, dbname, dbname + "_pp", decryption_passphrase_file=str(wrong))
    assert refused.returncode == 1 and "wrong passphrase" in refused["msg"]
    done = restore(postgres, repo, dbname, dbname + "_pp", decryption_passphrase_file=str(secret))
    assert done.returncode == 0, done.get("msg")
    assert "correct horse" not in done.stdout


def _artifact_path(repo, source, backup_id, name):
    return os.path.join(repo, "postgres", source, backup_id, name)


def test_flipped_byte_is_detected_before_the_target_is_touched(postgres, dbname, repo):
    taken = backup(postgres, repo, dbname)
    path = _artifact_path(repo, taken["source"], taken["backup_id"], taken["artifacts"][0]["name"])
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    target = dbname + "_corrupt"
    failed = restore(postgres, repo, dbname, target)
    assert failed.returncode == 1
    assert "is corrupt: sha256" in failed["msg"] and "nothing was restored" in failed["msg"]
    assert not database_exists(postgres, target)
    verify = run_module("pg_backup", dict(conn_args(postgres), state="verified", repository=repo, database=dbname))
    assert verify.returncode == 1 and "is corrupt" in verify["msg"]


def test_verified_records_the_proof(postgres, dbname, repo):
    taken = backup(postgres, repo, dbname, labels={"trigger": "test"})
    proven = run_module("pg_backup", dict(conn_args(postgres), state="verified", repository=repo, database=dbname))
    assert proven.returncode == 0, proven.get("msg")
    assert proven["backup_id"] == taken["backup_id"] and proven["restore_duration"] > 0
    assert proven["verification"]["databases"][0]["rows"] == sum(taken["statistics"][dbname]["tables"].values())
    source = connect(postgres, dbname)
    with source.cursor() as cur:  # amcheck ran on every B-tree index of the restored copy
        cur.execute("SELECT count(*) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                    "AND indexdef LIKE '%% USING btree %%'")
        indexes = cur.fetchone()[0]
    source.close()
    assert indexes > 0 and proven["verification"]["databases"][0]["amcheck_indexes"] == indexes
    info = run_module("pg_backup_info", {"repository": repo, "labels": {"trigger": "test"}, "verified": True})
    assert info["count"] == 1 and info["backups"][0]["last_verified"] == proven["verification"]["time"]
    conn = connect(postgres)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'keel_verify_%%'")
        assert cur.fetchone()[0] == 0  # the scratch database is gone
    conn.close()


def test_replace_with_safety_backup_and_partial_table_restore(postgres, dbname, repo):
    taken = backup(postgres, repo, dbname)
    conn = connect(postgres, dbname)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM audit.log")
        cur.execute("UPDATE sales.customers SET city = 'nowhere'")
    conn.close()
    partial = restore(postgres, repo, dbname, dbname, restore_tables=["audit.log"], replace=True)
    assert partial.returncode == 0, partial.get("msg")
    assert partial["verification"] == {"tables": 1, "rows": 2000, "large_objects": 3}
    conn = connect(postgres, dbname)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM audit.log")
        assert cur.fetchone()[0] == 2000
        cur.execute("SELECT count(DISTINCT city) FROM sales.customers")
        assert cur.fetchone()[0] == 1  # other tables untouched
    conn.close()

    whole = restore(postgres, repo, dbname, dbname, replace=True, safety_backup=True, backup_id=taken["backup_id"])
    assert whole.returncode == 0, whole.get("msg")
    assert whole["safety_backup"]["source"] == "%s-pre-restore" % dbname
    info = run_module("pg_backup_info", {"repository": repo, "source": "%s-pre-restore" % dbname})
    assert info["count"] == 1


def test_failing_pg_dump_is_a_failure_with_its_stderr(postgres, dbname, repo):
    conn = connect(postgres, dbname)
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS keel_limited")
        cur.execute("CREATE ROLE keel_limited LOGIN PASSWORD 'limited-pw-123'")
        cur.execute("GRANT USAGE ON SCHEMA sales TO keel_limited")
        cur.execute("GRANT SELECT ON sales.customers TO keel_limited")
    conn.close()
    args = dict(conn_args(postgres), login_user="keel_limited", login_password="limited-pw-123")
    failed = run_module("pg_backup", dict(args, repository=repo, database=dbname))
    assert failed.returncode == 1 and failed.get("changed") is not True
    assert "permission denied" in failed["msg"]
    assert run_module("pg_backup_info", {"repository": repo})["count"] == 0
    assert "limited-pw-123" not in failed.stdout


def test_old_client_tools_are_refused_clearly(postgres, dbname, repo):
    old = "/usr/lib/postgresql/15/bin"
    if not os.path.exists(os.path.join(old, "pg_dump")):
        pytest.skip("Debian's postgresql-client-15 is not installed")
    failed = backup(postgres, repo, dbname, bin_dir=old)
    assert failed.returncode == 1
    assert "pg_dump is version 15" in failed["msg"] and "server runs PostgreSQL 18" in failed["msg"]
    assert "set bin_dir" in failed["msg"]


def test_sigkill_mid_backup_leaves_nothing_and_secrets_stay_off_argv(postgres, big_db, repo, tmp_path):
    args = dict(conn_args(postgres), repository=repo, database=big_db, **SLOW)
    proc = start_module("pg_backup", args, tmp_path)
    assert wait_for_partial(repo), "the backup never started writing"
    assert not [line for line in cmdlines() if postgres["password"] in line]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_module("pg_backup_info", {"repository": repo})["count"] == 0
    again = backup(postgres, repo, big_db, compression="none")
    assert again.returncode == 0, again.get("msg")
    assert again["cleaned_up"], "the leftovers of the killed run were not cleaned"
    leftovers = [f for _r, _d, files in os.walk(repo) for f in files if ".partial-" in f]
    assert leftovers == []


def test_second_backup_waits_for_the_lock_then_fails_clearly(postgres, big_db, repo, tmp_path):
    args = dict(conn_args(postgres), repository=repo, database=big_db, **SLOW)
    first = start_module("pg_backup", args, tmp_path)
    assert wait_for_partial(repo)
    started = time.monotonic()
    second = backup(postgres, repo, big_db, lock_timeout=1, **SLOW)
    waited = time.monotonic() - started
    out, _err = first.communicate(timeout=300)
    assert first.returncode == 0, out[-2000:]
    assert second.returncode == 1 and waited >= 1
    assert "lock" in second["msg"].lower() and str(first.pid) in second["msg"]
    assert run_module("pg_backup_info", {"repository": repo})["count"] == 1


def test_retention_and_absent(postgres, dbname, repo):
    ids = [backup(postgres, repo, dbname)["backup_id"] for _i in range(3)]
    kept = backup(postgres, repo, dbname, keep_last=2)
    assert kept["retention"]["deleted"] == [ids[1], ids[0]]  # newest first
    info = run_module("pg_backup_info", {"repository": repo})
    assert [b["backup_id"] for b in info["backups"]] == [kept["backup_id"], ids[2]]
    args = dict(conn_args(postgres), state="absent", repository=repo, database=dbname, keep_last=1)
    check = run_module("pg_backup", args, check_mode=True)
    assert check["changed"] is True and check["deleted"] == [ids[2]]
    assert run_module("pg_backup_info", {"repository": repo})["count"] == 2
    pruned = run_module("pg_backup", args)
    assert pruned["deleted"] == [ids[2]]
    assert run_module("pg_backup", args)["changed"] is False


def test_info_warns_when_the_newest_backup_is_stale(repo, postgres, dbname):
    empty = run_module("pg_backup_info", {"repository": repo, "max_age": 24})
    assert empty["stale"] is True and empty["count"] == 0
    backup(postgres, repo, dbname)
    fresh = run_module("pg_backup_info", {"repository": repo, "max_age": 24})
    assert fresh["stale"] is False and fresh["newest_age_hours"] < 1


@pytest.mark.parametrize("args, message", [
    ({"compression": "zstd", "compression_level": 40}, "compression_level for zstd must be 1 to 22"),
    ({"encryption_recipients": ["AGE-SECRET-KEY-1XYZ"]}, "must be an age public key"),
    ({"state": "restored", "before": "yesterday"}, "before must be an ISO 8601 timestamp"),
    ({"source": "../etc"}, "is not usable as a repository folder name"),
    ({"jobs": 2, "encryption_passphrase_file": "/dev/null"}, "is empty"),
    ({"jobs": 2, "encryption_recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]},
     "write a directory of plaintext files"),
])
def test_bad_input_fails_precisely(postgres, repo, args, message):
    run = run_module("pg_backup", dict(conn_args(postgres), repository=repo, database="keel", **args))
    assert run.returncode == 1 and message in run["msg"], run.get("msg")
    assert "Traceback" not in run.stdout + run.stderr


def test_round_trip_on_postgresql_15(postgres15, tmp_path):
    name = "shop15"
    create_database(postgres15, name)
    repo = str(tmp_path / "repo15")
    taken = backup(postgres15, repo, name)
    assert taken.returncode == 0, taken.get("msg")
    assert taken["plan"]["server_version"].startswith("15.")
    done = restore(postgres15, repo, name, name + "_restored")
    assert done.returncode == 0, done.get("msg")
    assert fingerprints(postgres15, name + "_restored") == fingerprints(postgres15, name)


def test_parallel_directory_format_round_trip(postgres, dbname, repo):
    taken = backup(postgres, repo, dbname, jobs=2)
    assert taken.returncode == 0, taken.get("msg")
    assert taken["artifacts"][0]["format"] == "directory"
    assert taken["artifacts"][0]["name"] == "%s.dir.tar.zst" % dbname
    done = restore(postgres, repo, dbname, dbname + "_par", jobs=2)
    assert done.returncode == 0, done.get("msg")
    assert fingerprints(postgres, dbname + "_par") == fingerprints(postgres, dbname)
    # a custom-format backup restored with parallel workers, and a directory one restored with a single one
    custom = backup(postgres, repo, dbname)
    assert restore(postgres, repo, dbname, dbname + "_par2", jobs=2, backup_id=custom["backup_id"]).returncode == 0
    assert restore(postgres, repo, dbname, dbname + "_par3", backup_id=taken["backup_id"]).returncode == 0
    assert fingerprints(postgres, dbname + "_par3") == fingerprints(postgres, dbname)


def test_cluster_backup_restores_globals_and_one_database(postgres, dbname, repo):
    conn = connect(postgres)
    with conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS keel_cluster_role")
        cur.execute("CREATE ROLE keel_cluster_role NOLOGIN")
    conn.close()
    taken = run_module("pg_backup", dict(conn_args(postgres), repository=repo, scope="cluster", source="cluster"))
    assert taken.returncode == 0, taken.get("msg")
    kinds = [a["kind"] for a in taken["artifacts"]]
    assert kinds[0] == "globals" and dbname in [a.get("database") for a in taken["artifacts"]]
    conn = connect(postgres)
    with conn.cursor() as cur:
        cur.execute("DROP ROLE keel_cluster_role")
    conn.close()
    done = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=repo, scope="cluster",
                                        source="cluster", database=dbname, target_database=dbname + "_c",
                                        restore_globals=True))
    assert done.returncode == 0, done.get("msg")
    assert fingerprints(postgres, dbname + "_c") == fingerprints(postgres, dbname)
    conn = connect(postgres)
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'keel_cluster_role'")
        assert cur.fetchone() is not None  # the dropped role came back from the globals
    conn.close()
    assert "statements failed" in json.dumps(done.get("warnings"))  # existing roles are reported


def test_a_check_mode_restore_proves_checksums_and_key_so_a_dry_run_is_a_precheck(
        postgres, dbname, age_key, tmp_path):
    """A disaster-recovery pre-check runs the restores in check mode: one that says it would work has read the
    backup, and one that would fail on a damaged artifact or a missing key fails there, touching nothing."""
    recipient, identity = age_key
    repo = str(tmp_path / "repo")
    taken = backup(postgres, repo, dbname, encryption_recipients=[recipient])
    assert taken.returncode == 0, taken.get("msg")
    target = dbname + "_dry"
    dry = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=repo, database=dbname,
                                       target_database=target, decryption_identity_file=identity), check_mode=True)
    assert dry["changed"] and dry["artifacts_checked"] == [a["name"] for a in taken["artifacts"]], dry.get("msg")
    no_key = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=repo, database=dbname,
                                          target_database=target), check_mode=True)
    assert no_key.get("failed") and "is encrypted" in no_key["msg"]
    stored = os.path.join(taken["location"], taken["artifacts"][0]["name"])
    with open(stored, "r+b") as handle:
        handle.seek(os.path.getsize(stored) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    damaged = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=repo, database=dbname,
                                           target_database=target, decryption_identity_file=identity),
                         check_mode=True)
    assert damaged.get("failed") and "is corrupt" in damaged["msg"], damaged.get("msg")
    holds = os.path.join(repo, "postgres", taken["source"], ".holds")
    assert not os.path.isdir(holds) or os.listdir(holds) == []  # a dry run writes no hold into the repository
