"""Every module fed what users and broken systems really hand it: wrong types, garbage files, unreachable hosts,
a repository whose files are not what they claim. Each must answer JSON with `failed` and a message that says
what is wrong, never a traceback, and never the last-resort "this is a bug" message (that one is for bugs)."""

import json
import socket

import pytest
from ansible_run import run_module


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("garbage")
    paths = {}
    for name, data in (("binary.key", b"\xff\xfe\x00\x9c not a key \x80"), ("empty", b""),
                       ("text.key", b"this is not an age identity\n")):
        paths[name] = str(root / name)
        with open(paths[name], "wb") as handle:
            handle.write(data)
    repo = root / "repo"
    for kind, source in (("postgres", "db1"), ("redis", "cache1"), ("files", "app1")):
        for backup_id, manifest in (("20261101T000000000Z-aaaaaa", b"\x00\xff garbage"),
                                    ("20261102T000000000Z-bbbbbb", b'{"id": "20261102T000000000Z-bbbbbb"}'),
                                    ("20261103T000000000Z-cccccc", b"[1, 2, 3]")):
            folder = repo / kind / source / backup_id
            folder.mkdir(parents=True)
            (folder / "manifest.json").write_bytes(manifest)
            (folder / "verified.json").write_bytes(b"{not json")
        (repo / kind / "..weird name").mkdir(parents=True)
        (repo / kind / "..weird name" / "manifest.json").write_bytes(b"{}")
    paths["repo"] = str(repo)
    return paths


def pg_cases(files, port):
    login = dict(login_host="127.0.0.1", login_port=port, login_user="keel", login_password="secret")
    s3 = dict(login, repository="s3://bucket/x", database="db", s3_access_key="AK", s3_secret_key="SK")
    return [
        ("pg_backup", {"repository": "/srv/x", "database": "db", "login_port": "five"}, "login_port"),
        ("pg_backup", {"repository": "relative/dir", "database": "db"}, "repository path relative/dir is relative"),
        ("pg_backup", dict(login, repository="/tmp/keel-never", database="db"), "cannot connect to PostgreSQL"),
        ("pg_backup", dict(s3, s3_region="not a region!"), "is not a region name"),
        ("pg_backup", dict(s3, s3_endpoint_url="http://[::1"), "endpoint_url cannot be used"),
        ("pg_backup", dict(login, repository=files["repo"], database="db", source="db1", state="restored"),
         "no complete backup"),
        ("pg_backup", dict(login, repository=files["repo"], source="db1", state="verified"), "no complete backup"),
        ("pg_backup", dict(login, repository=files["repo"], database="db", encryption_recipients=["age1nope"]),
         "is not a valid recipient"),
        ("pg_backup", dict(login, repository=files["repo"], database="db",
                           encryption_recipients_file=files["binary.key"]), "is not a UTF-8 text file"),
        ("pg_backup", dict(login, repository=files["repo"], database="db", signing_key_file=files["binary.key"]),
         "is not an unencrypted ed25519 private key"),
        ("pg_backup", dict(login, repository=files["repo"], database="db", state="restored",
                           trusted_signing_keys=[files["text.key"]]), "not an ed25519 public key"),
        ("pg_backup", dict(login, repository=files["repo"], database="db", jobs=0), "jobs must be at least 1"),
        ("pg_backup", dict(login, repository=files["repo"], database="db", state="absent"),
         "set at least one of keep_last"),
        ("pg_backup_info", {"repository": files["repo"], "labels": "not a dict"}, "labels"),
        ("pg_maintenance", dict(login, database="db"), "cannot connect to PostgreSQL"),
        ("pg_maintenance", dict(login, database="db", reindex_min_bloat=2), "reindex_min_bloat is 2.0; it must be from"),
        ("pg_maintenance", dict(login, database="db", retention=[{"table": "t", "column": "at", "older_than_days": 0}]),
         "older_than_days must be above 0"),
        ("pg_maintenance", dict(login, database="db", retention=["t"]), "dictionary requested"),
        ("pg_maintenance", dict(login, database="db", vacuum_full="t; DROP TABLE t"), "cannot connect"),
        ("pg_backup_info", {"repository": "ftp://example/x"}, "unsupported scheme ftp://"),
        ("pg_backup_info", {"repository": files["repo"], "since": "yesterday"}, "since must be an ISO 8601"),
    ]


