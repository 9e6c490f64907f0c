# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis for redis_snapshot: connections (password, ACL user, TLS), BGSAVE and the RDB it writes, an RDB over the
replication protocol, redis-check-rdb on a stream, temporary servers that load an RDB from us acting as their
master, and DUMP/RESTORE in bulk.

Redis is spoken to through a small RESP connection on a plain socket (TLS optional), not redis-py: the
replication stream needs bounded raw reads (1 MiB at a time) and DUMP/RESTORE needs pipelines of thousands of
commands that redis-py parses slowly; and importing redis-py (with its asyncio half) costs a tenth of a second of
every run. A connection failure is reported at once, with no retries or backoff.

An RDB is never held in memory nor written to disk here: it streams past an RdbInspector, which feeds
redis-check-rdb (checksum, structure, key totals) and notes the RESIZEDB records that give each database's
exact key count, and on to wherever it goes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import fcntl
import hmac
import os
import re
import secrets
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._errors import DependencyError, IntegrityError, KeelError

CHUNK = 1024 * 1024
FILL = 256 * 1024  # the least a replication read gathers before passing data on (unless the RDB ends)
POLL = 0.01
EOF_MARK_SIZE = 40
PIPELINE_BYTES = 8 * 1024 * 1024  # RESTORE commands sent at once
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the fcntl module only from Python 3.10
RESIZEDB_RECORDS_MAX = 100000


class RedisError(KeelError):
    """A Redis server refused, failed or could not be reached; the message says which and what to do."""


class RedisAuthError(RedisError):
    """The server refused our credentials (or wants some): waiting for it longer will not help."""


def first_line(error):
    text = str(error).strip() or error.__class__.__name__
    return text.splitlines()[0]


def os_reason(error):
    """What an OSError says, with the path it names: "Permission denied: /var/lib/redis/dump.rdb"."""
    if isinstance(error, OSError) and error.strerror:
        return "%s: %s" % (error.strerror, error.filename) if error.filename else error.strerror
    return first_line(error)


@contextlib.contextmanager
def failing_as(what, advice):
    """OSError or UnicodeDecodeError inside become a RedisError: what was being done, why it failed, what to do."""
    try:
        yield
    except (OSError, UnicodeDecodeError) as error:
        raise RedisError("%s failed: %s; %s" % (what, os_reason(error), advice))


# --- connections ------------------------------------------------------------------------------------

# The connection options of modules that talk to Redis (documented in plugins/modules/redis_snapshot.py).
CONNECTION_SPEC = dict(
    login_host=dict(type="str", default="localhost"),
    login_port=dict(type="int", default=6379),
    login_unix_socket=dict(type="path"),
    login_user=dict(type="str"),
    login_password=dict(type="str", no_log=True),
    tls=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True),
    ca_certs=dict(type="path"),
    client_cert_file=dict(type="path"),
    client_key_file=dict(type="path", no_log=False),
    connect_timeout=dict(type="float", default=10),
)


