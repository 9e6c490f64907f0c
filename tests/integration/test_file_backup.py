"""file_backup and file_backup_info run as Ansible runs them, against real files, real SQLite databases, a local
repository and the stack's S3 endpoint."""

import hashlib
import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
import uuid

import pytest
from ansible_run import run_four_ways, run_module, start_module
from pg_fixtures import s3_args

AS_ROOT = os.geteuid() == 0


def tree(root):
    """{relative path: (type, mode, mtime, content sha256 or link target, uid)} of everything under root."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", None)
            elif not stat.S_ISREG(st.st_mode):
                what = ("special", None)
            else:
                with open(path, "rb") as handle:
                    what = ("file", hashlib.sha256(handle.read()).hexdigest())
            found[os.path.relpath(path, root)] = what + (stat.S_IMODE(st.st_mode), int(st.st_mtime), st.st_uid)
    return found


def make_app(root):
    """An application's data: nested files with modes and mtimes, a symlink, a hard link, a SQLite database in WAL
    mode with rows only its WAL holds, a secret and a FIFO."""
    data = root / "app"
    (data / "uploads" / "2026").mkdir(parents=True)
    (data / "config.yml").write_text("listen: 8080\n")
    os.chmod(data / "config.yml", 0o640)
    (data / "uploads" / "2026" / "photo.bin").write_bytes(os.urandom(300000))
    os.utime(data / "uploads" / "2026" / "photo.bin", (1700000000, 1700000000))
    (data / "current").symlink_to("uploads/2026")
    os.link(data / "config.yml", data / "config.hardlink")
    (data / ".env").write_text("DATABASE_PASSWORD=hunter2\n")
    (data / "tls.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    os.mkfifo(data / "control.fifo")
    if AS_ROOT:
        os.chown(data / "uploads", 65534, 65534)
    db = sqlite3.connect(str(data / "state.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # the rows stay in the WAL: a copy of the file alone would lack them
    db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO jobs (name) VALUES (?)", [("job %d" % i,) for i in range(500)])
    db.commit()
    return data, db


def sqlite_rows(path):
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    finally:
        db.close()


def args(repo, data, **extra):
    return dict(repository=str(repo), paths=[str(data)], source="app1", **extra)


def without_secrets_and_specials(found):
    return {path: value for path, value in found.items()
            if os.path.basename(path) not in (".env", "tls.key", "control.fifo", "state.db", "state.db-wal",
                                              "state.db-shm")}


def test_a_file_set_round_trips_with_attributes_links_and_a_consistent_sqlite_copy(tmp_path):
    data, db = make_app(tmp_path)
    repo, target = tmp_path / "repo", tmp_path / "restored"
    runs = run_four_ways("file_backup", args(repo, data))
    assert [run.get("changed") for run in runs] == [True, True, True, True], [run.get("msg") for run in runs]
    assert runs[0]["plan"]["files"] == 3 and runs[0]["plan"]["hardlinks"] == 1 and runs[0]["backup_id"] is None  # check mode: counted, nothing stored
    stats = runs[3]["statistics"]
    assert (stats["files"], stats["sqlite"], stats["symlinks"], stats["hardlinks"], stats["excluded_secrets"],
            stats["skipped"]) == (3, 1, 1, 1, 2, 1), stats
    assert str(data / ".env") in runs[3]["excluded_secrets"] and str(data / "tls.key") in runs[3]["excluded_secrets"]
    assert runs[3]["skipped"] == [{"path": str(data / "control.fifo"), "reason": "FIFO: not stored"}]
    assert "left out 2 secret file(s)" in json.dumps(runs[3]["warnings"])
    assert "hunter2" not in json.dumps(runs[3])
    original = tree(str(data))
    db.close()  # deletes the WAL, and so changes the directory's mtime: compare with the tree backed up

    restored = run_four_ways("file_backup", dict(args(repo, data), state="restored", target=str(target),
                                                 journal_dir=str(tmp_path)))
    assert [run.get("changed") for run in restored] == [True, True, False, False], [r.get("msg") for r in restored]
    assert restored[1]["sqlite_checked"] == [str(data / "state.db")]
    copy = str(target) + str(data)
    assert without_secrets_and_specials(tree(copy)) == without_secrets_and_specials(original)
    assert os.stat(os.path.join(copy, "config.yml")).st_ino == os.stat(os.path.join(copy, "config.hardlink")).st_ino
    assert sqlite_rows(os.path.join(copy, "state.db")) == 500
    assert not {".env", "tls.key", "control.fifo", "state.db-wal"} & set(os.listdir(copy))
    assert restored[1]["owners_restored"] is AS_ROOT
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith("keel-file-restore-")]

    verified = run_module("file_backup", dict(args(repo, data), state="verified"))
    assert verified["changed"] and verified["verification"]["files"] == 3, verified.get("msg")
    listed = run_module("file_backup_info", {"repository": str(repo)})
    assert listed["count"] == 2 and listed["backups"][0]["paths"] == [str(data)]
    assert listed["backups"][0]["last_verified"] is not None


def test_named_secrets_are_stored_and_globs_narrow_the_set(tmp_path):
    data, db = make_app(tmp_path)
    db.close()
    repo = tmp_path / "repo"
    taken = run_module("file_backup", args(repo, data, include_secrets=["*.key"], exclude=["uploads"],
                                           sqlite_patterns=[]))
    assert taken["changed"], taken.get("msg")
    assert taken["excluded_secrets"] == [str(data / ".env")]
    assert (taken["statistics"]["files"], taken["statistics"]["sqlite"]) == (3, 0)  # config, tls.key, state.db
    target = tmp_path / "out"
    run = run_module("file_backup", dict(args(repo, data), state="restored", target=str(target),
                                         journal_dir=str(tmp_path)))
    names = set(os.listdir(str(target) + str(data)))
    assert "tls.key" in names and "uploads" not in names and "current" in names, names
    single = run_module("file_backup", dict(repository=str(repo), paths=[str(data / ".env")]))
    assert single["changed"] and single["statistics"]["files"] == 1, single.get("msg")
    assert run["changed"]


def test_sqlite_is_copied_consistently_while_a_writer_commits(tmp_path):
    """A writer commits 50 rows per transaction the whole time; every copy holds whole transactions only."""
    data = tmp_path / "app"
    data.mkdir()
    path = str(data / "busy.db")
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT)")
    setup.commit()
    setup.close()
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], timeout=30)\n"
        "while True:\n"
        "    db.executemany('INSERT INTO jobs (name) VALUES (?)', [('x' * 200,)] * 50)\n"
        "    db.commit()\n"), path])
    try:
        time.sleep(0.3)
        repo = tmp_path / "repo"
        for _round in range(3):
            taken = run_module("file_backup", args(repo, data))
            assert taken["changed"] and taken["statistics"]["sqlite"] == 1, taken.get("msg")
    finally:
        writer.kill()
        writer.wait()
    listed = run_module("file_backup_info", {"repository": str(repo), "source": "app1"})
    counts = []
    for backup in listed["backups"]:
        target = tmp_path / backup["backup_id"]
        run = run_module("file_backup", dict(args(repo, data), state="restored", backup_id=backup["backup_id"],
                                             target=str(target), journal_dir=str(tmp_path)))
        assert run["changed"], run.get("msg")
        counts.append(sqlite_rows(str(target) + path))
    assert all(count % 50 == 0 for count in counts), counts
    assert max(counts) > 0


def test_encrypted_backup_to_s3_leaves_no_plaintext_behind(tmp_path, s3, age_key, monkeypatch):
    recipient, identity = age_key
    data, db = make_app(tmp_path)
    db.close()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the module's private work directory goes
    repo = "s3://%s/files-%s" % (s3["bucket"], uuid.uuid4().hex[:8])
    s3_options = s3_args(s3)
    taken = run_module("file_backup", dict(s3_options, repository=repo, paths=[str(data)], source="app1",
                                           encryption_recipients=[recipient]))
    assert taken["changed"] and taken["encryption"]["recipients"], taken.get("msg")
    assert taken["location"].startswith("s3://") and s3["secret_key"] not in json.dumps(taken)
    assert os.listdir(str(scratch)) == []
    missing_key = run_module("file_backup", dict(s3_options, repository=repo, source="app1", state="restored",
                                                 target=str(tmp_path / "no"), journal_dir=str(tmp_path)))
    assert missing_key.get("failed") and "is encrypted" in missing_key["msg"]
    assert not os.path.exists(str(tmp_path / "no"))
    target = tmp_path / "out"
    done = run_module("file_backup", dict(s3_options, repository=repo, source="app1", state="restored",
                                          target=str(target), decryption_identity_file=identity,
                                          journal_dir=str(tmp_path)))
    assert done["changed"], done.get("msg")
    assert sqlite_rows(str(target) + str(data / "state.db")) == 500
    assert os.listdir(str(scratch)) == []


def test_restoring_in_place_needs_replace_and_a_flipped_byte_touches_nothing(tmp_path):
    data, db = make_app(tmp_path)
    db.close()
    repo = tmp_path / "repo"
    taken = run_module("file_backup", args(repo, data))
    assert taken["changed"], taken.get("msg")
    before = tree(str(data))
    (data / "config.yml").write_text("listen: 9999\n")
    os.unlink(str(data / "uploads" / "2026" / "photo.bin"))
    (data / "extra.txt").write_text("made after the backup\n")
    restore_args = dict(args(repo, data), state="restored", journal_dir=str(tmp_path))

    refused = run_module("file_backup", restore_args)
    assert refused.get("failed") and "set replace: true" in refused["msg"] and "config." in refused["msg"]
    assert (data / "config.yml").read_text() == "listen: 9999\n"
    assert not (data / "uploads" / "2026" / "photo.bin").exists()

    planned = run_module("file_backup", dict(restore_args, replace=True), check_mode=True)
    assert planned["changed"] and planned["plan"]["entries"]["replace"] >= 1, planned.get("msg")
    assert (data / "config.yml").read_text() == "listen: 9999\n"

    archive = next(a["name"] for a in taken["artifacts"] if a["name"].startswith("files.tar"))
    stored = os.path.join(str(repo), "files", "app1", taken["backup_id"], archive)
    with open(stored, "r+b") as handle:
        handle.seek(os.path.getsize(stored) // 2)
        byte = handle.read(1)
        handle.seek(-1, io.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    damaged = run_module("file_backup", dict(restore_args, replace=True))
    assert damaged.get("failed") and "sha256" in damaged["msg"], damaged.get("msg")
    assert (data / "config.yml").read_text() == "listen: 9999\n"
    with open(stored, "r+b") as handle:
        handle.seek(os.path.getsize(stored) // 2)
        handle.write(byte)

    done = run_module("file_backup", dict(restore_args, replace=True))
    assert done["changed"] and done["counts"]["replaced"] >= 1, done.get("msg")
    after = tree(str(data))
    assert after.pop("extra.txt")[0] == "file"  # what the backup does not hold is left alone
    assert without_secrets_and_specials(after) == without_secrets_and_specials(before)
    assert not [name for name in os.listdir(str(data)) if name.startswith(".keel-")]


def test_a_restore_killed_mid_way_is_rolled_back_by_the_next_run(tmp_path):
    data = tmp_path / "app"
    data.mkdir()
    for index in range(600):
        (data / ("f%03d" % index)).write_bytes(b"stored %d\n" % index * 2000)
    repo = tmp_path / "repo"
    assert run_module("file_backup", args(repo, data))["changed"]
    for index in range(600):
        (data / ("f%03d" % index)).write_bytes(b"changed %d\n" % index)
    changed = tree(str(data))
    restore_args = dict(args(repo, data), state="restored", replace=True, journal_dir=str(tmp_path))
    proc = start_module("file_backup", restore_args, tmp_path)
    journal = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        journals = [name for name in os.listdir(str(tmp_path)) if name.startswith("keel-file-restore-")]
        if journals:
            journal = os.path.join(str(tmp_path), journals[0])
            with open(journal) as handle:
                if handle.read().count('"place"') >= 20:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        time.sleep(0.002)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.fail("the restore finished before it could be killed: give it more files")
    assert os.path.exists(journal)
    assert tree(str(data)) != changed  # killed half-way: some files are restored, some are not

    planned = run_module("file_backup", restore_args, check_mode=True)
    assert "interrupted earlier" in json.dumps(planned.get("warnings")), planned
    done = run_module("file_backup", restore_args)
    assert done["changed"] and done["repaired"] == "rolled back", done.get("msg")
    assert "rolled back a restore interrupted earlier" in json.dumps(done["warnings"])
    assert not os.path.exists(journal)
    assert all((data / ("f%03d" % index)).read_bytes() == b"stored %d\n" % index * 2000 for index in range(600))
    assert not [name for name in os.listdir(str(data)) if name.startswith(".keel-")]


def forge(repo, source, members, paths):
    """A backup written by hand into a local repository: a tar of `members` [(TarInfo, bytes or None)], an index
    that agrees with it and a manifest with correct checksums - everything a restore checks, except intent."""
    from ansible_collections.keel.ops.plugins.module_utils._files.archive import index_record

    buffer, index = io.BytesIO(), []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
            fields = {}
            if info.isreg():
                fields = dict(size=info.size, sha256=hashlib.sha256(content).hexdigest())
            index.append(json.dumps(index_record(info, **fields)))
    backup_id = time.strftime("%Y%m%dT%H%M%S000Z-abcdef", time.gmtime())
    folder = os.path.join(repo, "files", source, backup_id)
    os.makedirs(folder)
    artifacts = []
    for name, kind, blob in (("files.tar", "files", buffer.getvalue()),
                             ("index.jsonl", "index", ("\n".join(index) + "\n").encode())):
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(blob)
        artifacts.append(dict(name=name, kind=kind, size=len(blob), raw_size=len(blob),
                              sha256=hashlib.sha256(blob).hexdigest()))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = dict(id=backup_id, kind="files", format="tar", version=1, source=dict(name=source, paths=paths),
                    artifacts=artifacts, compression={"algorithm": "none", "level": None}, encryption=None,
                    started=stamp, finished=stamp, duration=0.1, labels={},
                    statistics=dict(files=sum(1 for info, _c in members if info.isreg())))
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return backup_id


def member(name, kind=tarfile.REGTYPE, content=None, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, 0o644, 1700000000, link
    if content is not None:
        info.size = len(content)
    return info, content


@pytest.mark.parametrize("members", [
    [member("srv/app", tarfile.DIRTYPE), member("srv/app/escape", tarfile.SYMTYPE, link="../../../outside"),
     member("srv/app/escape/planted", content=b"owned\n")],
    [member("srv/app", tarfile.DIRTYPE), member("srv/app/../../outside/planted", content=b"owned\n")],
    [member("srv/app", tarfile.DIRTYPE), member("srv/other/planted", content=b"owned\n")],
    [member("srv/app", tarfile.DIRTYPE), member("srv/app/hard", tarfile.LNKTYPE, link="etc/passwd")],
], ids=["through-a-symlink-it-planted", "dot-dot", "outside-the-backups-paths", "hard-link-to-elsewhere"])
def test_a_forged_archive_cannot_write_outside_its_paths(tmp_path, members):
    repo, target = str(tmp_path / "repo"), tmp_path / "target"
    (tmp_path / "outside").mkdir()
    target.mkdir()
    forge(repo, "forged", members, ["/srv/app"])
    run = run_module("file_backup", dict(repository=repo, source="forged", state="restored", target=str(target),
                                         journal_dir=str(tmp_path)))
    assert run.get("failed") and "nothing" in run["msg"], run.get("msg")
    assert os.listdir(str(tmp_path / "outside")) == []
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith("keel-file-restore-")]
    leftovers = [path for path in tree(str(target)) if os.path.basename(path).startswith(".keel-")]
    assert leftovers == [] and not os.path.lexists(str(target / "srv" / "app" / "escape"))