def redis_cases(files, port):
    login = dict(login_host="127.0.0.1", login_port=port)
    return [
        ("redis_snapshot", {"repository": "/srv/x", "login_port": "six"}, "login_port"),
        ("redis_snapshot", dict(login, repository="/tmp/keel-never"), "cannot connect to redis"),
        ("redis_snapshot", dict(login, repository=files["repo"], state="restored", source="cache1",
                                restore_method="keys"), "no complete backup"),
        ("redis_snapshot", dict(login, repository=files["repo"], state="verified", source="cache1"),
         "no complete backup"),
        ("redis_snapshot", dict(login, repository=files["repo"], timeout=0), "timeout must be"),
        ("redis_snapshot", dict(login, repository=files["repo"], login_user="acl-user"), "login_password"),
        ("redis_snapshot", dict(login, repository="s3://bucket/x", s3_region="no such region"), "is not a region name"),
        ("redis_snapshot_info", {"repository": files["repo"], "limit": "many"}, "limit"),
        ("redis_flush", dict(login, db=1, confirm="yes"), "needs confirm: 'flush db 1'"),
    ]


def file_cases(files):
    repo = dict(repository=files["repo"])
    return [
        ("file_backup", dict(repo, paths=["relative/dir"]), "is not an absolute path"),
        ("file_backup", dict(repo, paths=["/srv/app", "/srv/app/data"]), "is inside /srv/app"),
        ("file_backup", dict(repo, paths=["/"]), "the whole system"),
        ("file_backup", dict(repo, paths=["/nonexistent/keel-path"]), "cannot read /nonexistent/keel-path"),
        ("file_backup", dict(repo, source="app1", state="restored", target="relative"), "target must be an absolute"),
        ("file_backup", dict(repo, source="app1", state="restored"), "no complete backup"),
        ("file_backup", dict(repo, source="app1", state="verified"), "no complete backup"),
        ("file_backup", dict(repo, paths=["/srv"], sqlite_timeout=0), "sqlite_timeout must be"),
        ("file_backup", dict(repo, state="verified"), "one of the following is required: paths, source"),
        ("file_backup_info", {"repository": files["repo"], "limit": -1}, "limit: -1 is negative"),
        ("backup_copy", dict(repo, kind="files", to_repository="relative"), "is relative"),
        ("backup_copy", dict(repo, kind="files", source="app1", to_repository="/tmp/keel-never"), "no complete backup"),
        ("backup_copy", dict(repo, kind="files", to_repository="s3://bucket/x", to_s3_region="no such region"),
         "is not a region name"),
        ("backup_location_info", {"repository": "ftp://example/x"}, "unsupported scheme ftp://"),
        ("log_cleanup", {"paths": ["/var/log"], "older_than_days": -1}, "must not be negative"),
        ("log_cleanup", {"paths": ["/var/log"], "audit_log": "audit.jsonl"}, "audit_log audit.jsonl is relative"),
        ("sqlite_maintenance", {"paths": ["/nonexistent/keel.db"]}, "/nonexistent/keel.db: no such file"),
        ("sqlite_maintenance", {"paths": ["/tmp"], "steps": ["shrink"]}, "value of steps must be one or more of"),
    ]


