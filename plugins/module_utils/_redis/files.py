# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Redis server's files on this host, for redis_snapshot.

- Which process on this host holds the server end of our connection, and whether it works in a given directory:
  proof that an RDB read from disk was written by the server we talk to (Redis writes it in its working directory).
- Where a file restore may write: the data directory comes from the data_dir option or from the server's config
  file (read as data, never run), and must agree with what the live server says; the file names are plain names
  inside it, and the files there are never symbolic links.
- Changes beside the server's files that never follow a symlink (O_EXCL|O_NOFOLLOW), fsync'd directory renames,
  and the swap of the server's files for the snapshot's, which can be undone.

Everything here that can fail raises a KeelError (ConfigError when the setup is at fault) or OSError for the
caller to put in context.
"""

import datetime
import errno
import ipaddress
import os
import shlex
import socket
import stat
import struct

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._process import fsync_dir

CONFIG_FILE_MAX = 4 * 1024 * 1024
NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class NotProven(Exception):
    """Why a file on this host cannot be shown to be the server's (the message is a reason, not advice)."""


# --- which process is the server --------------------------------------------------------------------

def _address(ip_text):
    address = ipaddress.ip_address(ip_text.split("%", 1)[0])
    return address.ipv4_mapped or address if address.version == 6 else address


def _endpoint(addr):
    return _address(addr[0]), addr[1]


def peer_process(sock):
    """The pid of the process on this host that holds the server end of our connection `sock`."""
    if sock.family == socket.AF_UNIX:
        size = struct.calcsize("3i")
        pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))[0]
        if pid <= 0:
            raise NotProven("the unix socket names no process at its other end")
        return pid
    try:
        import psutil
    except ImportError:
        raise NotProven("the Python library psutil, which finds the process at the other end of a TCP connection, "
                        "is not installed where the module runs (pip install psutil)")
    ours, theirs = _endpoint(sock.getsockname()), _endpoint(sock.getpeername())
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError) as error:
        raise NotProven("the connections of this host cannot be listed (%s)" % error)
    for conn in connections:
        if conn.raddr and conn.laddr and _endpoint(conn.raddr) == ours and _endpoint(conn.laddr) == theirs:
            if conn.pid is None:
                raise NotProven("the process at the server end of the connection belongs to another user, whose "
                                "processes the module may not look at")
            return conn.pid
    raise NotProven("no process on this host holds the server end of the connection: the server runs on another "
                    "host, or in another network namespace (a container behind a port mapping)")


def works_in(pid, directory):
    """Whether process `pid` works in `directory` (the same directory, by device and inode, whatever its path)."""
    try:
        cwd = os.stat("/proc/%d/cwd" % pid)
    except OSError as error:
        raise NotProven("the working directory of process %d cannot be seen (%s)" % (pid, error.strerror or error))
    try:
        here = os.stat(directory)
    except OSError as error:
        raise NotProven("%s cannot be examined (%s)" % (directory, error.strerror or error))
    return (cwd.st_dev, cwd.st_ino) == (here.st_dev, here.st_ino)


# --- where the data directory is --------------------------------------------------------------------

def read_config_file(path):
    """The directives of a redis.conf as {lower-case name: [arguments]}, the last one of a name winning. The file
    is read as data; one that includes others is refused, since the module does not follow them."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(CONFIG_FILE_MAX)
    except OSError as error:
        raise ConfigError("cannot read the server's config file %s: %s; run the module as root or the redis user "
                          "(become: true), or set data_dir" % (path, error.strerror or error))
    directives = {}
    for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as error:
            raise ConfigError("%s line %d cannot be read (%s); set data_dir" % (path, number, error))
        if words and words[0].lower() == "include":
            raise ConfigError("%s includes other files (line %d), which may set the data directory; the module "
                              "does not follow them: set data_dir" % (path, number))
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def _single(directives, name, default=None):
    values = directives.get(name)
    return values[0] if values and len(values) == 1 else default


def config_locations(directives, path, version):
    """{"dir", "dbfilename", "aof"} as the config file sets them, Redis' defaults for what it leaves out (the AOF
    is a directory, appenddirname, from Redis 7.0; a file, appendfilename, before)."""
    directory = _single(directives, "dir")
    if not directory or not os.path.isabs(directory):
        raise ConfigError("%s sets %s: the data directory cannot be told from it; set data_dir"
                          % (path, "dir %s, a relative path" % directory if directory else "no dir"))
    aof = (_single(directives, "appenddirname", "appendonlydir") if tuple(version[:2]) >= (7, 0)
           else _single(directives, "appendfilename", "appendonly.aof"))
    return {"dir": directory, "dbfilename": _single(directives, "dbfilename", "dump.rdb"), "aof": aof}


_FIELDS = (("dir", "data directory", "dir"), ("dbfilename", "RDB file name", "dbfilename"),
           ("aof", "AOF name", "appenddirname/appendfilename"))


def check_agreement(declared, source, live, fields=("dir", "dbfilename", "aof")):
    """Refuse unless the running server (`live`, from CONFIG GET, as this host sees it) agrees with `declared`,
    which comes from `source` (the data_dir option, or the config file the server starts from)."""
    for field, label, config_name in _FIELDS:
        ours, theirs = declared.get(field), live.get(field)
        if field not in fields or theirs is None:
            continue
        same = os.path.realpath(ours) == os.path.realpath(theirs) if field == "dir" else ours == theirs
        if not same:
            raise ConfigError(
                "the %s is %s according to %s, but %s according to the running server (CONFIG GET %s): either "
                "it was changed at run time (CONFIG SET), or %s does not describe this server. A file restore "
                "writes only where the server loads from at its next start, so nothing was touched: set it back "
                "on the server (CONFIG SET), or set data_dir to where the server really keeps its data"
                % (label, ours, source, theirs, config_name, source))


def plain_name(name, what):
    """A file name inside the data directory: no path, no '..'."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ConfigError("%s %r is not a plain file name inside the data directory: refused" % (what, name))
    return name


