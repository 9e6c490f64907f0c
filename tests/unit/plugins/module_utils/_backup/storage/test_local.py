"""The local storage backend on real files and real processes: atomic writes, private modes, listing, deletes,
errors with their fix, and flock locks. The S3 backend runs against a real moto server in
tests/integration/test_storage.py.
"""

import json
import os
import pwd
import re
import signal
import stat
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import local
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import LockTimeout, NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


# Child processes import the collection from where tests/conftest.py links it.
COLLECTIONS = str(Path(__file__).resolve().parents[6] / ".build")


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*") if path.is_file())


@pytest.fixture
def store(tmp_path):
    return LocalStorage(str(tmp_path / "repo"))


@pytest.fixture
def open_umask():
    """Umask 0, so modes seen in tests are the ones the code asks for, not what the umask leaves."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_uncommitted_write_is_invisible_then_appears_whole(store):
    writer = store.writer("postgres/db1/b1/dump")
    writer.write(b"a" * 1000)
    writer.write(bytearray(b"b" * 24))
    writer.write(memoryview(b"c" * 76))
    assert writer.bytes_written == 1100
    assert not store.exists("postgres/db1/b1/dump")
    assert store.list("") == [] and store.list_children("postgres/db1") == []
    [partial] = files_under(store.root)
    assert partial.startswith("postgres/db1/b1/.dump.partial-")
    assert mode_of(os.path.join(store.root, partial)) == 0o600
    assert writer.commit() == 1100
    assert store.list("") == ["postgres/db1/b1/dump"]
    assert store.size("postgres/db1/b1/dump") == 1100
    assert store.get("postgres/db1/b1/dump") == b"a" * 1000 + b"b" * 24 + b"c" * 76
    assert mode_of(os.path.join(store.root, "postgres/db1/b1/dump")) == 0o600


@pytest.mark.usefixtures("open_umask")
def test_root_and_directories_are_created_private(tmp_path):
    store = LocalStorage(str(tmp_path / "new" / "repo"))
    assert not os.path.exists(store.root)  # nothing is created before the first write
    assert store.list("") == [] and not store.exists("x")
    store.put("postgres/db1/manifest.json", b"{}")
    for directory in ("new", "new/repo", "new/repo/postgres", "new/repo/postgres/db1"):
        assert mode_of(tmp_path / directory) == 0o700, directory


def test_the_parent_of_every_new_directory_is_synced(tmp_path, monkeypatch):
    synced = []
    real = local.fsync_dir
    monkeypatch.setattr(local, "fsync_dir", lambda path: (synced.append(path), real(path)))
    store = LocalStorage(str(tmp_path / "repo"))
    store.put("postgres/db1/b1/manifest.json", b"{}")
    for parent in ("", "repo", "repo/postgres", "repo/postgres/db1"):
        assert str(tmp_path / parent).rstrip("/") in synced, parent
    assert synced[-1] == str(tmp_path / "repo/postgres/db1/b1")  # and the file's own directory, after the rename


def test_abort_leaves_nothing(store):
    store.put("keep", b"1")
    writer = store.writer("postgres/db1/b1/dump")
    writer.write(b"x" * 4096)
    writer.abort()
    writer.abort()  # twice is fine
    assert files_under(store.root) == ["keep"]
    assert os.listdir(store.root) == ["keep"]  # the directories it made are gone too


def test_context_manager_aborts_unless_committed(store):
    with pytest.raises(RuntimeError):
        with store.writer("a/dump") as writer:
            writer.write(b"data")
            raise RuntimeError("producer failed")
    with store.writer("a/other") as writer:
        writer.write(b"data")  # no commit: nothing appears
    assert files_under(store.root) == []
    with store.writer("a/dump") as writer:
        writer.write(b"data")
        assert writer.commit() == 4
    assert store.list("a") == ["a/dump"]


def test_writer_refuses_use_after_commit(store):
    writer = store.writer("k")
    writer.commit()
    with pytest.raises(StorageError, match=r"cannot write to .*/k: its writer was already committed"):
        writer.write(b"more")
    assert store.get("k") == b""


def test_put_replaces_atomically_and_get_reads(store):
    store.put("postgres/db1/b1/manifest.json", b'{"v": 1}')
    store.put("postgres/db1/b1/manifest.json", b'{"v": 2}')
    assert store.get("postgres/db1/b1/manifest.json") == b'{"v": 2}'
    assert files_under(store.root) == ["postgres/db1/b1/manifest.json"]


def test_missing_keys_raise_not_found_naming_the_path(store):
    store.put("a/b", b"1")
    for call in (store.get, store.size, store.reader):
        with pytest.raises(NotFound, match=r"^%s/a/missing does not exist$" % store.root):
            call("a/missing")
    with pytest.raises(NotFound, match="is not a file"):
        store.size("a")  # a directory is not a key
    assert store.exists("a/b") and not store.exists("a") and not store.exists("a/missing")


def test_reader_streams(store):
    store.put("big", bytes(range(256)) * 1000)
    with store.reader("big") as stream:
        chunks = []
        while True:
            chunk = stream.read(10000)
            if not chunk:
                break
            chunks.append(chunk)
    assert b"".join(chunks) == bytes(range(256)) * 1000 and len(chunks) == 26


@pytest.mark.parametrize("key", ["", "/", "../etc/passwd", "a/../../b", "a/./b", "a/.b.partial-0123abcd"])
def test_invalid_keys_are_refused(store, key):
    with pytest.raises(StorageError, match=r"invalid storage key"):
        store.put(key, b"x")


def populate(store):
    for key in ("postgres/db1/b2/manifest.json", "postgres/db1/b1/manifest.json", "postgres/db1/b1/dump",
                "postgres/db2/b9/manifest.json", "redis/cache/b1/dump.rdb", "postgres/db1/.lock"):
        store.put(key, key.encode())


def test_list_is_recursive_sorted_and_relative_to_the_root(store):
    populate(store)
    store.writer("postgres/db1/b3/dump").write(b"unfinished")  # invisible
    assert store.list("postgres/db1") == ["postgres/db1/.lock", "postgres/db1/b1/dump",
                                          "postgres/db1/b1/manifest.json", "postgres/db1/b2/manifest.json"]
    assert store.list("postgres/db1/") == store.list("postgres/db1")
    assert len(store.list("")) == 6
    assert store.list("postgres/nothing") == [] and store.list("postgres/db1/.lock") == []


def test_list_children_shows_directories_holding_keys(store):
    populate(store)
    store.writer("postgres/db1/b3/dump").write(b"unfinished")  # b3 holds no committed key yet
    os.makedirs(os.path.join(store.root, "postgres", "db1", "empty"))
    assert store.list_children("postgres/db1") == ["b1", "b2"]
    assert store.list_children("") == ["postgres", "redis"]
    assert store.list_children("postgres") == ["db1", "db2"]
    assert store.list_children("missing") == [] and store.list_children("postgres/db1/.lock") == []


def test_delete_is_quiet_about_missing_keys_and_prunes_directories(store):
    populate(store)
    store.delete(["postgres/db2/b9/manifest.json", "postgres/db2/never", "nowhere/at/all"])
    assert not os.path.exists(os.path.join(store.root, "postgres", "db2"))
    assert store.list_children("postgres") == ["db1"]
    store.delete([])


def test_delete_prefix(store):
    populate(store)
    store.delete_prefix("postgres/db1/b1")
    assert store.list("postgres/db1") == ["postgres/db1/.lock", "postgres/db1/b2/manifest.json"]
    store.delete_prefix("postgres/db1/b1")  # again: nothing to do
    store.delete_prefix("postgres/db1/.lock")  # a key, not a prefix: nothing under it
    assert store.exists("postgres/db1/.lock")
    store.delete_prefix("redis")
    assert store.list_children("") == ["postgres"]
    with pytest.raises(StorageError, match=r"refusing to delete everything in .*repo: give a prefix"):
        store.delete_prefix("/")


def test_os_errors_become_storage_errors_with_a_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = LocalStorage(str(blocker / "repo"))
    with pytest.raises(StorageError, match=r"cannot write .*/file/repo/k: part of the path is a file, not a "
                                           r"directory; fix the repository path"):
        store.put("k", b"x")


def run_python(code, *args):
    """Run code in a child Python that can import the collection; its stdout is a text pipe."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)] + [str(arg) for arg in args], env=env,
                            stdout=subprocess.PIPE, text=True)


