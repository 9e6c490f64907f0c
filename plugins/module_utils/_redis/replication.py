# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An RDB over the replication protocol, from anywhere the server can be reached: act as a replica (REPLCONF
capa eof, PSYNC ? -1), read the payload in its $<length> or diskless $EOF:<mark> form, and hang up at the end;
the deadline holds even while the master sends keep-alive newlines.
"""

import time

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import CHUNK, encode


FILL = 256 * 1024  # the least a replication read gathers before passing data on (unless the RDB ends)
EOF_MARK_SIZE = 40


class ReplicationRdb:
    """An RDB streamed from a server as a replica would receive it, the way redis-cli --rdb does.

    REPLCONF capa eof (we accept the diskless form), REPLCONF rdb-only 1 (7.0+: only the RDB is wanted),
    PSYNC ? -1, then a "$<length>" bulk or a diskless "$EOF:<40-byte mark>" stream ending with the mark. Exactly
    the payload is returned, 1 MiB at a time; the connection is closed at its end.
    """

    def __init__(self, connection, timeout):
        self.where = connection.describe()
        self.resp = connection.open_resp()
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        # Keepalives arrive every second while the server prepares the RDB; a minute of silence is a dead link.
        self.idle = max(connection.timeout, 60)
        self.remaining = None
        self.mark = None
        self.held = b""
        self.done = False
        try:
            self.replid, self.offset = self._handshake()
            self._payload_header()
        except BaseException:
            self.close()
            raise
        self.resp.sock.settimeout(self.idle)

    def _handshake(self):
        # Errors are fine here: capa is advisory, and rdb-only only exists from Redis 7.0.
        self.resp.request("REPLCONF", "capa", "eof", "capa", "psync2")
        self.resp.request("REPLCONF", "rdb-only", "1")
        self.resp.send(encode("PSYNC", "?", "-1"))
        line = self._line()
        if line.startswith(b"+FULLRESYNC"):
            parts = line.split()
            if len(parts) != 3 or not parts[2].isdigit():
                raise RedisError("%s answered PSYNC with a malformed %r" % (self.where, line[:80]))
            return parts[1].decode("ascii", "replace"), int(parts[2])
        if line.startswith(b"-"):
            text = line[1:].decode("utf-8", "replace")
            if text.startswith("NOAUTH"):
                raise RedisError("%s requires a password (%s): set login_password" % (self.where, text))
            advice = "grant the user +psync +replconf (ACL SETUSER)" if "NOPERM" in text else \
                "check that the server accepts replicas (a replica of a replica works too)"
            raise RedisError("%s refused replication (PSYNC): %s; %s" % (self.where, text, advice))
        raise RedisError("unexpected answer to PSYNC from %s: %r" % (self.where, line[:80]))

    def _line(self):
        # While it prepares the RDB the server sends bare "\n" keepalives: they end up in front of the next line,
        # and never end one, so the deadline is checked before every read from the socket, not once per line.
        try:
            while True:
                line = self.resp.line(before_read=self._check_deadline).lstrip(b"\n")
                if line:
                    return line
        except RedisError:
            self._check_deadline()  # a read that timed out at the deadline: say so, not "timed out"
            raise

    def _check_deadline(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RedisError("%s did not send its RDB within %ss; raise timeout" % (self.where, self.timeout))
        self.resp.sock.settimeout(min(left, self.idle))

    def _payload_header(self):
        line = self._line()
        if line.startswith(b"$EOF:"):
            self.mark = line[5:]
            if len(self.mark) != EOF_MARK_SIZE:
                raise RedisError("%s sent a malformed diskless RDB header %r" % (self.where, line[:60]))
        elif line.startswith(b"$") and line[1:].isdigit():
            self.remaining = int(line[1:])
        else:
            raise RedisError("%s sent %r where an RDB was expected" % (self.where, line[:80]))

    def read(self, size=-1):
        if self.done:
            return b""
        size = CHUNK if size is None or size < 0 else min(size, CHUNK)
        if self.mark is None:
            return self._read_counted(size)
        return self._read_marked(size)

    def _receive(self, size, mark=None):
        """Up to `size` bytes, gathered until there are at least FILL of them, or the mark, or the end.

        A socket hands over what arrived (often a few KB); passing such slivers downstream costs a Python round
        of compression, hashing, checking and writing each, so they are gathered first."""
        buf = bytearray(size)
        view = memoryview(buf)
        filled = 0
        while filled < min(size, FILL):
            got = self.resp.read_into(view[filled:])
            if not got:
                break
            filled += got
            if mark is not None and buf.find(mark, max(0, filled - got - EOF_MARK_SIZE), filled) >= 0:
                break
        return bytes(view[:filled])

    def _read_counted(self, size):
        if self.remaining == 0:
            self._finish()
            return b""
        data = self._receive(min(size, self.remaining))
        if not data:
            raise RedisError("%s closed the replication stream %d bytes before the end of the RDB"
                             % (self.where, self.remaining))
        self.remaining -= len(data)
        return data

    def _read_marked(self, size):
        # The mark may straddle two reads: the last 40 bytes are held back until more data shows they are not it.
        while True:
            data = self._receive(size, self.mark)
            if not data:
                raise RedisError("%s closed the replication stream before the end of the diskless RDB" % self.where)
            window = self.held + data
            found = window.find(self.mark)
            if found >= 0:
                self._finish()
                return window[:found]
            out, self.held = window[:-EOF_MARK_SIZE], window[-EOF_MARK_SIZE:]
            if out:
                return out

    def _finish(self):
        self.done = True
        self.close()

    def close(self):
        self.resp.close()