class Connection:
    """How to reach one Redis server; the password stays in this object and on the wire, nowhere else."""

    def __init__(self, host=None, port=6379, unix_socket=None, user=None, password=None, tls=False,
                 validate_certs=True, ca_certs=None, client_cert_file=None, client_key_file=None, timeout=10.0):
        self.host = host or "127.0.0.1"
        self.port = port or 6379
        self.unix_socket = unix_socket
        self.user = user
        self.password = password
        self.tls = tls
        self.validate_certs = validate_certs
        self.ca_certs = ca_certs
        self.client_cert_file = client_cert_file
        self.client_key_file = client_key_file
        self.timeout = timeout

    def describe(self):
        if self.unix_socket:
            return "redis at unix:%s" % self.unix_socket
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "redis at %s%s:%s" % ("rediss://" if self.tls else "", host, self.port)

    def ssl_context(self):
        try:
            context = ssl.create_default_context(cafile=self.ca_certs)
            if not self.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.client_cert_file:
                context.load_cert_chain(self.client_cert_file, self.client_key_file)
        except (OSError, ValueError) as error:
            raise RedisError("cannot load the TLS files for %s (%s): check ca_certs, client_cert_file and "
                             "client_key_file" % (self.describe(), os_reason(error)))
        return context

    def open_socket(self):
        try:
            if self.unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.unix_socket)
                return sock
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = self.ssl_context().wrap_socket(sock, server_hostname=self.host)
            return sock
        except ssl.SSLError as error:
            raise RedisError("TLS with %s failed: %s; check ca_certs, client_cert_file/client_key_file and "
                             "validate_certs" % (self.describe(), first_line(error)))
        except (OSError, socket.timeout) as error:
            raise RedisError("cannot connect to %s: %s" % (self.describe(), first_line(error)))

    def open_resp(self, db=0):
        """A raw RESP connection, authenticated and on database `db`."""
        resp = RespConnection(self.open_socket(), self.describe())
        if self.password:
            args = ("AUTH", self.user, self.password) if self.user else ("AUTH", self.password)
            reply = resp.request(*args)
            if isinstance(reply, ReplyError):
                resp.close()
                raise RedisAuthError(auth_advice(self, str(reply)))
        if db:
            resp.call("SELECT", db)
        return resp


def auth_advice(connection, text):
    return ("authentication to %s failed (%s): check login_password%s" %
            (connection.describe(), text, " and login_user" if connection.user else
             ", and login_user for an ACL user"))


def refusal(where, action, reply):
    """The message for an error reply, with what to do about the usual ones."""
    text = str(reply)
    if text.startswith(("NOAUTH", "WRONGPASS")):
        user = " and login_user" if "user" in text else ""
        return "%s refused %s (%s): set login_password%s" % (where, action, text, user)
    if text.startswith("NOPERM"):
        return "%s refused %s: %s; grant the user that command (ACL SETUSER)" % (where, action, text)
    return "%s failed while %s: %s" % (where, action, text)


class Server:
    """The Redis server a task works on: control commands on one RESP connection, failures as RedisError."""

    def __init__(self, connection):
        self.connection = connection
        self.resp = connection.open_resp()

    def call(self, action, *args):
        reply = self.resp.request(*args)
        if isinstance(reply, ReplyError):
            raise RedisError(refusal(self.describe(), action, reply))
        return reply

    def info(self, section=None):
        return parse_info(self.call("reading INFO", "INFO", *([section] if section else [])))

    def config_get(self, name):
        reply = self.call("reading CONFIG %s" % name, "CONFIG", "GET", name)
        return reply[1].decode("utf-8", "replace") if reply else None

    def describe(self):
        return self.connection.describe()

    def close(self):
        self.resp.close()


def parse_info(text):
    """INFO's "name:value" lines as a dict of strings; the dbN lines as dicts ({"keys": "3", ...})."""
    info = {}
    for line in text.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if not colon or name.startswith("#"):
            continue
        if re.match(r"^db\d+$", name):
            value = dict(part.partition("=")[::2] for part in value.split(","))
        info[name] = value
    return info


def keyspace(info):
    """{"0": {"keys": n, "expires": m}, ...} from INFO (redis-py parses db0:keys=..,expires=.. into dicts)."""
    result = {}
    for name, value in info.items():
        if re.match(r"^db\d+$", name) and isinstance(value, dict):
            result[name[2:]] = {"keys": int(value.get("keys", 0)), "expires": int(value.get("expires", 0))}
    return result


def parse_version(text):
    """(major, minor, patch) of "7.0.15"; missing parts are 0."""
    numbers = [int(part) for part in re.findall(r"\d+", text or "")[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))


# The RDB format each Redis version writes (and the newest it reads). Newer versions than listed write at least 12.
_RDB_VERSIONS = (((7, 4), 12), ((7, 2), 11), ((7, 0), 10), ((5, 0), 9), ((4, 0), 8), ((3, 2), 7), ((0, 0), 6))


def rdb_version_of(version):
    major_minor = parse_version(version)[:2] if isinstance(version, str) else tuple(version[:2])
    return next(rdb for since, rdb in _RDB_VERSIONS if major_minor >= since)


