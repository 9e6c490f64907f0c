# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An RDB by BGSAVE: ask the server to save (or wait for a save already running), then stream the file it
writes, following it while it grows, without ever holding it whole; and prove that the file on this host is the
server's own (DiskRdb).
"""

import contextlib
import os
import re
import time

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import CHUNK, POLL, failing_as, os_reason


_TEMP_RDB = re.compile(r"^temp-\d+\.rdb$")


def _children_active(info):
    return any(int(info.get(field, 0) or 0) for field in
               ("rdb_bgsave_in_progress", "aof_rewrite_in_progress", "module_fork_in_progress"))


class BgsaveRdb:
    """BGSAVE, then the RDB it writes, as a reader.

    The child's temp-<pid>.rdb is read while it grows, so storing overlaps with saving; once the save is over
    (rdb_bgsave_in_progress back to 0, rdb_last_bgsave_status ok, LASTSAVE at or after our request) the rest is
    read to its end. A BGSAVE already running is waited for, then ours is started: a snapshot holds everything
    written before it was asked for. Where the temp file cannot be told apart, the final file is read instead.
    """

    def __init__(self, server, rdb_path, timeout):
        self.server = server
        self.path = rdb_path
        self.directory = os.path.dirname(rdb_path)
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.handle = None
        self.complete = False
        self.tailed = False
        self.known = set()
        self.requested = self._start()

    def _temp_files(self):
        try:
            return set(name for name in os.listdir(self.directory) if _TEMP_RDB.match(name))
        except OSError as error:
            raise RedisError("cannot read the server's RDB directory %s: %s; run the module as root or the redis "
                             "user (become: true), or use snapshot_method: replication"
                             % (self.directory, error.strerror or error))

    def _check_deadline(self, waiting_for):
        if time.monotonic() > self.deadline:
            raise RedisError("%s: gave up after %ss waiting for %s; raise timeout"
                             % (self.server.describe(), self.timeout, waiting_for))

    def _start(self):
        while True:
            self.known = self._temp_files()
            requested = int(self.server.call("reading TIME", "TIME")[0])
            try:
                self.server.call("starting BGSAVE", "BGSAVE")
                return requested
            except RedisError as error:
                if "in progress" not in str(error) and "child process is active" not in str(error):
                    raise
            self._wait_idle()

    def _wait_idle(self):
        """Wait out a save (or AOF rewrite) someone else started, so that ours can start."""
        while _children_active(self.server.info("persistence")):
            self._check_deadline("another BGSAVE or AOF rewrite to finish")
            time.sleep(POLL * 5)

    def _save_over(self):
        """True once our save ended well; raises if it failed."""
        info = self.server.info("persistence")
        if int(info.get("rdb_bgsave_in_progress", 0)):
            self._check_deadline("BGSAVE to finish")
            return False
        if info.get("rdb_last_bgsave_status") != "ok":
            raise RedisError("BGSAVE failed on %s (rdb_last_bgsave_status:%s); the server's log says why - often a "
                             "full disk, an unwritable dir, or a fork refused for lack of memory"
                             % (self.server.describe(), info.get("rdb_last_bgsave_status")))
        if int(info.get("rdb_last_save_time", 0)) < self.requested:
            raise RedisError("BGSAVE on %s ended but LASTSAVE (%s) is older than the request (%s): the snapshot "
                             "was not taken" % (self.server.describe(), info.get("rdb_last_save_time"),
                                                self.requested))
        return True

    def _open(self):
        """Our child's temp file as soon as it shows up, else the final file once the save is over."""
        while True:
            new = self._temp_files() - self.known
            if len(new) == 1:
                with contextlib.suppress(FileNotFoundError):  # renamed already: the final file is read below
                    self.handle = self._open_file(os.path.join(self.directory, new.pop()))
                    self.tailed = True
                    return
            if self._save_over():
                self.complete = True
                self.handle = self._open_final()
                return
            time.sleep(POLL)

    @staticmethod
    def _open_file(path):
        """The RDB (or the child's temp file) for reading; a symlink is never followed."""
        try:
            return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
        except FileNotFoundError:
            raise
        except OSError as error:
            raise RedisError("cannot read the RDB %s: %s; run the module as root or the redis user (become: true), "
                             "or use snapshot_method: replication" % (path, error.strerror or error))

    def _open_final(self):
        handle = self._open_file(self.path)
        if os.fstat(handle.fileno()).st_mtime < self.requested - 1:
            handle.close()
            raise RedisError("%s is older than the BGSAVE just taken: is dir/dbfilename (%s) where the server saves?"
                             % (self.path, self.path))
        return handle

    def read(self, size=-1):
        size = CHUNK if size is None or size < 0 else size
        if self.handle is None:
            try:
                self._open()
            except FileNotFoundError as error:
                raise RedisError("the RDB %s is missing after BGSAVE ended: is dir/dbfilename where the server "
                                 "saves? (%s)" % (self.path, os_reason(error)))
        while True:
            with failing_as("reading the RDB %s" % self.path, "check the disk it is on"):
                data = self.handle.read(size)
            if data or self.complete:
                return data
            if self.tailed and self._renamed_into_place():
                self.complete = True  # the child renames its file only once it is written, synced and closed
            elif self._save_over():
                self.complete = True  # the child closed the file before it exited: what is left is final
            else:
                time.sleep(POLL)

    def _renamed_into_place(self):
        """True once the temp file being read is the RDB at its final path. Redis renames it there as the last step
        of a save that succeeded, so the stream is complete without waiting for the server to notice its child
        has exited (it looks every 100 ms, at hz 10) and report the save over in INFO."""
        with failing_as("reading the RDB %s" % self.path, "check the disk it is on"):
            try:
                final = os.stat(self.path)
            except FileNotFoundError:
                return False
            mine = os.fstat(self.handle.fileno())
        return (final.st_dev, final.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self):
        if self.handle is not None:
            self.handle.close()
