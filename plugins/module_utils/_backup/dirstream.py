# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directories as streams: a directory (pg_dump's directory format) read as one tar stream, and a tar stream
written back out as a directory, with tarfile's 'data' filter so that no archive can plant setuid files,
foreign owners or paths outside the directory."""

import os
import tarfile
import threading

from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError, KeelError


class PipeThread:
    """A pipe with a thread on the far end; close() joins it and re-raises what it failed with (a KeelError as
    it is, anything else as an IntegrityError naming `what`)."""

    what = "directory stream"

    def __init__(self, work, *args):
        read_fd, write_fd = os.pipe()
        self._read, self._write = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(work,) + args)
        self._thread.daemon = True
        self._thread.start()

    def _run(self, work, *args):
        try:
            work(*args)
        except Exception as error:  # pylint: disable=broad-except
            self.error = error

    def _finish(self, mine, theirs):
        mine.close()  # an early close makes the far end fail fast instead of blocking forever
        self._thread.join()
        theirs.close()
        self._raise()

    def _raise(self):
        if isinstance(self.error, KeelError):
            raise self.error
        if self.error is not None:
            raise IntegrityError("%s failed: %s" % (self.what, self.error))


class PipeReader(PipeThread):
    """Read what the thread writes into the pipe. The end of the stream is only reported once the thread ended
    well, so a stream cut short by a failure is never taken for a whole one."""

    def read(self, size=-1):
        data = self._read.read(size)
        if not data:
            self._thread.join()
            self._raise()
        return data

    def close(self):
        self._finish(self._read, self._write)


class PipeWriter(PipeThread):
    """Write what the thread reads from the pipe."""

    def write(self, data):
        self._write.write(data)
        return len(data)

    def flush(self):
        pass

    def close(self):
        self._finish(self._write, self._read)


class DirectoryReader(PipeReader):
    """A directory read as a tar stream (pg_dump's directory format, stored as one artifact)."""

    def __init__(self, directory):
        PipeReader.__init__(self, self._produce, directory)

    def _produce(self, directory):
        with self._write as out:
            with tarfile.open(fileobj=out, mode="w|") as archive:
                archive.add(directory, arcname=".")


def _extract_as_data(archive, member, directory):
    """Extract with tarfile's 'data' filter: no setuid/setgid bits, no owners from the archive, nothing outside
    the directory. Pythons without extraction filters get the same effect by hand."""
    if hasattr(tarfile, "data_filter"):
        archive.extract(member, directory, filter="data")
        return
    member.mode &= 0o755 if member.isdir() else 0o644
    member.uid = member.gid = os.getuid()
    member.uname = member.gname = ""
    archive.extract(member, directory, set_attrs=False)


class DirectoryWriter(PipeWriter):
    """A tar stream written out as files under a directory (the way back for DirectoryReader)."""

    def __init__(self, directory):
        PipeWriter.__init__(self, self._consume, directory)

    def _consume(self, directory):
        with self._read as source:
            with tarfile.open(fileobj=source, mode="r|") as archive:
                for member in archive:
                    parts = member.name.split("/")
                    if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                        raise IntegrityError("unexpected entry %r in a directory artifact" % member.name)
                    _extract_as_data(archive, member, directory)
