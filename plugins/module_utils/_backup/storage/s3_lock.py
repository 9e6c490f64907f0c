# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the bytes of a backup repository live: a local directory or an S3 bucket, behind one interface.

open_storage(url, s3) returns a Storage. Keys are "/"-separated paths relative to the repository root
("postgres/db1/<backup_id>/manifest.json"); a prefix is a directory of keys ("postgres/db1"). Both
implementations keep the same promises:

- a key written through writer() or put() stays invisible until commit(), then appears whole;
- data streams with bounded memory: a local file is written as it comes, an S3 object goes up as a
  multipart upload with at most PARTS_IN_FLIGHT parts in memory besides the one being filled;
- one run at a time holds lock(key), and a holder that died does not block the others for long;
- every expected failure is a StorageError whose message says what failed, where and how to fix it,
  and never carries credentials.

boto3 is needed only for s3:// repositories; its import is guarded, as ansible-test requires.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import calendar
import contextlib
import errno
import fcntl
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit, urlunsplit

try:
    import boto3
    import botocore
    import botocore.exceptions
    import botocore.utils
    from botocore.config import Config
    HAS_BOTO3 = True
    # Errors that break a streaming GET midway; the reader resumes from where it stopped.
    STREAM_ERRORS = (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ResponseStreamingError,
                     botocore.exceptions.IncompleteReadError, botocore.exceptions.ConnectionClosedError)
except ImportError:
    HAS_BOTO3 = False
    STREAM_ERRORS = ()

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, KeelError


class StorageError(KeelError):
    """Reading, writing, listing or locking in the backup repository failed."""


class NotFound(StorageError):
    """The key asked for does not exist."""


class LockTimeout(StorageError):
    """Another run kept the lock longer than we were willing to wait; `holder` is its record."""

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = holder or {}


MIB = 1024 * 1024
PARTS_PER_STEP = 1000
GROWN_PART_LIMIT = 128 * MIB
DEFAULT_PART_SIZE = 8 * MIB  # two in flight plus one filling: ~24 MiB, well inside the module's memory budget
MIN_PART_SIZE = 5 * MIB  # S3 refuses smaller parts, except the last one
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10000
PARTS_IN_FLIGHT = 2
MAX_RESUMES = 5  # broken downloads resumed per reader before giving up
LOCAL_LOCK_POLL = 0.1
S3_LOCK_POLL = 1.0
LOCK_MARGIN = 1 / 3.0  # of an S3 lock's ttl, left after a confirming renewal for clock skew between hosts

PARTIAL_MARK = ".partial-"
PARTIAL_RE = re.compile(r"^\..+\.partial-[0-9a-f]+$")
SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
# Lenient on purpose: legacy AWS buckets and some S3-compatible servers allow capitals and underscores.
BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
SSE_CHOICES = ("AES256", "aws:kms")
S3_DEFAULTS = {
    "endpoint_url": None,
    "region": None,
    "access_key": None,
    "secret_key": None,
    "session_token": None,
    "profile": None,
    "storage_class": None,
    "sse": None,
    "sse_kms_key_id": None,
    "validate_certs": True,
    "part_size": DEFAULT_PART_SIZE,
}
S3_PERMISSIONS = {
    "read": "s3:GetObject",
    "write": "s3:PutObject",
    "list": "s3:ListBucket",
    "delete": "s3:DeleteObject",
    "lock": "s3:GetObject, s3:PutObject and s3:DeleteObject",
    "unlock": "s3:DeleteObject",
    "clean up": "s3:ListBucketMultipartUploads and s3:AbortMultipartUpload",
    "abort": "s3:AbortMultipartUpload",
}
S3_BAD_CREDENTIALS = {
    "InvalidAccessKeyId": "the access key is unknown there",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "ExpiredToken": "the session token has expired",
    "ExpiredTokenException": "the session token has expired",
    "TokenRefreshRequired": "the session token has expired",
    "InvalidToken": "the session token is invalid",
}
S3_DENIED = ("AccessDenied", "AllAccessDisabled", "Forbidden", "403")
S3_MISSING = ("NoSuchKey", "NotFound", "404")
S3_WRONG_REGION = ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "301")
# A conditional request lost: the object changed (412), a concurrent conditional write won (409), or it is gone.
S3_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409") + S3_MISSING


# --------------------------------------------------------------------------- #
# Repository URLs and options.
# --------------------------------------------------------------------------- #


def open_storage(url, s3=None):
    """Return the Storage for a repository URL: an absolute path, file:///path or s3://bucket[/prefix]."""
    kind, location, prefix = parse_url(url)
    if kind == "local":
        return LocalStorage(location)
    return S3Storage(location, prefix, s3_options(s3))


def check_repository(url, s3=None):
    """Everything about a repository's URL and S3 options that can be checked without reaching it: modules
    call this before they connect anywhere, so a typo is reported as such and not as a later failure."""
    kind, _location, _prefix = parse_url(url)
    if kind == "s3":
        s3_options(s3)


