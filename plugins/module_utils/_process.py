# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Child processes and the files they work in: a client tool run with its stderr kept for the error message,
wide pipes, private work directories, and fsync of a directory after a rename."""

import errno
import fcntl
import functools
import os

from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError, first_line


STDERR_TAIL = 2000
PIPE_SIZE = 1024 * 1024  # the pipeline reads 1 MiB chunks
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class ToolError(KeelError):
    """A child process (pg_dump, redis-check-rdb, a stop hook...) failed; the message carries its stderr."""


class Child:
    """A client tool run with its stderr in a file (no pipe to fill up), whose failure is never ignored."""

    def __init__(self, argv, env, workdir, stdin=None, stdout=None):
        self.name = os.path.basename(argv[0])
        self.stderr_path = os.path.join(workdir, "%s.%d.stderr" % (self.name, id(self)))
        import subprocess  # here, not at the top: keel-wal loads this file once per WAL segment

        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env)
        for pipe in (self.proc.stdout, self.proc.stdin):
            if pipe is not None:
                _widen_pipe(pipe)

    def stderr_tail(self):
        with open(self.stderr_path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace").strip()
        return text[-STDERR_TAIL:]

    def finish(self):
        """Wait and raise with the tool's own words when it failed."""
        code = self.proc.wait()
        if code != 0:
            output = self.stderr_tail() or "no error output"
            raise ToolError("%s failed (exit status %d): %s" % (self.name, code, output))
        return self.stderr_tail()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _widen_pipe(pipe):
    """A 1 MiB pipe instead of 64 KiB lets the tool keep producing while this process compresses a chunk.
    Linux only; elsewhere, or past the system's limit, the default stays."""
    try:
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, ValueError):
        pass


def workdir():
    import tempfile
    return tempfile.mkdtemp(prefix="keel-backup-")


def fsync_dir(path):
    """Make a rename or a new entry in `path` durable. Never follows a symlink; a file system that cannot sync a
    directory (EINVAL) keeps the rename anyway."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def sync_filesystems(paths):
    """Make everything written under `paths` durable: one syncfs(2) per file system they are on (one call instead of
    an fsync per file and directory), or sync(2) where syncfs cannot be called."""
    devices = {}
    for path in paths:
        try:
            devices.setdefault(os.stat(path).st_dev, path)
        except OSError:
            continue
    try:
        import ctypes  # pylint: disable=import-outside-toplevel  # only the callers that restore many files need it
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    for path in devices.values():
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)


def os_reason(error):
    """What an OSError says, with the path it names: "Permission denied: /var/lib/redis/dump.rdb"."""
    if isinstance(error, OSError) and error.strerror:
        return "%s: %s" % (error.strerror, error.filename) if error.filename else error.strerror
    return first_line(error)


def failures_reported(what, advice):
    """Last line of defence for a public engine function: an OSError or UnicodeDecodeError that nothing more
    precise caught becomes a KeelError naming the task, the system's reason and the path, and what to do."""
    def wrap(function):
        @functools.wraps(function)
        def run(*args):
            try:
                return function(*args)
            except (OSError, UnicodeDecodeError) as error:
                raise KeelError("%s failed: %s; %s" % (what, os_reason(error), advice))
        return run
    return wrap