# --- RESP on a plain socket -------------------------------------------------------------------------

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


# --- BGSAVE -----------------------------------------------------------------------------------------

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
            if self._save_over():
                self.complete = True  # the child closed the file before it exited: what is left is final
            else:
                time.sleep(POLL)

    def close(self):
        if self.handle is not None:
            self.handle.close()


# --- the replication protocol -----------------------------------------------------------------------

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


# --- looking at an RDB as it streams past -----------------------------------------------------------

# SELECTDB (0xFE) <database as a 6- or 14-bit length> RESIZEDB (0xFB): where each database's key counts are.
_SELECT_RESIZE = re.compile(b"\xfe(?:[\x00-\x3f]|[\x40-\x7f][\x00-\xff])\xfb", re.S)
_SCAN_TAIL = 24  # a match (4 bytes at most) and two lengths (9 bytes each at most)


def read_length(data, pos):
    """An RDB length-encoded integer at data[pos:]: (value, next position), None if the data ends first, or
    False if the bytes there hold a special encoding rather than a length."""
    if pos >= len(data):
        return None
    first = data[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, pos + 1
    if kind == 1:
        return (((first & 0x3F) << 8) | data[pos + 1], pos + 2) if pos + 2 <= len(data) else None
    width = {0x80: 4, 0x81: 8}.get(first)
    if width is None:
        return False
    end = pos + 1 + width
    return (int.from_bytes(data[pos + 1:end], "big"), end) if end <= len(data) else None


class ResizeDbScanner:
    """Every place that looks like SELECTDB+RESIZEDB, by offset. Values in the data can look like one too: only
    the offsets redis-check-rdb reports as "Selecting DB" are used in the end."""

    def __init__(self):
        self.records = {}
        self.offset = 0
        self.tail = b""
        self.overflow = False

    def feed(self, data):
        # The chunk itself, then the seam with the previous one (its tail and our head), without copying the chunk.
        self._scan(data, self.offset)
        self._scan(self.tail + data[:2 * _SCAN_TAIL], self.offset - len(self.tail))
        self.offset += len(data)
        self.tail = (self.tail + data)[-_SCAN_TAIL:] if len(data) < _SCAN_TAIL else data[-_SCAN_TAIL:]

    def _scan(self, window, base):
        for match in _SELECT_RESIZE.finditer(window):
            at = base + match.end() - 1
            if at in self.records:
                continue
            sizes = self._sizes(window, match.end())
            if sizes is None:
                continue  # cut off at the end of the window: the next seam sees it whole
            if sizes is not False and len(self.records) < RESIZEDB_RECORDS_MAX:
                self.records[at] = sizes
            elif sizes is not False:
                self.overflow = True

    @staticmethod
    def _sizes(window, pos):
        keys = read_length(window, pos)
        if not keys:
            return keys
        expires = read_length(window, keys[1])
        if not expires:
            return expires
        return keys[0], expires[0]


_REPORT_LINE = re.compile(r"^\[offset (\d+)\] (.*)$")


def parse_check_report(text):
    """redis-check-rdb's report: verdict, checksum, aux fields, where each database starts, key totals, errors."""
    report = {"ok": False, "checksum": None, "aux": {}, "databases_at": [], "keys": None, "expires": None,
              "already_expired": None, "errors": []}
    failed = False
    for line in text.splitlines():
        line = line.rstrip()
        match = _REPORT_LINE.match(line)
        if match:
            _parse_offset_line(report, int(match.group(1)), match.group(2), failed)
        elif line.startswith("[info] "):
            count, _space, what = line[len("[info] "):].partition(" ")
            field = {"keys read": "keys", "expires": "expires", "already expired": "already_expired"}.get(what)
            if field and count.isdigit():
                report[field] = int(count)
        elif line.startswith("--- RDB ERROR DETECTED ---"):
            failed = True
        elif line.startswith("[additional info] "):
            report["errors"].append(line[len("[additional info] "):])
    report["ok"] = report["ok"] and not failed
    return report


def _parse_offset_line(report, offset, message, failed):
    if failed:
        report["errors"].insert(0, "at byte %d: %s" % (offset, message))
    elif message.startswith("AUX FIELD "):
        name, _sep, value = message[len("AUX FIELD "):].partition(" = ")
        report["aux"][name] = value.strip("'")
    elif message.startswith("Selecting DB ID "):
        report["databases_at"].append((offset, int(message.split()[-1])))
    elif message == "Checksum OK":
        report["checksum"] = "ok"
    elif "checksum disabled" in message:
        report["checksum"] = "disabled"
    elif "RDB looks OK" in message:
        report["ok"] = True


def _grow_pipe(handle):
    with contextlib.suppress(OSError):  # a bigger pipe only smooths the flow; the default works too
        fcntl.fcntl(handle.fileno(), F_SETPIPE_SZ, CHUNK)


def named_link(binary, workdir, name):
    """A link called `name` to a Redis binary: one executable is redis-server or redis-check-rdb by argv[0]."""
    link = os.path.join(workdir, "bin-%s" % os.urandom(4).hex(), name)
    os.makedirs(os.path.dirname(link), mode=0o700)
    os.symlink(binary, link)
    return link


def child_env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}