def parse_url(url):
    """Split a repository URL into ("local", path, None) or ("s3", bucket, prefix); ConfigError if unusable."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("the repository URL is empty: give an absolute directory such as /srv/backups, "
                          "or s3://BUCKET/PREFIX")
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not SCHEME_RE.match(scheme):
        return "local", _local_root(url), None
    scheme = scheme.lower()
    if scheme == "file":
        return "local", _file_url_path(url, rest), None
    if scheme == "s3":
        bucket, prefix = _split_s3_url(url, rest)
        return "s3", bucket, prefix
    raise ConfigError("repository URL %s: unsupported scheme %s://, use an absolute path, file:///PATH or "
                      "s3://BUCKET/PREFIX" % (_printable_url(url), scheme))


def _printable_url(url):
    # "s3://KEY:SECRET@bucket" must never be echoed back.
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return scheme + sep + authority + slash + path


def _local_root(path):
    if not os.path.isabs(path):
        raise ConfigError("repository path %s is relative: give an absolute path (modules run in a temporary "
                          "directory, so a relative one would land somewhere unexpected)" % path)
    return os.path.normpath(path)


def _file_url_path(url, rest):
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost"):
        raise ConfigError("repository URL %s names the host %s: file URLs must be local, write file:///PATH"
                          % (_printable_url(url), host.rpartition("@")[2]))
    return _local_root(unquote(slash + path))


def _split_s3_url(url, rest):
    bucket, _slash, path = rest.partition("/")
    if "@" in bucket:
        raise ConfigError("repository URL %s carries credentials: remove them from the URL and give access_key "
                          "and secret_key as S3 options instead" % _printable_url(url))
    if not bucket:
        raise ConfigError("repository URL %s names no bucket: write it as s3://BUCKET or s3://BUCKET/PREFIX" % url)
    if not BUCKET_RE.match(bucket):
        raise ConfigError("repository URL %s: %r is not a valid bucket name (letters, digits, dots, hyphens, "
                          "3 to 63 characters on AWS)" % (url, bucket))
    prefix = "/".join(_key_parts(path, allow_empty=True, error=ConfigError, what="prefix of repository URL %s" % url))
    return bucket, prefix


def s3_options(s3):
    """Fill defaults into the S3 options dict (None values count as absent) and refuse contradictions."""
    given = dict((name, value) for name, value in (s3 or {}).items() if value is not None)
    unknown = sorted(set(given) - set(S3_DEFAULTS))
    if unknown:
        raise ConfigError("unknown S3 option(s) %s: the known ones are %s" % (", ".join(unknown), ", ".join(sorted(S3_DEFAULTS))))
    options = dict(S3_DEFAULTS)
    options.update(given)
    _check_s3_options(options)
    return options


def _check_s3_options(options):
    if options["sse"] not in (None,) + SSE_CHOICES:
        raise ConfigError("S3 option sse must be AES256 or aws:kms, not %r" % options["sse"])
    if options["sse_kms_key_id"] and options["sse"] != "aws:kms":
        raise ConfigError("S3 option sse_kms_key_id needs sse: aws:kms")
    part_size = options["part_size"]
    if isinstance(part_size, bool) or not isinstance(part_size, int) or not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ConfigError("S3 option part_size must be a number of bytes from %d (5 MiB, the S3 minimum) to %d (5 GiB), "
                          "not %r" % (MIN_PART_SIZE, MAX_PART_SIZE, part_size))
    if not isinstance(options["validate_certs"], bool):
        raise ConfigError("S3 option validate_certs must be true or false")
    if bool(options["access_key"]) != bool(options["secret_key"]):
        raise ConfigError("S3 options access_key and secret_key go together: give both, or neither to use the "
                          "profile, the environment or the instance role")
    if options["session_token"] and not options["access_key"]:
        raise ConfigError("S3 option session_token needs access_key and secret_key")
    if options["profile"] and options["access_key"]:
        raise ConfigError("S3 options profile and access_key contradict each other: give one of them")
    if options["region"] is not None and HAS_BOTO3:
        try:
            botocore.utils.validate_region_name(options["region"])
        except botocore.exceptions.InvalidRegionError:
            raise ConfigError("S3 option region %r is not a region name: write it as AWS does, such as "
                              "eu-central-1 (S3-compatible servers usually accept us-east-1)" % options["region"])
    endpoint = options["endpoint_url"]
    try:
        parts = urlsplit(endpoint) if endpoint else None
    except ValueError as error:  # an unclosed [IPv6 address, for one
        raise ConfigError("S3 option endpoint_url cannot be used: %s; write it as https://HOST[:PORT]" % error)
    if parts and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError("S3 option endpoint_url %s is not an http(s) URL: write it as https://HOST[:PORT]"
                          % _printable_endpoint(options))


def _printable_endpoint(options):
    endpoint = options["endpoint_url"]
    if not endpoint:
        return "AWS S3" + (" (%s)" % options["region"] if options["region"] else "")
    parts = urlsplit(endpoint)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _key_parts(key, allow_empty=False, error=StorageError, what="storage key"):
    """Split a key or prefix into its parts, refusing what could escape the repository or mean nothing."""
    if not isinstance(key, str):
        raise error("%s must be a string, not %r" % (what, key))
    parts = [part for part in key.split("/") if part]
    if (not parts and not allow_empty) or any(part in (".", "..") or "\0" in part for part in parts):
        raise error("invalid %s %r: use a relative path such as postgres/db1/manifest.json, without '.' or '..'"
                    % (what, key))
    return parts


# --------------------------------------------------------------------------- #
# Lock records: who holds a lock, since when, until when.
# --------------------------------------------------------------------------- #


def _iso(timestamp):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _from_iso(text):
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def _read_first_line(path):
    try:
        with open(path) as handle:
            return handle.readline().strip() or None
    except (IOError, OSError):
        return None


def _machine():
    """What makes a pid meaningful: the host name and, on Linux, the pid namespace and the boot."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    return {"host": socket.gethostname(), "pidns": pidns, "boot": _read_first_line("/proc/sys/kernel/random/boot_id")}


def holder_record(owner, ttl=None):
    now = time.time()
    record = _machine()
    record.update(pid=os.getpid(), since=_iso(now))
    if owner:
        record["owner"] = owner
    if ttl is not None:
        record.update(expires=_iso(now + ttl), token=secrets.token_hex(8))
    return record


def parse_record(data):
    """A lock record from the bytes of a lock file or object; {} when there is none or it is not ours."""
    try:
        record = json.loads(data.decode())
    except ValueError:  # also UnicodeDecodeError
        return {}
    return record if isinstance(record, dict) else {}


def describe_holder(record):
    """'host db1 pid 4242 (pg_backup) since 2024-05-01T02:00:00Z' from a lock record."""
    if not record:
        return "another process (it has not recorded who it is yet)"
    text = "host %s pid %s" % (record.get("host", "?"), record.get("pid", "?"))
    if record.get("owner"):
        text += " (%s)" % record["owner"]
    if record.get("since"):
        text += " since %s" % record["since"]
    return text


def process_gone(record):
    """True when the holder ran on this very machine (host, pid namespace, boot) and its pid no longer exists.

    A reused pid only makes us wait for the lock to expire, which is the safe direction.
    """
    here = _machine()
    if any(record.get(name) != value for name, value in here.items()):
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists but belongs to another user
    return False


def _check_lock_args(timeout, ttl):
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError("lock timeout must be a number of seconds >= 0, not %r" % (timeout,))
    if not isinstance(ttl, (int, float)) or ttl <= 0:
        raise ConfigError("lock ttl must be a number of seconds > 0, not %r" % (ttl,))


def _lock_timeout(location, timeout, record, advice):
    return LockTimeout("gave up after %ss waiting for lock %s, held by %s: %s"
                       % (timeout, location, describe_holder(record), advice), record)


