# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RESP on a plain socket (TLS optional): commands, replies, pipelines and raw bounded reads, with a deadline
on every wait.
"""

import contextlib
import socket

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError, first_line
from ansible_collections.keel.ops.plugins.module_utils._process import os_reason


CHUNK = 1024 * 1024
POLL = 0.01


@contextlib.contextmanager
def failing_as(what, advice):
    """OSError or UnicodeDecodeError inside become a RedisError: what was being done, why it failed, what to do."""
    try:
        yield
    except (OSError, UnicodeDecodeError) as error:
        raise RedisError("%s failed: %s; %s" % (what, os_reason(error), advice))


class ReplyError(str):
    """An error reply (-ERR ...), kept in pipelined results instead of raised."""


def encode(*args):
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if not isinstance(arg, bytes):
            arg = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class RespConnection:
    """Requests and replies on a socket, pipelined, with a buffer that never holds more than a chunk or a reply."""

    def __init__(self, sock, where):
        self.sock = sock
        self.where = where
        self.buf = bytearray()
        self.pos = 0

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (OSError, socket.timeout) as error:
            raise RedisError("lost the connection to %s: %s" % (self.where, first_line(error)))

    def _fill(self):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        try:
            data = self.sock.recv(CHUNK)
        except (OSError, socket.timeout) as error:
            raise RedisError("lost the connection to %s: %s" % (self.where, first_line(error)))
        if not data:
            raise RedisError("%s closed the connection" % self.where)
        self.buf += data

    def line(self, before_read=None):
        """The next line; before_read() is called before each read from the socket (it may raise)."""
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                text = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return text
            if before_read is not None:
                before_read()
            self._fill()

    def _malformed(self, error):
        return RedisError("%s sent a malformed reply (%s): is it a Redis server, and login_port/tls right?"
                          % (self.where, first_line(error)))

    def take(self, size):
        while len(self.buf) - self.pos < size + 2:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + size])
        self.pos += size + 2
        return data

    def reply(self):
        try:
            return self._reply()
        except (ValueError, IndexError) as error:
            raise self._malformed(error)

    def _reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.take(size)
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _index in range(count)]
        raise RedisError("unexpected reply from %s: %r" % (self.where, line[:80]))

    def replies(self, count):
        """`count` replies; bulk, integer and status replies already in the buffer take a short path."""
        try:
            return self._replies(count)
        except (ValueError, IndexError) as error:
            raise self._malformed(error)

    def _replies(self, count):
        out = []
        for _index in range(count):
            buf, pos = self.buf, self.pos
            end = buf.find(b"\r\n", pos)
            kind = buf[pos] if end >= 0 else 0
            if kind == 36:  # $
                size = int(buf[pos + 1:end])
                if size >= 0 and len(buf) >= end + 4 + size:
                    out.append(bytes(buf[end + 2:end + 2 + size]))
                    self.pos = end + 4 + size
                    continue
            elif kind == 58:  # :
                out.append(int(buf[pos + 1:end]))
                self.pos = end + 2
                continue
            out.append(self._reply())
        return out

    def request(self, *args):
        self.send(encode(*args))
        return self.reply()

    def call(self, *args):
        reply = self.request(*args)
        if isinstance(reply, ReplyError):
            raise RedisError("%s refused %s: %s" % (self.where, args[0], reply))
        return reply

    def pipeline(self, commands):
        """Send every command at once, then read every reply (errors included, as ReplyError)."""
        return self.pipeline_raw(b"".join(encode(*command) for command in commands), len(commands))

    def pipeline_raw(self, data, count):
        """Send commands already in RESP, then read their `count` replies."""
        self.send(data)
        return self.replies(count)

    def command(self):
        """A command a client sent us (we play master to a temporary replica): a list of bytes."""
        line = self.line()
        if not line.startswith(b"*"):
            return line.split()
        try:
            return [self.take(int(self.line()[1:])) for _index in range(int(line[1:]))]
        except ValueError as error:
            raise self._malformed(error)

    def read_into(self, view):
        """Fill a memoryview with bytes as they come (what is buffered first); the count, 0 at the end."""
        if self.pos < len(self.buf):
            data = self.read_raw(len(view))
            view[:len(data)] = data
            return len(data)
        try:
            return self.sock.recv_into(view)
        except (OSError, socket.timeout) as error:
            raise RedisError("lost the connection to %s: %s" % (self.where, first_line(error)))

    def read_raw(self, size):
        """Bytes as they come: what is buffered first, then straight from the socket (b"" at its end)."""
        if self.pos < len(self.buf):
            data = bytes(self.buf[self.pos:self.pos + size])
            self.pos += len(data)
            return data
        try:
            return self.sock.recv(size)
        except (OSError, socket.timeout) as error:
            raise RedisError("lost the connection to %s: %s" % (self.where, first_line(error)))

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()
