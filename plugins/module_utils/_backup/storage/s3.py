# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A repository on AWS S3 or any S3-compatible endpoint, through boto3: objects stream up as multipart uploads
with bounded memory, downloads resume where a broken connection left them, failures are translated for the
user (s3_errors.py) and the lock is a conditional write (s3_lock.py). boto3's import is guarded, as
ansible-test requires; only s3:// repositories need it."""

import calendar
import contextlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import s3_errors
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import (
    MIB,
    Storage,
    StorageError,
    Writer,
    human_size,
    key_parts,
)
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import whoami
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.lock import check_lock_args
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.s3_lock import S3Lock
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import endpoint_secrets, printable_endpoint
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError

try:
    import boto3
    import botocore
    import botocore.exceptions
    from botocore.config import Config
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False


PARTS_PER_STEP = 1000
GROWN_PART_LIMIT = 128 * MIB
MAX_PARTS = 10000
PARTS_IN_FLIGHT = 2
MAX_RESUMES = 5  # broken downloads resumed per reader before giving up


def _epoch(moment):
    """A datetime from botocore as a Unix time; an unknown time counts as now (the cautious direction)."""
    return calendar.timegm(moment.utctimetuple()) + moment.microsecond / 1e6 if moment else time.time()


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


_CLIENT_OPTIONS = ("profile", "access_key", "secret_key", "session_token", "region", "endpoint_url", "validate_certs")
_clients = {}


def _s3_client(options):
    """One boto3 client per set of connection options in this process: a client costs 0.1-0.2 s to build (botocore
    loads and parses the S3 service model), and a backup opened the same repository twice (its own storage, then
    the audit entry at exit). boto3 clients are thread-safe."""
    key = tuple(options.get(name) for name in _CLIENT_OPTIONS)
    if key not in _clients:
        _clients[key] = _new_s3_client(options)
    return _clients[key]


def _new_s3_client(options):
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
                          "option or add it to ~/.aws/config" % (options["profile"], whoami())) from None
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
        self.endpoint = printable_endpoint(options)
        self._secrets = [options[name] for name in ("access_key", "secret_key", "session_token") if options[name]]
        self._secrets += endpoint_secrets(options)
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
        return "/".join(([self.prefix] if self.prefix else []) + key_parts(key, allow_empty=allow_empty))

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

    def redact(self, text):
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def error_for(self, err, action, key=None, where=None):
        """The StorageError (or NotFound) that tells the user what a botocore exception means here."""
        return s3_errors.translate(self, err, action, key, where)

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
        return self._request(action, key, method, kwargs, tolerated=s3_errors.S3_CONDITION_FAILED)

    def _request(self, action, key, method, kwargs, tolerated=(), where=None):
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as err:
            if s3_errors.error_code(err) in tolerated:
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
        if not key_parts(prefix, allow_empty=True):
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
                raise StorageError(self.redact(
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
                                 tolerated=("NoSuchUpload",) + s3_errors.S3_MISSING, where=self.location(upload["Key"]))
        parts = (response or {}).get("Parts") or []
        return max([_epoch(part.get("LastModified")) for part in parts] or [_epoch(upload.get("Initiated"))])

    def abort_upload(self, action, full, upload_id):
        """Abort one multipart upload; one that is already gone (NoSuchUpload) is fine."""
        self._request(action, None, "abort_multipart_upload", {"Key": full, "UploadId": upload_id},
                      tolerated=("NoSuchUpload",) + s3_errors.S3_MISSING, where=self.location(full))

    def lock(self, key, timeout, ttl=600, owner=None):
        """A lock object written with a conditional put (If-None-Match: *), kept alive by a heartbeat."""
        check_lock_args(timeout, ttl)
        return S3Lock(self, key, timeout, ttl, owner)

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
                               "option" % (self.location, MAX_PARTS, human_size(self._part_size())))
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
            except s3_errors.STREAM_ERRORS as err:
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