class LockInfo:
    """What lock() hands to its with-block: where the lock is, our record, and anything worth a warning.

    took_over: text naming the dead or expired holder we replaced, or None.
    lost: text explaining that another run took the lock over while we held it (S3 only), or None.
    warnings: every such text, for the module to pass to warn().
    settle: how old (seconds) a leftover of another writer must be before cleanup may remove it. 0 where this
            lock proves the previous writer is gone (flock, or its pid is gone from this host); the lock's ttl
            where it cannot (an S3 lock that expired: its holder may only be paused, and still writing).

    check() before every irreversible step (writing a manifest, deleting backups): it proves, then and there,
    that this run still holds the lock.
    """

    def __init__(self, location, holder, confirm=None, settle=0):
        self.location = location
        self.holder = holder
        self.took_over = None
        self.lost = None
        self.warnings = []
        self.settle = settle
        self._confirm = confirm

    def note(self, text):
        self.warnings.append(text)

    def check(self):
        if self.lost:
            raise StorageError(self.lost)
        if self._confirm is not None:
            self._confirm()


# --------------------------------------------------------------------------- #
# The interface.
# --------------------------------------------------------------------------- #


class Storage:
    """Bytes under keys. Subclasses: LocalStorage, S3Storage."""

    url = None

    def describe(self, key):
        """Printable location of a key (or of a prefix; "" is the repository itself)."""
        parts = _key_parts(key, allow_empty=True)
        return "/".join([self.url.rstrip("/")] + parts) if parts else self.url

    def writer(self, key):
        raise NotImplementedError

    def reader(self, key):
        raise NotImplementedError

    def size(self, key):
        raise NotImplementedError

    def put(self, key, data):
        """Store a small object atomically: it is either absent or complete."""
        with self.writer(key) as writer:
            writer.write(data)
            writer.commit()

    def get(self, key):
        """The whole content of a small object; NotFound if absent."""
        with self.reader(key) as stream:
            return stream.read()

    def exists(self, key):
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def lock(self, key, timeout, ttl=600, owner=None):
        raise NotImplementedError


class Writer:
    """Streams one object under a temporary identity: commit() makes it appear whole, abort() makes it vanish.

    Used as a context manager it aborts unless commit() was called; any failure aborts it too.
    """

    def __init__(self, location):
        self.location = location
        self.bytes_written = 0
        self._state = "open"

    def write(self, data):
        self._require_open("write to")
        view = memoryview(data).cast("B")
        if view.nbytes:
            self._guarded(self._write, view)
            self.bytes_written += view.nbytes

    def commit(self):
        """Make the object visible under its key; returns its size."""
        self._require_open("commit")
        self._guarded(self._commit)
        self._state = "committed"
        return self.bytes_written

    def abort(self):
        """Drop what was written (best effort; cleanup_incomplete() removes any leftover later)."""
        if self._state == "open":
            self._state = "aborted"
            self._abort()

    def _guarded(self, step, *args):
        try:
            step(*args)
        except BaseException:
            self.abort()
            raise

    def _require_open(self, action):
        if self._state != "open":
            raise StorageError("cannot %s %s: its writer was already %s" % (action, self.location, self._state))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.abort()

    def _write(self, view):
        raise NotImplementedError

    def _commit(self):
        raise NotImplementedError

    def _abort(self):
        raise NotImplementedError


# --------------------------------------------------------------------------- #
# Local directory.
# --------------------------------------------------------------------------- #


def _whoami():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return "uid %d" % os.geteuid()


def _os_message(err, action, path):
    hints = {
        errno.EACCES: "permission denied; let the user running the module (%s) access it, or choose another "
                      "repository path" % _whoami(),
        errno.ENOSPC: "no space left on the device; free space, prune old backups or use a larger volume",
        errno.EDQUOT: "disk quota exceeded; raise the quota, prune old backups or use another volume",
        errno.EROFS: "read-only file system; mount it read-write or choose another repository path",
        errno.ENOTDIR: "part of the path is a file, not a directory; fix the repository path",
    }
    hints[errno.EPERM] = hints[errno.EACCES]
    hint = hints.get(err.errno, "%s; check the path and the file system" % (err.strerror or err))
    return "cannot %s %s: %s" % (action, path, hint)


@contextlib.contextmanager
def _os_errors(action, path, not_found=False):
    """Turn OSError into StorageError (or NotFound for a missing key when asked)."""
    try:
        yield
    except FileNotFoundError as err:
        if not_found:
            raise NotFound("%s does not exist" % path) from None
        raise StorageError(_os_message(err, action, path)) from None
    except OSError as err:
        raise StorageError(_os_message(err, action, path)) from None


