"""Audit entries: what they keep, what they never keep, and how they are written."""

import datetime
import json
import threading

from ansible_collections.keel.ops.plugins.module_utils import _audit

NOW = datetime.datetime(2026, 12, 6, 2, 30, 1, 250000, tzinfo=datetime.timezone.utc)


def test_an_entry_names_who_what_where_and_the_result_and_no_secret():
    params = {"state": "present", "database": "shop", "login_password": "hunter2", "s3_secret_key": "SK",
              "repository": "s3://AKIA:sekrit@bucket/prod", "encryption_passphrase_file": "/etc/pass",
              "audit_actor": "alice", "headers": {"Authorization": "Bearer x"}}
    result = {"changed": True, "backup_id": "20261206T023001Z-ab", "location": "https://u:p@s3.example/x",
              "stdout": "the dump's data"}
    item = _audit.entry("pg_backup", params, result, "changed", NOW)
    assert item["time"] == "2026-12-06T02:30:01.250000Z" and item["actor"] == "alice" and item["result"] == "changed"
    assert item["module"] == "keel.ops.pg_backup" and item["target"]["database"] == "shop"
    assert item["details"]["backup_id"] == "20261206T023001Z-ab"
    text = json.dumps(item)
    for secret in ("hunter2", "SK", "sekrit", "Bearer", "/etc/pass", ":p@", "dump's data"):
        assert secret not in text, secret


def test_without_an_actor_the_system_user_is_named():
    assert _audit.entry("log_cleanup", {}, {}, "failed", NOW)["actor"]


def test_lines_appended_by_many_writers_stay_whole(tmp_path):
    path = str(tmp_path / "audit" / "trail.jsonl")

    def write(index):
        for line in range(20):
            _audit.append_line(path, {"writer": index, "line": line, "pad": "x" * 3000})

    threads = [threading.Thread(target=write, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(path) as handle:
        lines = [json.loads(line) for line in handle]
    assert len(lines) == 80 and all(len(line["pad"]) == 3000 for line in lines)


def test_repository_entries_are_objects_of_their_own_under_audit_by_day():
    item = _audit.entry("rolling_update", {}, {}, "changed", NOW)
    key = _audit.object_key(item)
    assert key.startswith("audit/2026-12-06/20261206T023001") and key.endswith(".json") and "rolling_update" in key
    assert _audit.object_key(item) != key


def test_backup_modules_audit_into_their_repository_unless_told_otherwise(tmp_path):
    assert _audit.destination({"repository": "/srv/not-made-yet"}) == ("/srv/not-made-yet", True)
    assert _audit.destination({"repository": "/srv/b", "audit_log": "/var/log/keel.jsonl"}) == ("/var/log/keel.jsonl", False)
    assert _audit.destination({"audit_log": str(tmp_path)}) == (str(tmp_path), True)
    assert _audit.destination({"audit_log": "s3://bucket/trail"}) == ("s3://bucket/trail", True)
    assert _audit.destination({}) == (None, False)
    assert _audit.destination({"repository": "relative/dir"}) == (None, False)