def denied_message_as_another_user(root):
    """As root, modes do not apply: try the write in a forked child that became nobody, and return its message."""
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, so it needs no access to the interpreter's files
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                LocalStorage(root).put("postgres/db1/manifest.json", b"{}")
                message = "no error"
            except StorageError as err:
                message = str(err)
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        return pipe.read(), "nobody"


def test_permission_denied_names_the_user_and_the_fix(tmp_path):
    if os.geteuid() == 0:
        # pytest's tmp_path sits under a 0700 directory: nobody needs a path it may traverse (but not write)
        base = Path(tempfile.mkdtemp(prefix="keel-storage-"))
        base.chmod(0o711)
        root = base / "repo"
        root.mkdir(mode=0o755)
        try:
            message, user = denied_message_as_another_user(str(root))
        finally:
            shutil.rmtree(base)
    else:
        root = tmp_path / "repo"
        root.mkdir(mode=0o500)
        with pytest.raises(StorageError) as caught:
            LocalStorage(str(root)).put("postgres/db1/manifest.json", b"{}")
        message, user = str(caught.value), local.whoami()
    assert message == ("cannot write %s/postgres/db1/manifest.json: permission denied; let the user running the "
                       "module (%s) access it, or choose another repository path" % (root, user))


HOLD_LOCK = """
    import sys, time
    from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
    with open_storage(sys.argv[1]).lock("postgres/db1/.lock", timeout=5, owner="pg_backup db1") as info:
        print(info.holder["pid"], flush=True)
        time.sleep(float(sys.argv[2]))
"""