def _make_private_dirs(path):
    """mkdir -p giving 0700 to every directory it creates (os.makedirs applies the mode to the last one only).
    Each new directory's parent is fsynced, so that after a crash the path to a committed file still exists."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        _make_private_dirs(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return  # made concurrently, or a file: the caller's next step reports the latter
    _fsync_dir(parent)


def _create_private_file(path):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno != errno.EINVAL:  # some file systems cannot sync a directory; the rename stands anyway
            raise
    finally:
        os.close(fd)


def _walk(top):
    """os.walk that reports errors instead of skipping what it cannot read; as on S3, a prefix that is
    missing, or names a key rather than a directory, simply holds nothing."""
    def fail(err):
        if not isinstance(err, (FileNotFoundError, NotADirectoryError)):
            raise err
    return os.walk(top, onerror=fail)


def _human_size(size):
    if size < 1024:
        return "%d bytes" % size
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024.0
        if size < 1024 or unit == "GiB":
            break
    return "%.1f %s" % (size, unit)


class LocalStorage(Storage):
    """A repository in a local (or mounted) directory, created 0700 on first write; files are 0600."""

    def __init__(self, root):
        self.root = os.path.normpath(root)
        self.url = self.root

    def path_of(self, key, allow_empty=False):
        parts = _key_parts(key, allow_empty=allow_empty)
        if parts and PARTIAL_RE.match(parts[-1]):
            raise StorageError("invalid storage key %r: names like .NAME%sHEX are reserved for unfinished writes"
                               % (key, PARTIAL_MARK))
        return os.path.join(self.root, *parts)

    def writer(self, key):
        return _LocalWriter(self.path_of(key), self._prune)

    def describe(self, key):
        return self.path_of(key, allow_empty=True)

    def reader(self, key):
        path = self.path_of(key)
        with _os_errors("read", path, not_found=True):
            # the caller closes it
            return open(path, "rb")  # pylint: disable=consider-using-with

    def size(self, key):
        path = self.path_of(key)
        with _os_errors("read", path, not_found=True):
            info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise NotFound("%s is not a file" % path)
        return info.st_size

    def list(self, prefix=""):
        """Every committed key under prefix (recursive, sorted); unfinished writes are not listed."""
        base = self.path_of(prefix, allow_empty=True)
        keys = []
        with _os_errors("list", base):
            for directory, _dirnames, filenames in _walk(base):
                relative = os.path.relpath(directory, self.root).replace(os.sep, "/")
                keys.extend(name if relative == "." else relative + "/" + name
                            for name in filenames if not PARTIAL_RE.match(name))
        return sorted(keys)

    def list_children(self, prefix=""):
        """Names of the directories under prefix that hold at least one committed key, as S3 would show them."""
        base = self.path_of(prefix, allow_empty=True)
        with _os_errors("list", base):
            try:
                entries = list(os.scandir(base))
            except (FileNotFoundError, NotADirectoryError):
                return []
            names = [entry.name for entry in entries
                     if entry.is_dir(follow_symlinks=False) and self._holds_keys(entry.path)]
        return sorted(names)

    @staticmethod
    def _holds_keys(directory):
        return any(not PARTIAL_RE.match(name) for _top, _dirs, names in _walk(directory) for name in names)

    def delete(self, keys):
        """Remove keys; missing ones are fine. Directories left empty go too, as they would on S3."""
        for key in keys:
            path = self.path_of(key)
            with _os_errors("delete", path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            self._prune(os.path.dirname(path))

    def delete_prefix(self, prefix):
        """Remove everything under prefix (unfinished writes included); the repository root itself is refused."""
        if not _key_parts(prefix, allow_empty=True):
            raise StorageError("refusing to delete everything in %s: give a prefix inside the repository" % self.url)
        path = self.path_of(prefix)
        with _os_errors("delete", path):
            try:
                shutil.rmtree(path)
            except (FileNotFoundError, NotADirectoryError):
                return
        self._prune(os.path.dirname(path))

    def _prune(self, directory):
        while directory.startswith(self.root + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (or gone): stop climbing
            directory = os.path.dirname(directory)

    def cleanup_incomplete(self, prefix="", settle=0):
        """Remove the partial files that writers killed before commit or abort left behind under prefix, once
        they are at least `settle` seconds old.

        Call it only while holding the lock that serialises writers of this prefix: a live writer's partial
        file looks the same as a dead one's.
        """
        base = self.path_of(prefix, allow_empty=True)
        removed = []
        newest = time.time() - settle
        with _os_errors("clean up", base):
            for directory, _dirnames, filenames in _walk(base):
                for name in filenames:
                    path = os.path.join(directory, name)
                    if PARTIAL_RE.match(name) and os.lstat(path).st_mtime <= newest:
                        removed.append(self._remove_partial(path))
        for text, path in removed:
            self._prune(os.path.dirname(path))
        return [text for text, path in removed]

    def newest_change(self, prefix):
        """When anything under prefix (partial writes included) was last written, as a Unix time; None if empty."""
        base = self.path_of(prefix)
        times = []
        with _os_errors("list", base):
            for directory, _dirnames, filenames in _walk(base):
                times.extend(os.lstat(os.path.join(directory, name)).st_mtime for name in filenames)
        return max(times) if times else None

    @staticmethod
    def _remove_partial(path):
        info = os.stat(path)
        os.unlink(path)
        return ("removed unfinished write %s (%s, last written %s)"
                % (path, _human_size(info.st_size), _iso(info.st_mtime)), path)

    def lock(self, key, timeout, ttl=600, owner=None):
        """Exclusive lock on a local file (flock). `ttl` is not needed: the kernel frees the lock when its
        holder exits, even on SIGKILL; flock also works across NFSv4 clients on Linux."""
        _check_lock_args(timeout, ttl)
        return _LocalLock(self.path_of(key), timeout, owner)


class _LocalWriter(Writer):
    """Writes <dir>/.<name>.partial-<hex>, then fsync, rename over <name>, fsync the directory.

    `prune(directory)` removes the directories an aborted write leaves empty.
    """

    def __init__(self, path, prune):
        super().__init__(path)
        self._path = path
        self._prune = prune
        directory, name = os.path.split(path)
        self._partial = os.path.join(directory, "." + name + PARTIAL_MARK + secrets.token_hex(6))
        with _os_errors("write", path):
            _make_private_dirs(directory)
            try:
                fd = _create_private_file(self._partial)
            except FileNotFoundError:
                # delete() prunes empty directories; if it raced us, make the directory again, once
                _make_private_dirs(directory)
                fd = _create_private_file(self._partial)
        self._file = os.fdopen(fd, "wb")

    def _write(self, view):
        with _os_errors("write", self._path):
            self._file.write(view)

    def _commit(self):
        with _os_errors("write", self._path):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._partial, self._path)
            _fsync_dir(os.path.dirname(self._path))

    def _abort(self):
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._partial)
        self._prune(os.path.dirname(self._path))


class _LocalLock:
    """flock() on the lock file, polled until the timeout; the holder's record is written into the file.

    A clean release removes the file, so a record found on taking the lock is that of a run that died
    holding it (the kernel freed its flock): the LockInfo says so, as on S3.
    """

    def __init__(self, path, timeout, owner):
        self.path = path
        self.timeout = timeout
        self.owner = owner
        self._fd = None

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        with _os_errors("lock", self.path):
            while not self._try_acquire():
                if time.monotonic() >= deadline:
                    raise _lock_timeout(self.path, self.timeout, self._read_holder(),
                                        "wait for that run to finish, stop it, or raise the lock timeout "
                                        "(the lock frees itself when its process exits)")
                time.sleep(LOCAL_LOCK_POLL)
            record = holder_record(self.owner)
            try:
                previous = parse_record(os.pread(self._fd, 65536, 0))
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, json.dumps(record).encode(), 0)
            except OSError:
                self._release()
                raise
        info = LockInfo(self.path, record, confirm=self._confirm)
        if previous:
            info.took_over = "took over lock %s from %s: it ended without releasing it" % (
                self.path, describe_holder(previous))
            info.note(info.took_over)
        return info

    def _try_acquire(self):
        _make_private_dirs(os.path.dirname(self.path))
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            if self._still_linked(fd):
                self._fd = fd
                return True
            os.close(fd)  # the previous holder removed this file as it released it: lock the new one

    def _confirm(self):
        """flock cannot be lost, but the file can be removed by hand, letting another run lock a new one."""
        if self._fd is None or not self._still_linked(self._fd):
            raise StorageError("lock file %s was removed while this run held it, so another run may hold a new one: "
                               "nothing was committed or deleted; run it again" % self.path)

    def _still_linked(self, fd):
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)

    def _read_holder(self):
        try:
            with open(self.path, "rb") as handle:
                return parse_record(handle.read())
        except OSError:
            return {}

    def __exit__(self, *exc_info):
        self._release()
        return False

    def _release(self):
        # Unlink while still holding the lock; waiters on the old file notice (_still_linked) and retry.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


# --------------------------------------------------------------------------- #
# S3 and S3-compatible endpoints.
# --------------------------------------------------------------------------- #


def _epoch(moment):
    """A datetime from botocore as a Unix time; an unknown time counts as now (the cautious direction)."""
    return calendar.timegm(moment.utctimetuple()) + moment.microsecond / 1e6 if moment else time.time()


def _error_code(err):
    return str(err.response.get("Error", {}).get("Code", ""))


def _client_config(options):
    settings = {
        "retries": {"max_attempts": 4, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 120,
        "max_pool_connections": PARTS_IN_FLIGHT + 2,
        "user_agent_extra": "keel.ops",
    }
    if options["endpoint_url"]:
        # S3-compatible servers (MinIO, Ceph...) are reliably reached by path, not by bucket.host names.
        settings["s3"] = {"addressing_style": "path"}
        if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
            # botocore >= 1.36 adds CRC32 headers to every upload, which several S3-compatible servers
            # refuse; send them only where the API demands. The manifest's sha256 still guards the content.
            settings["request_checksum_calculation"] = "when_required"
    return Config(**settings)


def _s3_client(options):
    session_args = {}
    if options["profile"]:
        session_args["profile_name"] = options["profile"]
    if options["access_key"]:
        session_args.update(aws_access_key_id=options["access_key"], aws_secret_access_key=options["secret_key"],
                            aws_session_token=options["session_token"])
    if options["region"]:
        session_args["region_name"] = options["region"]
    try:
        session = boto3.session.Session(**session_args)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError("AWS profile %r is not defined for the user running the module (%s): fix the profile "
                          "option or add it to ~/.aws/config" % (options["profile"], _whoami())) from None
    try:
        return session.client("s3", endpoint_url=options["endpoint_url"], verify=options["validate_certs"],
                              config=_client_config(options))
    except ValueError as error:  # botocore's own checks of the endpoint
        raise ConfigError("S3 option endpoint_url cannot be used: %s" % error) from None


class S3Storage(Storage):
    """A repository under s3://bucket/prefix on AWS or any S3-compatible endpoint (boto3)."""

    def __init__(self, bucket, prefix, options):
        url = "s3://%s/%s" % (bucket, prefix) if prefix else "s3://%s" % bucket
        if not HAS_BOTO3:
            raise DependencyError("the repository %s needs the Python library boto3, which %s cannot import: "
                                  "install it (pip install boto3) for the Python that runs the module"
                                  % (url, sys.executable))
        self.url = url
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = options["part_size"]
        self.endpoint = _printable_endpoint(options)
        self._secrets = [options[name] for name in ("access_key", "secret_key", "session_token") if options[name]]
        self._object_args = {}
        if options["storage_class"]:
            self._object_args["StorageClass"] = options["storage_class"]
        if options["sse"]:
            self._object_args["ServerSideEncryption"] = options["sse"]
        if options["sse_kms_key_id"]:
            self._object_args["SSEKMSKeyId"] = options["sse_kms_key_id"]
        self.client = _s3_client(options)
        # Mirror boto3's own uploader: with checksums on, multipart uploads declare CRC32 and list part CRCs.
        self.checksums = getattr(self.client.meta.config, "request_checksum_calculation", None) == "when_supported"

    # -- keys ------------------------------------------------------------- #

    def full_key(self, key, allow_empty=False):
        return "/".join(([self.prefix] if self.prefix else []) + _key_parts(key, allow_empty=allow_empty))

    def _dir(self, prefix):
        full = self.full_key(prefix, allow_empty=True)
        return full + "/" if full else ""

    def _relative(self, full):
        return full[len(self.prefix) + 1:] if self.prefix else full

    def location(self, full):
        """Printable location of an object given by its full key, as listed (no validation)."""
        return "s3://%s/%s" % (self.bucket, full)

    def object_args(self, data=True):
        """Storage class and SSE for an object; the lock object keeps SSE only, because archive classes
        (GLACIER...) could not be read back while it is held."""
        if data:
            return dict(self._object_args)
        return dict((name, value) for name, value in self._object_args.items() if name != "StorageClass")

    # -- errors ----------------------------------------------------------- #

    def _redact(self, text):
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def error_for(self, err, action, key=None, where=None):
        """The StorageError (or NotFound) that tells the user what a botocore exception means here."""
        where = where or self.describe(key if key is not None else "")
        if isinstance(err, botocore.exceptions.ClientError):
            cls, message = self._client_error(err, action, key, where)
        else:
            cls, message = StorageError, self._transport_error(err, action, where)
        return cls(self._redact(message))

    def _client_error(self, err, action, key, where):
        code = _error_code(err)
        details = err.response.get("Error", {})
        fail = "cannot %s %s: " % (action, where)
        if code == "NoSuchKey" or (code in S3_MISSING and key is not None and not self._bucket_missing()):
            return NotFound, "%s does not exist" % where
        if code == "NoSuchBucket" or code in S3_MISSING:
            return StorageError, fail + "bucket %s does not exist at %s: create it or fix the repository URL" % (
                self.bucket, self.endpoint)
        if code in S3_BAD_CREDENTIALS:
            return StorageError, fail + "access denied by %s (%s): check the credentials (access_key, secret_key, " \
                "session_token, profile or the AWS environment of the user running the module)" % (
                    self.endpoint, S3_BAD_CREDENTIALS[code])
        if code in S3_DENIED:
            # Without s3:ListBucket, S3 answers a read of a missing key with AccessDenied rather than NoSuchKey.
            return StorageError, fail + "access denied by %s: check the credentials and that they are allowed %s " \
                "on bucket %s%s" % (self.endpoint, S3_PERMISSIONS.get(action, "this operation"), self.bucket,
                                    " (and s3:ListBucket, or a missing key looks the same)" if action == "read" else "")
        if code in S3_WRONG_REGION:
            region = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
            return StorageError, fail + "bucket %s lives in another region%s: set the region option to it" % (
                self.bucket, " (%s)" % region if region else "")
        if code == "NoSuchUpload":
            return StorageError, fail + "its multipart upload was aborted by someone else (cleanup_incomplete in " \
                "another run, or a lifecycle rule): run it again"
        if code in ("PreconditionFailed", "412") and action == "read":
            return StorageError, fail + "the object changed while it was being read: run it again"
        if code == "NotImplemented" and action == "lock":
            return StorageError, fail + "%s does not support conditional writes (If-None-Match / If-Match), " \
                "which the repository lock needs: use an endpoint that does, such as AWS S3 or a recent MinIO" \
                % self.endpoint
        if code == "InvalidStorageClass":
            return StorageError, fail + "%s refuses storage class %r: choose one it supports" % (
                self.endpoint, self._object_args.get("StorageClass"))
        if "KMS" in code:
            return StorageError, fail + "server-side encryption failed (%s: %s): check sse_kms_key_id and that " \
                "the credentials may use that key" % (code, details.get("Message", ""))
        answer = "%s: %s" % (code or "an error", details.get("Message") or err)
        return StorageError, fail + "%s answered %s" % (self.endpoint, answer)

    def _transport_error(self, err, action, where):
        exceptions = botocore.exceptions
        fail = "cannot %s %s: " % (action, where)
        if isinstance(err, (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)):
            return fail + "no usable S3 credentials were found: set access_key and secret_key, or profile, or " \
                "provide AWS credentials to the user running the module (%s)" % _whoami()
        if isinstance(err, exceptions.SSLError):
            return fail + "the TLS certificate of %s could not be verified: install the CA that signed it, or " \
                "for a test endpoint set validate_certs: false" % self.endpoint
        if isinstance(err, (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError,
                            exceptions.ProxyConnectionError)):
            return fail + "cannot reach S3 endpoint %s: check endpoint_url, the network path and that the " \
                "service is running" % self.endpoint
        if isinstance(err, STREAM_ERRORS):
            return fail + "the connection to %s kept breaking (%s): check the network and run it again" % (
                self.endpoint, err)
        return fail + "%s (endpoint %s)" % (err, self.endpoint)

    def _bucket_missing(self):
        # HEAD answers a bare 404 both for a missing key and a missing bucket: ask about the bucket.
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as err:
            return _error_code(err) in ("NoSuchBucket",) + S3_MISSING
        except botocore.exceptions.BotoCoreError:
            return False
        return False

    @contextlib.contextmanager
    def errors(self, action, key=None):
        try:
            yield
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            raise self.error_for(err, action, key) from None

    def call(self, action, key, method, **kwargs):
        """One API call on this bucket, its failure translated to StorageError."""
        return self._request(action, key, method, kwargs)

    def conditional(self, action, key, method, **kwargs):
        """A conditional API call: its response, or None when the condition did not hold."""
        return self._request(action, key, method, kwargs, tolerated=S3_CONDITION_FAILED)

    def _request(self, action, key, method, kwargs, tolerated=(), where=None):
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as err:
            if _error_code(err) in tolerated:
                return None
            raise self.error_for(err, action, key, where) from None
        except botocore.exceptions.BotoCoreError as err:
            raise self.error_for(err, action, key, where) from None

    def _pages(self, action, prefix, operation, **kwargs):
        paginator = self.client.get_paginator(operation)
        with self.errors(action, prefix):
            yield from paginator.paginate(Bucket=self.bucket, Prefix=self._dir(prefix), **kwargs)

    # -- the interface ---------------------------------------------------- #

    def writer(self, key):
        return _S3Writer(self, key)

    def reader(self, key):
        return _S3Reader(self, key)

    def put(self, key, data):
        body = data if isinstance(data, (bytes, bytearray)) else bytes(data)
        self.call("write", key, "put_object", Key=self.full_key(key), Body=body, **self.object_args())

    def size(self, key):
        return self.call("read", key, "head_object", Key=self.full_key(key))["ContentLength"]

    def list(self, prefix=""):
        keys = []
        for page in self._pages("list", prefix, "list_objects_v2"):
            keys.extend(self._relative(item["Key"]) for item in page.get("Contents", []))
        return sorted(keys)

    def list_children(self, prefix=""):
        start = len(self._dir(prefix))
        names = []
        for page in self._pages("list", prefix, "list_objects_v2", Delimiter="/"):
            names.extend(common["Prefix"][start:].rstrip("/") for common in page.get("CommonPrefixes", []))
        return sorted(name for name in names if name)

    def delete(self, keys):
        self._delete_full([self.full_key(key) for key in keys])

    def delete_prefix(self, prefix):
        """Delete every object under prefix. Unfinished multipart uploads are cleanup_incomplete()'s job."""
        if not _key_parts(prefix, allow_empty=True):
            raise StorageError("refusing to delete everything in %s: give a prefix inside the repository" % self.url)
        for page in self._pages("list", prefix, "list_objects_v2"):
            self._delete_full([item["Key"] for item in page.get("Contents", [])])

    def _delete_full(self, full_keys):
        for start in range(0, len(full_keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = full_keys[start:start + 1000]
            response = self.call("delete", None, "delete_objects",
                                 Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            failed = response.get("Errors") or []
            if failed:
                first = failed[0]
                raise StorageError(self._redact(
                    "cannot delete %s (and %d more) at %s: %s: %s; check that the credentials are allowed "
                    "s3:DeleteObject on bucket %s" % (self.location(first.get("Key")), len(failed) - 1, self.endpoint,
                                                      first.get("Code"), first.get("Message"), self.bucket)))

    def cleanup_incomplete(self, prefix="", settle=0):
        """Abort the unfinished multipart uploads under prefix (writers killed before commit or abort) that
        started at least `settle` seconds ago.

        Call it only while holding the lock that serialises writers of this prefix: a live writer's upload
        looks the same as a dead one's.
        """
        removed = []
        for page in self._pages("clean up", prefix, "list_multipart_uploads"):
            for upload in page.get("Uploads", []):
                if settle and self._upload_activity(upload) > time.time() - settle:
                    continue
                self.abort_upload("clean up", upload["Key"], upload["UploadId"])
                started = upload.get("Initiated")
                removed.append("aborted unfinished multipart upload of %s (started %s, upload id %s)" % (
                    self.location(upload["Key"]),
                    started.strftime("%Y-%m-%dT%H:%M:%SZ") if started else "at an unknown time", upload["UploadId"]))
        return removed

    def newest_change(self, prefix):
        """When an object under prefix was last written or an upload there started, as a Unix time; None if
        there is nothing."""
        times = [_epoch(item.get("LastModified")) for page in self._pages("list", prefix, "list_objects_v2")
                 for item in page.get("Contents", [])]
        times += [self._upload_activity(upload) for page in self._pages("clean up", prefix, "list_multipart_uploads")
                  for upload in page.get("Uploads", [])]
        return max(times) if times else None

    def _upload_activity(self, upload):
        """When an unfinished upload last received a part (or started, before its first): a writer that is
        still going keeps adding parts. Some S3-compatible servers report a fixed Initiated time; parts' are real."""
        response = self._request("clean up", None, "list_parts", {"Key": upload["Key"], "UploadId": upload["UploadId"]},
                                 tolerated=("NoSuchUpload",) + S3_MISSING, where=self.location(upload["Key"]))
        parts = (response or {}).get("Parts") or []
        return max([_epoch(part.get("LastModified")) for part in parts] or [_epoch(upload.get("Initiated"))])

    def abort_upload(self, action, full, upload_id):
        """Abort one multipart upload; one that is already gone (NoSuchUpload) is fine."""
        self._request(action, None, "abort_multipart_upload", {"Key": full, "UploadId": upload_id},
                      tolerated=("NoSuchUpload",) + S3_MISSING, where=self.location(full))

    def lock(self, key, timeout, ttl=600, owner=None):
        """A lock object written with a conditional put (If-None-Match: *), kept alive by a heartbeat."""
        _check_lock_args(timeout, ttl)
        return _S3Lock(self, key, timeout, ttl, owner)

    def require_conditional_writes(self, location):
        model = self.client.meta.service_model
        put = model.operation_model("PutObject").input_shape.members
        delete = model.operation_model("DeleteObject").input_shape.members
        if not ("IfNoneMatch" in put and "IfMatch" in put and "IfMatch" in delete):
            raise DependencyError("the lock %s needs S3 conditional writes, which botocore %s cannot send: upgrade "
                                  "boto3 and botocore (pip install -U boto3) for %s"
                                  % (location, botocore.__version__, sys.executable))


class _S3Writer(Writer):
    """Multipart upload fed from a buffer of part_size bytes; parts go up from a small thread pool with at
    most PARTS_IN_FLIGHT in flight, so memory stays near (PARTS_IN_FLIGHT + 1) * part_size. An object
    smaller than one part is sent with a single PutObject at commit."""

    def __init__(self, storage, key):
        super().__init__(storage.describe(key))
        self._storage = storage
        self._key = key
        self._full = storage.full_key(key)
        self._buffer = bytearray()
        self._upload_id = None
        self._pool = None
        self._parts = []  # futures, in part order
        self._failed = None  # the first part that failed, to stop producing early
        self._slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)

    def _part_size(self):
        """Parts double in size every PARTS_PER_STEP parts (up to GROWN_PART_LIMIT): small objects keep memory low,
        and an object can still reach about 867 GiB with 8 MiB first parts before S3's 10,000-part limit."""
        base = self._storage.part_size
        grown = base << (len(self._parts) // PARTS_PER_STEP)
        return max(base, min(grown, GROWN_PART_LIMIT))

    def _write(self, view):
        part_size = self._part_size()
        while view.nbytes:
            room = part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= part_size:
                self._send_part()
                part_size = self._part_size()

    def _send_part(self):
        if self._failed is not None:
            self._failed.result()  # raises the part's error
        if len(self._parts) >= MAX_PARTS:
            raise StorageError("cannot write %s: it needs more than %d parts (the last of %s); raise the part_size "
                               "option" % (self.location, MAX_PARTS, _human_size(self._part_size())))
        if self._upload_id is None:
            self._start_upload()
        self._slots.acquire()  # blocks while PARTS_IN_FLIGHT parts are still on their way
        body, self._buffer = self._buffer, bytearray()
        future = self._pool.submit(self._upload_part, len(self._parts) + 1, body)
        future.add_done_callback(self._note_failure)
        self._parts.append(future)

    def _start_upload(self):
        args = self._storage.object_args()
        if self._storage.checksums:
            args["ChecksumAlgorithm"] = "CRC32"
        response = self._storage.call("write", self._key, "create_multipart_upload", Key=self._full, **args)
        self._upload_id = response["UploadId"]
        self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="keel-s3-upload")

    def _upload_part(self, number, body):
        try:
            args = {"Key": self._full, "UploadId": self._upload_id, "PartNumber": number, "Body": body}
            if self._storage.checksums:
                args["ChecksumAlgorithm"] = "CRC32"
            response = self._storage.call("write", self._key, "upload_part", **args)
            part = {"PartNumber": number, "ETag": response["ETag"]}
            if response.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = response["ChecksumCRC32"]
            return part
        finally:
            self._slots.release()

    def _note_failure(self, future):
        if self._failed is None and future.exception() is not None:
            self._failed = future

    def _commit(self):
        if self._upload_id is None:
            body, self._buffer = self._buffer, bytearray()
            self._storage.call("write", self._key, "put_object", Key=self._full, Body=body,
                               **self._storage.object_args())
            return
        if self._buffer:
            self._send_part()  # the last part may be smaller than part_size
        parts = [future.result() for future in self._parts]
        self._pool.shutdown()
        self._storage.call("write", self._key, "complete_multipart_upload", Key=self._full,
                           UploadId=self._upload_id, MultipartUpload={"Parts": parts})
        self._upload_id = None

    def _abort(self):
        self._buffer = bytearray()
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # a part still uploading could land after the abort and linger
        if self._upload_id is not None:
            with contextlib.suppress(StorageError):  # best effort: cleanup_incomplete() catches leftovers
                self._storage.abort_upload("abort", self._full, self._upload_id)
            self._upload_id = None


class _S3Reader:
    """A streaming GET that, when the connection breaks, resumes from where it stopped (Range + If-Match),
    because a restore of many GB crosses flaky networks."""

    def __init__(self, storage, key):
        self._storage = storage
        self._key = key
        self._position = 0
        self._resumes = 0
        self._etag = None
        self._body = self._open()

    def _open(self):
        args = {"Key": self._storage.full_key(self._key)}
        if self._etag:
            args.update(Range="bytes=%d-" % self._position, IfMatch=self._etag)
        response = self._storage.call("read", self._key, "get_object", **args)
        self._etag = response.get("ETag")
        return response["Body"]

    def read(self, size=-1):
        while True:
            try:
                data = self._body.read(None if size is None or size < 0 else size)
            except STREAM_ERRORS as err:
                if self._resumes >= MAX_RESUMES:
                    raise self._storage.error_for(err, "read", self._key) from None
                self._resumes += 1
                self._body.close()
                self._body = self._open()
                continue
            self._position += len(data)
            return data

    @staticmethod
    def readable():
        return True

    def close(self):
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class _S3Lock:
    """The lock object holds {host, pid, owner, since, expires, token}.

    Taking it: PutObject with If-None-Match: * succeeds only if no lock object exists (moto >= 5.0 and AWS
    S3 honour it). A lock past its `expires`, or held by a pid that is gone from this very machine, is
    replaced with PutObject If-Match: <its ETag>, so of several runs taking over only one wins. While held,
    a heartbeat renews `expires` every ttl/3 (If-Match: our ETag; failing that, the lock was taken over and
    `lost` says so). Release deletes it with If-Match: our ETag, leaving a successor's lock alone.
    Expiry compares wall clocks of different hosts: keep them in NTP sync (seconds do not matter with
    the default ttl of 10 minutes).
    """

    def __init__(self, storage, key, timeout, ttl, owner):
        self._storage = storage
        self._key = key
        self._full = storage.full_key(key)
        self.location = storage.describe(key)
        self._timeout = timeout
        self._ttl = ttl
        self._owner = owner
        self._etag = None
        self._expires = None
        self._seen = {}
        self._info = None
        self._stop = threading.Event()
        self._heartbeat = None
        self._renewing = threading.Lock()  # the heartbeat and check() renew with the same ETag: one at a time
        self._last_error = None

    def __enter__(self):
        self._storage.require_conditional_writes(self.location)
        deadline = time.monotonic() + self._timeout
        record = holder_record(self._owner, self._ttl)
        while not self._try_acquire(record):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                expires = self._seen.get("expires")
                raise _lock_timeout(self.location, self._timeout, self._seen,
                                    "wait for that run to finish or raise the lock timeout; if it died, the lock "
                                    "is taken over once it expires%s" % (" at %s" % expires if expires else ""))
            time.sleep(min(S3_LOCK_POLL, remaining))
            record = holder_record(self._owner, self._ttl)
        self._heartbeat = threading.Thread(target=self._beat, name="keel-s3-lock-heartbeat")
        self._heartbeat.daemon = True
        self._heartbeat.start()
        return self._info

    def _put(self, record, **condition):
        return self._storage.conditional("lock", self._key, "put_object", Key=self._full,
                                         Body=json.dumps(record).encode(), ContentType="application/json",
                                         **dict(self._storage.object_args(data=False), **condition))

    def _try_acquire(self, record):
        current = self._read()
        if current is None:
            response = self._put(record, IfNoneMatch="*")
            previous = None
        else:
            self._seen, etag, expires = current
            reason = self._stale(self._seen, expires)
            if reason is None:
                return False
            response = self._put(record, IfMatch=etag)
            previous = "took over lock %s from %s: %s" % (self.location, describe_holder(self._seen), reason)
        if response is None:
            return False  # another run got there first
        self._etag = response["ETag"]
        self._expires = _from_iso(record["expires"])
        # Leftovers may go at once only when we replaced a holder whose process is proven gone; an expired or a
        # released lock says nothing of a writer that lost it earlier and may still be writing.
        settle = 0 if current is not None and process_gone(self._seen) else self._ttl
        self._info = LockInfo(self.location, record, confirm=self.confirm, settle=settle)
        if previous:
            self._info.took_over = previous
            self._info.note(previous)
        return True

    def _read(self):
        """(record, etag, expiry) of the current lock object, or None when there is none."""
        try:
            response = self._storage.call("lock", self._key, "get_object", Key=self._full)
            with self._storage.errors("lock", self._key):
                body = response["Body"].read()
        except NotFound:
            return None
        record = parse_record(body)  # {} when not ours or damaged: it still counts as held until it expires
        expires = _from_iso(record.get("expires"))
        if expires is None:
            expires = calendar.timegm(response["LastModified"].utctimetuple()) + self._ttl
        return record, response["ETag"], expires

    @staticmethod
    def _stale(record, expires):
        if time.time() > expires:
            return "it expired at %s" % _iso(expires)
        if process_gone(record):
            return "its process %s is gone from this host" % record.get("pid")
        return None

    def _beat(self):
        interval = max(self._ttl / 3.0, 0.2)
        while not self._stop.wait(interval):
            if not self._renew():
                return

    def _renew(self):
        """One conditional renewal: True while we hold the lock (a failed request is retried at the next beat
        until the lock would expire); False once it is lost."""
        with self._renewing:
            if self._info.lost:
                return False
            try:
                self._renew_once()
            except StorageError as err:
                self._last_error = err
                if time.time() <= self._expires:
                    return True  # a network hiccup: try again at the next beat
                self._lose("lock %s expired because it could not be renewed (%s)" % (self.location, err))
                return False
            return not self._info.lost

    def _renew_once(self):
        record = dict(self._info.holder, expires=_iso(time.time() + self._ttl))
        response = self._put(record, IfMatch=self._etag)
        if response is None:
            self._lose("lock %s was taken over by another run while this one held it" % self.location)
            return
        self._etag, self._expires = response["ETag"], _from_iso(record["expires"])
        self._info.holder = record
        self._last_error = None

    def confirm(self):
        """Renew now, synchronously, and raise unless this run provably still holds the lock with a margin left.

        The heartbeat alone cannot prove it: it runs every ttl/3, hides failed renewals until expiry, and a pause
        (a stopped process, a stuck request, a clock that jumped) can outlast the ttl without it noticing. Other
        hosts judge expiry by their own clocks, so a renewal must leave at least LOCK_MARGIN of the ttl."""
        with self._renewing:
            if not self._info.lost:
                started = time.time()
                try:
                    self._renew_once()
                except StorageError as err:
                    raise StorageError("cannot prove that this run still holds lock %s: renewing it failed (%s); "
                                       "nothing was committed or deleted, run it again" % (self.location, err))
                took = time.time() - started
                if not self._info.lost and took > self._ttl * (1 - LOCK_MARGIN):
                    self._lose("lock %s may have been taken over: renewing it took %.0fs of its %.0fs ttl"
                               % (self.location, took, self._ttl))
        if self._info.lost:
            raise StorageError("%s; nothing was committed or deleted, and the next run cleans up what this one "
                               "left" % self._info.lost)

    def _lose(self, text):
        self._info.lost = text
        self._info.note(text)

    def __exit__(self, *exc_info):
        self._stop.set()
        self._heartbeat.join()
        if not self._info.lost:
            try:
                self._storage.conditional("unlock", self._key, "delete_object", Key=self._full, IfMatch=self._etag)
            except StorageError as err:
                self._info.note("could not release lock %s (%s); it expires at %s, or a run on this host takes it "
                                "over sooner" % (self.location, err, _iso(self._expires)))
        return False