class DataFiles:
    """The server's RDB and AOF paths: plain names inside its data directory (symlinks in the directory's own path
    resolved), neither of them a symbolic link."""

    def __init__(self, directory, rdb_name, aof_name=None):
        self.directory = os.path.realpath(directory)
        if not os.path.isdir(self.directory):
            raise ConfigError("the data directory %s is not a directory on this host" % directory)
        self.rdb = self._inside(plain_name(rdb_name, "dbfilename"), regular=True)
        self.aof = self._inside(plain_name(aof_name, "the AOF name"), regular=False) if aof_name else None

    def _inside(self, name, regular):
        path = os.path.join(self.directory, name)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return path
        except OSError as error:
            raise ConfigError("cannot examine %s: %s; run the module as root or the redis user (become: true)"
                              % (path, error.strerror or error))
        if stat.S_ISLNK(mode):
            raise ConfigError("%s is a symbolic link: a restore never writes through one, so nothing was touched; "
                              "make it the server's own file (or remove it)" % path)
        if regular and not stat.S_ISREG(mode):
            raise ConfigError("%s is not a regular file: refused" % path)
        return path


# --- changes beside the server's files --------------------------------------------------------------

def create_exclusive(path, mode=0o600):
    """A new file, opened for writing; fails if anything (a symlink included) is already at `path`."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)


def unused_name(path):
    """`path`, or `path`-2, -3...: the first name nothing is at."""
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = "%s-%d" % (path, number)
    return candidate


class FileSwap:
    """The server's RDB (and AOF) swapped for the snapshot's RDB while the server is stopped, with the way back:
    its files are renamed to <name>.pre-restore-<time> first, and revert() puts them back. Where things are is
    read from the disk, so an interruption between two renames is seen for what it left."""

    def __init__(self, staged, rdb, others=()):
        self.staged = staged
        self.rdb = rdb
        self.originals = [rdb] + list(others)
        self.kept = []  # (original path, where it is moved)
        self.discarded = False

    @property
    def placed(self):
        """Whether the snapshot's RDB is at the server's RDB path: it is made at the staged name and only ever
        leaves it for there."""
        return not self.discarded and not os.path.lexists(self.staged)

    def apply(self):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for path in self.originals:
            if os.path.lexists(path):
                aside = unused_name("%s.pre-restore-%s" % (path, stamp))
                self.kept.append((path, aside))  # first: revert() checks whether the rename happened
                os.rename(path, aside)
        os.replace(self.staged, self.rdb)
        fsync_dir(os.path.dirname(self.rdb))

    def revert(self):
        """Put the server's files back; the snapshot's RDB goes back to its staged name."""
        if self.placed:
            os.replace(self.rdb, self.staged)
        while self.kept:
            original, aside = self.kept[-1]
            if os.path.lexists(aside):
                if os.path.lexists(original):
                    raise OSError(errno.EEXIST, "it is in the way of the server's previous file %s" % aside, original)
                os.rename(aside, original)
            self.kept.pop()
        fsync_dir(os.path.dirname(self.rdb))

    def previous(self):
        return [aside for _original, aside in self.kept if os.path.lexists(aside)]

    def where(self):
        """Where the files are now, for a message."""
        parts = []
        if self.placed:
            parts.append("the snapshot's RDB is in place at %s" % self.rdb)
        elif os.path.lexists(self.staged):
            parts.append("the snapshot's RDB is kept at %s" % self.staged)
        if self.previous():
            parts.append("the server's previous files are kept at %s" % ", ".join(self.previous()))
        return "; ".join(parts) or "the server's files are as they were"

    def discard(self):
        if not self.placed and os.path.lexists(self.staged):
            os.unlink(self.staged)
        self.discarded = True


def set_directive(path, name, value):
    """Rewrite a config file with every `name` line (or, without one, a line at its end) reading `name value`.
    A new file is written beside it (O_EXCL|O_NOFOLLOW, the same owner and mode) and renamed over it."""
    path = os.path.realpath(path)
    with open(path, "rb") as handle:
        lines = handle.read(CONFIG_FILE_MAX).decode("utf-8", "surrogateescape").splitlines()
    wanted = "%s %s" % (name, value)
    found = False
    for index, line in enumerate(lines):
        words = line.split()
        if words and words[0].lower() == name:
            lines[index], found = wanted, True
    if not found:
        lines.append(wanted)
    info = os.stat(path)
    temporary = unused_name("%s.keel-%d" % (path, os.getpid()))
    fd = create_exclusive(temporary, stat.S_IMODE(info.st_mode))
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.geteuid() == 0:
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            handle.write(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    fsync_dir(os.path.dirname(path))
