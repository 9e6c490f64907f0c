# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""redis-server binaries and temporary servers: which binary can read an RDB of a given version, a temporary
server that loads a snapshot from us acting as its master, and waiting for a server to load, stop or rewrite
its AOF.
"""

import contextlib
import ctypes
import hmac
import os
import re
import secrets
import select
import shutil
import socket
import subprocess
import tempfile
import time

from ansible_collections.keel.ops.plugins.module_utils._errors import (
    DependencyError,
    IntegrityError,
    RedisAuthError,
    RedisError,
)
from ansible_collections.keel.ops.plugins.module_utils._redis.connection import (
    Connection,
    Server,
    keyspace,
    parse_info,
    parse_version,
    rdb_version_of,
)
from ansible_collections.keel.ops.plugins.module_utils._redis.rdb import child_env, named_link
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import POLL, RespConnection, failing_as


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