def other_cases(port):
    return [
        ("health_probe", {"checks": "not a list"}, "dictionary requested"),
        ("health_probe", {"checks": [{"kind": "bogus"}]}, "value of kind must be one of"),
        ("health_probe", {"checks": [{"kind": "http"}]}, "http checks need url"),
        ("health_probe", {"checks": [{"kind": "tcp", "host": "127.0.0.1", "port": "x"}]}, "port"),
        ("health_probe", {"checks": [{"kind": "http", "url": "http://127.0.0.1:%d/" % port,
                                      "thresholds": {"response_time": "fast"}}]}, "thresholds.response_time"),
        ("rolling_update", {"docker_host": "unix:///nonexistent/docker.sock", "names": ["app-1"], "image": "x"},
         "cannot reach the container engine"),
        ("rolling_update", {"docker_host": "tcp://127.0.0.1:%d" % port, "labels": {"app": "x"}, "image": "x",
                            "timeout": 2}, "cannot reach the container engine"),
        ("rolling_update", {"names": [], "image": "x"}, "names must list at least one container name"),
        ("container_prune", {"docker_host": "unix:///nonexistent/docker.sock"}, "cannot reach the container engine"),
        ("haproxy_maintenance", {"socket": "nowhere", "backend": "app", "state": "ready"},
         "socket must be a unix socket path or host:port, got 'nowhere'"),
        ("haproxy_maintenance", {"socket": "/nonexistent/admin.sock", "backend": "app", "state": "maintenance"},
         "failed: No such file or directory; check socket and"),
        ("rolling_update", {"labels": {}, "image": "x"}, "labels must give at least one label"),
    ]


CASES = [case[:1] + case[2:] for case in pg_cases({"repo": "", "binary.key": "", "text.key": ""}, 0)
         + redis_cases({"repo": ""}, 0) + file_cases({"repo": ""}) + other_cases(0)]  # (module, expected) for the test ids


@pytest.mark.parametrize("index", range(len(CASES)), ids=["%s-%d" % (case[0], i) for i, case in enumerate(CASES)])
def test_malformed_input_gets_a_precise_failure_never_a_traceback(files, index):
    port = closed_port()
    name, args, expected = (pg_cases(files, port) + redis_cases(files, port) + file_cases(files)
                            + other_cases(port))[index]
    run = run_module(name, args, timeout=120)
    described = "%s %s" % (name, json.dumps(args, default=str))
    assert run.get("failed") is True, "%s did not fail: %s" % (described, run)
    assert expected in run.get("msg", ""), "%s: %s" % (described, run.get("msg"))
    assert "Traceback" not in run.stdout + run.stderr, "%s: %s" % (described, run.stderr[-2000:])
    assert "this is a bug" not in run["msg"].lower(), "%s: %s" % (described, run["msg"])


def test_listing_a_repository_of_garbage_skips_it_with_warnings(files):
    for name in ("pg_backup_info", "redis_snapshot_info", "file_backup_info"):
        run = run_module(name, {"repository": files["repo"]})
        assert run.returncode == 0 and run["count"] == 0, run.get("msg")
        warnings = json.dumps(run.get("warnings"))
        assert warnings.count("skipped backup") == 3 and "not a source folder keel.ops writes" in warnings


def test_a_non_utf8_identity_file_is_named_not_a_traceback(files, postgres, age_key, tmp_path):
    recipient, _identity = age_key
    login = dict(login_host=postgres["host"], login_port=postgres["port"], login_user=postgres["user"],
                 login_password=postgres["password"], bin_dir=postgres["bin_dir"], repository=str(tmp_path / "r"))
    taken = run_module("pg_backup", dict(login, database=postgres["database"], encryption_recipients=[recipient]))
    assert taken.returncode == 0, taken.get("msg")
    run = run_module("pg_backup", dict(login, state="verified", database=postgres["database"],
                                       decryption_identity_file=files["binary.key"]))
    assert run.returncode == 1 and "decryption_identity_file: %s is not a UTF-8 text file" % files["binary.key"] \
        in run["msg"], run.get("msg")
    assert "Traceback" not in run.stdout + run.stderr