def hold_lock(root, seconds):
    child = run_python(HOLD_LOCK, root, seconds)
    assert int(child.stdout.readline()) == child.pid  # it holds the lock now
    return child


@pytest.mark.usefixtures("open_umask")
def test_lock_contention_names_the_holder(store):
    child = hold_lock(store.root, 60)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            with store.lock("postgres/db1/.lock", timeout=0.5):
                pass
        waited = time.monotonic() - started
        assert 0.5 <= waited < 3
        message = str(caught.value)
        assert message.startswith("gave up after 0.5s waiting for lock %s/postgres/db1/.lock, held by host %s pid %d "
                                  "(pg_backup db1) since " % (store.root, os.uname()[1], child.pid))
        assert "wait for that run to finish, stop it, or raise the lock timeout" in message
        assert caught.value.holder["pid"] == child.pid
        assert mode_of(os.path.join(store.root, "postgres/db1/.lock")) == 0o600
    finally:
        child.kill()
        child.wait()


def test_lock_of_a_sigkilled_holder_is_free_at_once(store):
    child = hold_lock(store.root, 60)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    started = time.monotonic()
    with store.lock("postgres/db1/.lock", timeout=2) as info:
        assert time.monotonic() - started < 0.5
        assert info.holder["pid"] == os.getpid()
        assert re.fullmatch(r"took over lock %s/postgres/db1/\.lock from host %s pid %d \(pg_backup db1\) since "
                            r"\S+: it ended without releasing it" % (store.root, os.uname()[1], child.pid),
                            info.took_over)
        assert info.warnings == [info.took_over]
        record = json.loads(Path(store.root, "postgres/db1/.lock").read_text())
        assert record["pid"] == os.getpid() and record["host"] == os.uname()[1] and "since" in record
    assert not os.path.exists(os.path.join(store.root, "postgres/db1/.lock"))  # released: removed


def test_waiter_gets_the_lock_when_the_holder_finishes(store):
    child = hold_lock(store.root, 0.7)
    try:
        started = time.monotonic()
        with store.lock("postgres/db1/.lock", timeout=10, owner="second") as info:
            assert 0.2 < time.monotonic() - started < 5
            assert info.holder["owner"] == "second"
            assert info.took_over is None  # released properly: nothing to report
    finally:
        child.wait()


def test_lock_is_exclusive_within_one_process_too(store):
    with store.lock("a/.lock", timeout=0):
        with pytest.raises(LockTimeout, match=r"held by host .* pid %d" % os.getpid()):
            with store.lock("a/.lock", timeout=0):
                pass
    with store.lock("a/.lock", timeout=0):
        pass  # released and taken again


def test_lock_arguments_are_checked(store):
    with pytest.raises(ConfigError, match=r"lock timeout must be a number of seconds >= 0, not -1"):
        store.lock("a/.lock", timeout=-1)
    with pytest.raises(ConfigError, match=r"lock ttl must be a number of seconds > 0"):
        store.lock("a/.lock", timeout=1, ttl=0)


def test_cleanup_incomplete_removes_what_a_killed_writer_left(store):
    store.put("postgres/db1/b1/manifest.json", b"{}")
    child = run_python("""
        import sys, time
        from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
        writer = open_storage(%r).writer("postgres/db1/b2/dump")
        writer.write(b"x" * 3 * 1024 * 1024)
        writer._file.flush()
        print("written", flush=True)
        time.sleep(60)
    """ % store.root)
    assert child.stdout.readline().strip() == "written"
    child.kill()
    child.communicate()
    [partial] = [name for name in files_under(store.root) if ".partial-" in name]
    assert store.list("postgres") == ["postgres/db1/b1/manifest.json"]  # the partial is not a key
    assert store.cleanup_incomplete("postgres/db2") == []  # elsewhere: untouched
    removed = store.cleanup_incomplete("postgres")
    assert len(removed) == 1
    assert re.fullmatch(r"removed unfinished write %s \(3\.0 MiB, last written \d{4}-\d\d-\d\dT[\d:]{8}Z\)"
                        % re.escape(os.path.join(store.root, partial)), removed[0])
    assert files_under(store.root) == ["postgres/db1/b1/manifest.json"]
    assert os.listdir(os.path.join(store.root, "postgres/db1")) == ["b1"]
    assert store.cleanup_incomplete("") == []