class RdbCheck:
    """redis-check-rdb reading an RDB on its stdin; its report is read when the stream ends (or it stops)."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.report_path = os.path.join(workdir, "redis-check-rdb.%s.out" % os.urandom(4).hex())
        with failing_as("starting %s" % binary.describe("redis-check-rdb"),
                        "check that it runs here, and that TMPDIR has room"):
            with open(self.report_path, "wb") as out:
                self.child = process.Child([named_link(binary.path, workdir, "redis-check-rdb"), "/dev/stdin"],
                                          child_env(), workdir, stdin=subprocess.PIPE, stdout=out)
        _grow_pipe(self.child.proc.stdin)

    def write(self, data):
        try:
            self.child.proc.stdin.write(data)
        except BrokenPipeError:
            # It stopped reading: it found something wrong, and its report says what.
            self.finish()
            raise IntegrityError("redis-check-rdb stopped before the end of the RDB")
        except OSError as error:
            raise RedisError("feeding the RDB to %s failed: %s"
                             % (self.binary.describe("redis-check-rdb"), os_reason(error)))

    def finish(self):
        with contextlib.suppress(BrokenPipeError):
            self.child.proc.stdin.close()
        code = self.child.proc.wait()
        with failing_as("reading the report of %s" % self.binary.describe("redis-check-rdb"), "check TMPDIR"):
            with open(self.report_path, "r", errors="replace") as handle:
                report = parse_check_report(handle.read())
        if code != 0 or not report["ok"]:
            detail = "; ".join(report["errors"][:4]) or self.child.stderr_tail() or "exit status %d" % code
            raise IntegrityError("the RDB is not valid according to %s: %s"
                                 % (self.binary.describe("redis-check-rdb"), detail))
        return report

    def kill(self):
        self.child.kill()


class RdbInspector:
    """What an RDB says about itself as it streams past: its header, redis-check-rdb's verdict, and each
    database's key counts from its RESIZEDB record (exact: the saving child wrote its frozen dict sizes)."""

    def __init__(self, checker):
        self.checker = checker
        self.scanner = ResizeDbScanner()
        self.head = b""
        self.size = 0
        self.aux = {}  # the RDB's AUX fields, once finish() has the report

    def feed(self, data):
        if len(self.head) < 9:
            self.head += data[:9 - len(self.head)]
        self.scanner.feed(data)
        self.checker.write(data)
        self.size += len(data)

    def rdb_version(self):
        if len(self.head) < 9 or not self.head.startswith(b"REDIS") or not self.head[5:9].isdigit():
            raise IntegrityError("the stream does not start like an RDB (REDISnnnn): %r" % self.head)
        return int(self.head[5:9])

    def finish(self):
        """The RDB's statistics for the manifest; raises IntegrityError when redis-check-rdb found it broken."""
        report = self.checker.finish()
        databases = self._databases(report)
        aux = self.aux = report["aux"]
        return {"rdb_version": self.rdb_version(), "redis_version": aux.get("redis-ver"),
                "used_memory": int(aux["used-mem"]) if aux.get("used-mem", "").isdigit() else None,
                "ctime": int(aux["ctime"]) if aux.get("ctime", "").isdigit() else None,
                "keys": report["keys"], "expires": report["expires"],
                "already_expired": report["already_expired"], "databases": databases,
                "checksum": report["checksum"] or "absent",
                "checked_by": self.checker.binary.describe("redis-check-rdb"),
                "rdb_size": self.size}

    def _databases(self, report):
        found = {}
        for offset, db in report["databases_at"]:
            sizes = self.scanner.records.get(offset)
            if sizes is None:
                break
            found[str(db)] = {"keys": sizes[0], "expires": sizes[1]}
        else:
            if (sum(v["keys"] for v in found.values()) == report["keys"]
                    and sum(v["expires"] for v in found.values()) == report["expires"]):
                return found
        if len(report["databases_at"]) == 1:  # one database: the totals are its counts
            return {str(report["databases_at"][0][1]): {"keys": report["keys"], "expires": report["expires"]}}
        return None


