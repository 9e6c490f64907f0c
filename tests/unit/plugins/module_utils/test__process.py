"""Child processes with real tiny children: output, failures with their stderr tail, kill; private work dirs; fsync."""

import errno
import fcntl
import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError

NAME = os.path.basename(sys.executable)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def child(tmp_path, code, **streams):
    return process.Child([sys.executable, "-c", code], dict(os.environ), str(tmp_path), **streams)


def test_a_child_reads_and_writes_the_pipes_it_is_given_and_finish_returns_its_stderr(tmp_path):
    running = child(tmp_path, "import sys; sys.stdout.write(sys.stdin.read().upper()); sys.stderr.write('done\\n')",
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _err = running.proc.communicate(b"dump bytes")
    assert out == b"DUMP BYTES"
    assert running.finish() == "done"


def test_a_failed_child_reports_the_tail_of_its_stderr(tmp_path):
    noise = "x" * 5000 + "FATAL: the real reason"
    running = child(tmp_path, "import sys; sys.stderr.write(%r); sys.exit(3)" % noise)
    with pytest.raises(process.ToolError) as caught:
        running.finish()
    assert isinstance(caught.value, KeelError)
    assert str(caught.value) == "%s failed (exit status 3): %s" % (NAME, noise[-process.STDERR_TAIL:])


def test_a_child_that_fails_silently_says_it_left_no_error_output(tmp_path):
    with pytest.raises(process.ToolError, match=r"failed \(exit status 1\): no error output$"):
        child(tmp_path, "raise SystemExit(1)").finish()


def test_stderr_that_is_not_utf8_still_makes_a_message(tmp_path):
    running = child(tmp_path, "import sys; sys.stderr.buffer.write(b'bad \\xff byte'); sys.exit(2)")
    with pytest.raises(process.ToolError, match="exit status 2\\): bad \ufffd byte"):
        running.finish()


def test_kill_ends_a_running_child_and_its_failure_is_not_ignored(tmp_path):
    running = child(tmp_path, "import time; time.sleep(600)")
    running.kill()
    assert running.proc.returncode == -9
    running.kill()  # a second kill of a finished child is harmless
    with pytest.raises(process.ToolError, match="exit status -9"):
        running.finish()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are a Linux feature")
def test_the_pipe_a_child_writes_into_is_widened(tmp_path):
    with open("/proc/sys/fs/pipe-max-size") as handle:
        limit = int(handle.read())
    running = child(tmp_path, "pass", stdout=subprocess.PIPE)
    try:
        size = fcntl.fcntl(running.proc.stdout.fileno(), F_GETPIPE_SZ)
    finally:
        running.proc.stdout.close()
        running.finish()
    assert size >= min(process.PIPE_SIZE, limit)


def test_a_pipe_that_cannot_be_widened_is_left_alone(tmp_path):
    with open(tmp_path / "plain-file", "wb") as regular:
        process._widen_pipe(regular)  # not a pipe: EBADF is swallowed
    process._widen_pipe(regular)  # closed: ValueError is swallowed


def test_each_workdir_is_a_new_private_directory():
    first, second = process.workdir(), process.workdir()
    try:
        assert first != second
        for path in (first, second):
            info = os.lstat(path)
            assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
            assert info.st_uid == os.geteuid() and os.listdir(path) == []
    finally:
        shutil.rmtree(first)
        shutil.rmtree(second)


def test_fsync_dir_syncs_a_directory_but_never_follows_a_symlink_or_opens_a_file(tmp_path):
    (tmp_path / "real").mkdir()
    process.fsync_dir(str(tmp_path / "real"))
    os.symlink("real", str(tmp_path / "link"))
    with pytest.raises(OSError) as caught:
        process.fsync_dir(str(tmp_path / "link"))
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        process.fsync_dir(str(tmp_path / "file"))