class InspectingReader:
    """A reader that shows every chunk to an RdbInspector on its way through."""

    def __init__(self, source, inspector):
        self.source = source
        self.inspector = inspector

    def read(self, size=-1):
        data = self.source.read(size)
        if data:
            self.inspector.feed(data)
        return data


class InspectingWriter:
    """A writer that shows every chunk to an RdbInspector before passing it on."""

    def __init__(self, sink, inspector):
        self.sink = sink
        self.inspector = inspector

    def write(self, data):
        self.inspector.feed(data)
        self.sink.write(data)
        return len(data)

    def flush(self):
        pass


class NullSink:
    def write(self, data):
        return len(data)

    def flush(self):
        pass


# --- Redis binaries ---------------------------------------------------------------------------------

class Binary:
    """A Redis executable and its version; it is redis-server or redis-check-rdb depending on argv[0]."""

    def __init__(self, path, version):
        self.path = path
        self.version = version

    @property
    def rdb_version(self):
        return rdb_version_of(self.version)

    def describe(self, role="redis-server"):
        return "%s %s (%s)" % (role, ".".join(str(part) for part in self.version), self.path)


def binary_version(path):
    try:
        out = subprocess.run(["redis-server", "--version"], executable=path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=child_env(), timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(rb"v=(\d+\.\d+\.\d+)", out)
    return parse_version(match.group(1).decode()) if match else None


def find_binary(explicit, hints, min_rdb=0, max_rdb=None, purpose="check the RDB"):
    """The first Redis binary (explicit, else the hints, else redis-server/redis-check-rdb on PATH) that reads
    RDB format `min_rdb` and, when given, writes no newer format than `max_rdb`."""
    if explicit and not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
        raise DependencyError("redis_server_bin: %s is not an executable file" % explicit)
    candidates = [explicit] if explicit else [path for path in hints if path] + [
        shutil.which("redis-server"), shutil.which("redis-check-rdb")]
    seen = []
    for path in candidates:
        if not path or path in [s[0] for s in seen] or not os.access(path, os.X_OK):
            continue
        version = binary_version(path)
        seen.append((path, version))
        if version and rdb_version_of(version) >= min_rdb and (max_rdb is None or rdb_version_of(version) <= max_rdb):
            return Binary(path, version)
    found = ", ".join("%s (%s)" % (path, ".".join(map(str, version)) if version else "not a Redis binary")
                      for path, version in seen) or "none"
    wanted = "reading RDB version %d" % min_rdb + ("" if max_rdb is None else " and writing RDB version %d or older"
                                                   % max_rdb)
    raise DependencyError("to %s the module needs a Redis binary %s where it runs (found: %s); install redis-server "
                          "or redis-tools of a suitable version, or set redis_server_bin" % (purpose, wanted, found))


# --- temporary servers ------------------------------------------------------------------------------

def _die_with_parent():
    """A function for preexec_fn: the temporary server gets SIGKILL when the module dies (Linux), so a killed
    module leaves no server behind. libc is looked up here, in the parent, not after the fork."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


class ReplicaFeeder:
    """The master side of a full resync, just enough to hand one RDB to one temporary replica on loopback.

    The replica proves itself with a random masterauth token from its 0600 config file before it gets a byte."""

    def __init__(self):
        self.token = secrets.token_hex(24)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]

    def accept(self, deadline, alive):
        while time.monotonic() < deadline:
            with failing_as("waiting for the temporary redis-server to connect", "check the loopback interface"):
                readable, _w, _x = select.select([self.listener], [], [], 0.1)
                if readable:
                    sock, _peer = self.listener.accept()
                    sock.settimeout(max(1.0, deadline - time.monotonic()))
                    return RespConnection(sock, "the temporary redis-server")
            alive()
        raise RedisError("the temporary redis-server did not connect to load the snapshot in time")

    def handshake(self, resp, size):
        """Answer the replica until it asks for the data, then announce `size` bytes of RDB."""
        authenticated = False
        while True:
            args = resp.command()
            name = args[0].upper() if args else b""
            if name == b"AUTH":
                authenticated = hmac.compare_digest(args[-1], self.token.encode())
                if not authenticated:
                    resp.send(b"-ERR invalid password\r\n")
                    raise RedisError("a process other than the temporary redis-server connected to it: refused")
                resp.send(b"+OK\r\n")
            elif not authenticated:
                resp.send(b"-NOAUTH Authentication required.\r\n")
            elif name == b"PING":
                resp.send(b"+PONG\r\n")
            elif name == b"REPLCONF":
                resp.send(b"+OK\r\n")
            elif name in (b"PSYNC", b"SYNC"):
                if name == b"PSYNC":
                    resp.send(b"+FULLRESYNC %s 0\r\n" % secrets.token_hex(20).encode())
                resp.send(b"$%d\r\n" % size)
                return
            else:
                resp.send(b"-ERR unexpected\r\n")

    def close(self):
        self.listener.close()


class SocketSink:
    """A writer into a socket that counts what it sent."""

    def __init__(self, resp):
        self.resp = resp
        self.size = 0

    def write(self, data):
        self.resp.send(data)
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


class TemporaryServer:
    """A redis-server of our own to read a snapshot through: no persistence, no TCP port, a unix socket in a 0700
    directory. It loads the RDB as our replica (repl-diskless-load), so the RDB never touches the disk."""

    def __init__(self, binary, workdir, databases=16):
        self.binary = binary
        with failing_as("making a directory for a temporary redis-server in %s" % workdir, "check TMPDIR"):
            self.dir = tempfile.mkdtemp(prefix="tmp-redis-", dir=workdir)
            os.chmod(self.dir, 0o700)
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self.log = os.path.join(self.dir, "redis.log")
        self.databases = max(16, databases)
        self.proc = None
        self.connection = Connection(unix_socket=self.socket_path, timeout=30)

    def _config(self, feeder):
        lines = ["port 0", "unixsocket %s" % self.socket_path, "unixsocketperm 700", "dir %s" % self.dir,
                 "dbfilename never-written.rdb", 'save ""', "appendonly no", "daemonize no",
                 "databases %d" % self.databases, "logfile %s" % self.log, "protected-mode yes",
                 "replicaof 127.0.0.1 %d" % feeder.port, "masterauth %s" % feeder.token,
                 "repl-diskless-load on-empty-db", "repl-timeout 3600"]
        path = os.path.join(self.dir, "redis.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return path

    def load(self, feed, size, timeout):
        """Start the server and hand it `size` bytes of RDB, which feed(writer) writes; wait until it loaded."""
        deadline = time.monotonic() + timeout
        with failing_as("listening on loopback for a temporary redis-server", "check the loopback interface"):
            feeder = ReplicaFeeder()
        try:
            with failing_as("starting a temporary %s" % self.binary.describe(), "check that it runs here"):
                conf = self._config(feeder)
                self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                    [named_link(self.binary.path, self.dir, "redis-server"), conf], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(), cwd=self.dir,
                    preexec_fn=_die_with_parent())
            resp = feeder.accept(deadline, self._alive)
            try:
                feeder.handshake(resp, size)
                sink = SocketSink(resp)
                try:
                    feed(sink)
                except RedisError:
                    self._alive()  # a server that stopped reading says why in its log
                    raise
                if sink.size != size:
                    raise IntegrityError("the snapshot holds %d bytes of RDB, its manifest says %d"
                                         % (sink.size, size))
                self._wait_synced(deadline, resp)
            finally:
                resp.close()
        finally:
            feeder.close()

    def promote(self):
        """Make the loaded replica a master of its own: from now on its keys expire as they would anywhere."""
        self.call("making the temporary server a master", "REPLICAOF", "NO", "ONE")

    def _alive(self):
        if self.proc.poll() is not None:
            raise IntegrityError("the temporary %s stopped: %s" % (self.binary.describe(), self.log_tail()))

    def _wait_synced(self, deadline, resp):
        while time.monotonic() < deadline:
            self._alive()
            if self._link_dropped(resp):
                raise IntegrityError("the temporary %s could not load the snapshot: %s"
                                     % (self.binary.describe(), self.log_tail()))
            with contextlib.suppress(RedisError):  # not listening yet
                if self.call("reading INFO", "INFO", "replication").find(b"master_link_status:up") >= 0:
                    return
            time.sleep(POLL * 5)
        raise RedisError("the temporary redis-server did not finish loading the snapshot in time; raise timeout")

    @staticmethod
    def _link_dropped(resp):
        readable, _w, _x = select.select([resp.sock], [], [], 0)
        if not readable:
            return False
        try:
            return resp.sock.recv(65536) == b""  # REPLCONF ACKs are read and dropped; b"" is the end
        except OSError:
            return True

    def log_tail(self):
        try:
            with open(self.log, "r", errors="replace") as handle:
                lines = [line.strip() for line in handle if " # " in line or "Error" in line or "error" in line]
        except OSError:
            return "no log"
        return " / ".join(lines[-3:]) or "no error logged"

    def call(self, action, *args):
        server = Server(self.connection)
        try:
            return server.call(action, *args)
        finally:
            server.close()

    def keyspace(self):
        return keyspace(parse_info(self.call("reading INFO keyspace", "INFO", "keyspace")))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- waiting for a server ---------------------------------------------------------------------------

def wait_loaded(connection, timeout, what="start"):
    """Wait until the server answers and has loaded its data (INFO persistence loading:0)."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            server = Server(connection)
            try:
                if int(server.info("persistence").get("loading", 1)) == 0:
                    return
            finally:
                server.close()
            last = "still loading"
        except RedisAuthError:
            raise
        except RedisError as error:
            last = str(error)
        time.sleep(POLL * 10)
    raise RedisError("%s did not %s and load its data within %ss (%s)" % (connection.describe(), what, timeout, last))


def wait_down(connection, timeout):
    """Wait until nothing answers at the server's address any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection.open_socket().close()
        except RedisError:
            return
        time.sleep(POLL * 10)
    raise RedisError("%s still answers %ss after the stop hook ran: it did not stop"
                     % (connection.describe(), timeout))


def wait_aof_rewritten(server, timeout):
    """After CONFIG SET appendonly yes: wait until the AOF has been rewritten from the data in memory."""
    deadline = time.monotonic() + timeout
    while True:
        info = server.info("persistence")
        busy = int(info.get("aof_rewrite_in_progress", 0)) or int(info.get("aof_rewrite_scheduled", 0))
        if not busy:
            if info.get("aof_last_bgrewrite_status") != "ok" or not int(info.get("aof_enabled", 0)):
                raise RedisError("%s could not rewrite its AOF (aof_last_bgrewrite_status:%s); see its log"
                                 % (server.describe(), info.get("aof_last_bgrewrite_status")))
            return
        if time.monotonic() > deadline:
            raise RedisError("%s did not finish rewriting its AOF within %ss" % (server.describe(), timeout))
        time.sleep(POLL * 5)


# --- bulk DUMP / RESTORE ----------------------------------------------------------------------------
# Millions of keys go through here, so commands are encoded by hand rather than through encode().

def _keyed(name, keys):
    """NAME key, once per key, in RESP."""
    head = b"*2\r\n$%d\r\n%s\r\n" % (len(name), name)
    return b"".join(b"%s$%d\r\n%s\r\n" % (head, len(key), key) for key in keys)


def scan_keys(resp, count=1000):
    """Batches of the keys of the connection's current database (SCAN: the temporary server is static, and was
    loaded with its final table sizes, so no key comes twice)."""
    cursor = b"0"
    while True:
        cursor, keys = resp.call("SCAN", cursor, "COUNT", count)
        if keys:
            yield keys
        if cursor == b"0":
            return


def printable_key(key):
    text = key.decode("utf-8", "backslashreplace")
    return text if len(text) <= 80 else text[:77] + "..."


def find_conflicts(batches, target, limit=10):
    """(count, first `limit` keys) of the keys in `batches` that already exist in the target database."""
    count, names = 0, []
    for keys in batches:
        for key, exists in zip(keys, target.pipeline_raw(_keyed(b"EXISTS", keys), len(keys))):
            if isinstance(exists, ReplyError):
                raise RedisError("%s refused EXISTS: %s" % (target.where, exists))
            if exists:
                count += 1
                if len(names) < limit:
                    names.append(printable_key(key))
    return count, names


class KeyCopier:
    """DUMP + PTTL from the temporary server, RESTORE into the target, pipelined, one database at a time."""

    def __init__(self, source, target, replace, absolute_ttl):
        self.source = source
        self.target = target
        self.absolute_ttl = absolute_ttl
        self.suffix = b"$7\r\nREPLACE\r\n" if replace else b""
        self.restored = 0
        self.expired = 0
        self.busy = []

    def copy(self, keys):
        """Copy a batch of keys. DUMP replies are read one key at a time and RESTOREs go out every PIPELINE_BYTES,
        so memory holds a few MB or the largest key, never the whole batch."""
        self.source.send(b"".join(b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n*2\r\n$4\r\nDUMP\r\n$%d\r\n%s\r\n"
                                  % (len(key), key, len(key), key) for key in keys))
        now_ms = int(time.time() * 1000)
        sent, commands, size = [], [], 0
        for key in keys:
            ttl, payload = self.source.replies(2)
            if payload is None or ttl == -2 or isinstance(payload, ReplyError):
                self.expired += 1  # gone since the scan: it expired
                continue
            sent.append(key)
            commands.append(self.restore_command(key, ttl, payload, now_ms))
            size += len(commands[-1])
            if size > PIPELINE_BYTES:
                self._restore(sent, commands)
                sent, commands, size = [], [], 0
        self._restore(sent, commands)

    def _restore(self, keys, commands):
        for key, reply in zip(keys, self.target.pipeline_raw(b"".join(commands), len(commands))):
            if not isinstance(reply, ReplyError):
                self.restored += 1
            elif reply.startswith("BUSYKEY"):
                self.busy.append(printable_key(key))
            else:
                raise RedisError("%s refused RESTORE of %s after %d keys were restored: %s"
                                 % (self.target.where, printable_key(key), self.restored, reply))

    def restore_command(self, key, ttl, payload, now_ms):
        """RESTORE key ttl payload [REPLACE] [ABSTTL]: the TTL absolute where the target knows ABSTTL (5.0+),
        so the time the restore takes does not stretch it."""
        suffix, words = self.suffix, 4 + bool(self.suffix)
        if ttl <= 0:
            ttl = 0
        elif self.absolute_ttl:
            ttl += now_ms
            suffix += b"$6\r\nABSTTL\r\n"
            words += 1
        ttl = b"%d" % ttl
        return (b"*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s"
                % (words, len(key), key, len(ttl), ttl, len(payload), payload, suffix))
