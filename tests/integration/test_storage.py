"""The S3 storage backend against the moto server of the embedded stack (plus a private one for auth errors).

Every test works under its own prefix of the stack's bucket and removes it afterwards. The contract tests
run the same scenario on a local directory and on S3, since higher layers must not tell them apart.
"""

import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import keel_stack as stack_tool  # tools/keel_stack, put on sys.path by conftest.py
import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import lock, url
from ansible_collections.keel.ops.plugins.module_utils._backup.storage import s3 as s3_backend
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import LockTimeout, NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage

MIB = 1024 * 1024
COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".build")  # where tests/conftest.py links the collection
IN_CI = os.environ.get("CI") == "true"
PATTERN = bytes(range(256)) * 4096  # 1 MiB that is not all one byte


def options_for(s3, **extra):
    options = {"endpoint_url": s3["endpoint_url"], "region": s3["region"], "access_key": s3["access_key"],
               "secret_key": s3["secret_key"], "part_size": 5 * MIB}
    options.update(extra)
    return options


def unique_name(request):
    return "%s-%s" % (re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50], secrets.token_hex(3))


@pytest.fixture
def storage_for(s3, request):
    """open(**options) -> an S3Storage under a prefix of this test's own; everything under it goes afterwards."""
    name = unique_name(request)
    parent = open_storage("s3://%s/storage-tests" % s3["bucket"], options_for(s3))

    def make(**extra):
        return open_storage("s3://%s/storage-tests/%s" % (s3["bucket"], name), options_for(s3, **extra))

    yield make
    parent.cleanup_incomplete(name)
    parent.delete_prefix(name)


@pytest.fixture
def store(storage_for):
    return storage_for()


def uploads_under(storage, key=""):
    """Unfinished multipart uploads of the bucket under a storage's prefix (or one of its keys)."""
    prefix = storage.full_key(key, allow_empty=True)
    answer = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=prefix)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def write_pattern(writer, size):
    digest = hashlib.sha256()
    for offset in range(0, size, len(PATTERN)):
        chunk = PATTERN[:min(len(PATTERN), size - offset)]
        writer.write(chunk)
        digest.update(chunk)
    return digest.hexdigest()


def read_digest(storage, key, chunk=MIB):
    digest = hashlib.sha256()
    with storage.reader(key) as stream:
        while True:
            data = stream.read(chunk)
            if not data:
                return digest.hexdigest()
            digest.update(data)


def python_argv(code):
    return [sys.executable, "-c", textwrap.dedent(code)]


CHILD_ENV = dict(os.environ, PYTHONPATH=COLLECTIONS)  # children import the collection from .build/


def iso(timestamp):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


# --------------------------------------------------------------------------- #
# Streaming writes and reads.
# --------------------------------------------------------------------------- #


def test_multipart_stream_of_40_mib_reads_back_identical(store):
    with store.writer("postgres/db1/b1/dump") as writer:
        written = write_pattern(writer, 40 * MIB + 12345)
        assert writer.commit() == 40 * MIB + 12345
    assert store.size("postgres/db1/b1/dump") == 40 * MIB + 12345
    assert read_digest(store, "postgres/db1/b1/dump") == written
    etag = store.client.head_object(Bucket=store.bucket, Key=store.full_key("postgres/db1/b1/dump"))["ETag"]
    assert etag.endswith('-9"')  # 8 parts of 5 MiB and the rest: it really was a multipart upload
    assert uploads_under(store) == []


@pytest.mark.parametrize("size", [0, 100, 5 * MIB, 10 * MIB])
def test_sizes_at_the_edges(store, size):
    with store.writer("edge") as writer:
        written = write_pattern(writer, size)
        assert writer.commit() == size
    assert store.size("edge") == size and read_digest(store, "edge") == written
    assert uploads_under(store) == []


def test_uncommitted_writer_is_invisible(store):
    writer = store.writer("postgres/db1/b1/dump")
    write_pattern(writer, 7 * MIB)  # one part is on its way already
    time.sleep(0.2)
    assert not store.exists("postgres/db1/b1/dump")
    assert store.list("") == [] and store.list_children("postgres/db1") == []
    assert uploads_under(store) == [store.full_key("postgres/db1/b1/dump")]
    assert writer.commit() == 7 * MIB
    assert store.list("") == ["postgres/db1/b1/dump"]
    assert uploads_under(store) == []


def test_abort_leaves_no_object_and_no_upload(store):
    with store.writer("postgres/db1/b1/dump") as writer:
        write_pattern(writer, 12 * MIB)
        writer.abort()
    assert not store.exists("postgres/db1/b1/dump")
    assert uploads_under(store) == []
    with pytest.raises(ZeroDivisionError):
        with store.writer("postgres/db1/b1/dump") as writer:
            write_pattern(writer, 6 * MIB)
            print(1 / 0)  # the producer fails midway
    assert store.list("") == [] and uploads_under(store) == []


def test_crc32_checksums_when_the_client_sends_them(store):
    # Against AWS itself (no endpoint_url) botocore sends CRC32s and the writer declares them on the upload.
    store.checksums = True
    with store.writer("crc") as writer:
        written = write_pattern(writer, 11 * MIB)
        writer.commit()
    assert read_digest(store, "crc") == written


def test_storage_class_and_encryption_apply_to_every_object(storage_for):
    store = storage_for(storage_class="STANDARD_IA", sse="aws:kms", sse_kms_key_id="alias/keel")
    store.put("manifest.json", b"{}")
    with store.writer("dump") as writer:
        write_pattern(writer, 6 * MIB)
        writer.commit()
    for key in ("manifest.json", "dump"):
        head = store.client.head_object(Bucket=store.bucket, Key=store.full_key(key))
        assert (head["StorageClass"], head["ServerSideEncryption"], head["SSEKMSKeyId"]) == \
            ("STANDARD_IA", "aws:kms", "alias/keel"), key
    with store.lock(".lock", timeout=0):
        head = store.client.head_object(Bucket=store.bucket, Key=store.full_key(".lock"))
        assert head.get("StorageClass", "STANDARD") == "STANDARD"  # readable while held, whatever the class
        assert head["ServerSideEncryption"] == "aws:kms"


def test_reader_resumes_after_a_broken_connection(store):
    data = PATTERN * 12
    store.put("dump", data)
    with store.reader("dump") as stream:
        first = stream.read(3 * MIB)
        stream._body._raw_stream._fp.close()  # the connection drops mid-download
        rest = stream.read()
        assert stream._resumes == 1
    assert first + rest == data


def test_memory_stays_flat_while_streaming_200_mib(store, s3):
    # Default part size (8 MiB): at most 2 parts in flight plus the one being filled. Measured from
    # /proc/self/status in a fresh process: ru_maxrss would carry over the peak of the pytest process that
    # spawned it (Linux records the pre-exec peak), and the spike of loading botocore's models would hide
    # growth, so the high-water mark is reset after the warm-up.
    child = subprocess.run(python_argv("""
        import json, sys
        from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage

        def kib(field):
            with open("/proc/self/status") as status:
                return [int(line.split()[1]) for line in status if line.startswith(field + ":")][0]

        url, options = json.loads(sys.stdin.read())
        store = open_storage(url, options)
        store.put("warm-up", b"x")  # botocore's models and a connection, before the baseline
        chunk = bytes(range(256)) * 4096
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # VmHWM := VmRSS
            baseline = kib("VmRSS")
        except OSError:
            baseline = kib("VmHWM")
        with store.writer("big") as writer:
            for number in range(200):
                writer.write(chunk)
            size = writer.commit()
        print(json.dumps({"baseline_kib": baseline, "peak_kib": kib("VmHWM"), "size": size}))
    """), input=json.dumps([store.url, dict(options_for(s3), part_size=None)]), env=CHILD_ENV,
                           capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(child.stdout)
    growth_mb = (figures["peak_kib"] - figures["baseline_kib"]) / 1024.0
    print("streaming 200 MiB: peak RSS %.1f MiB, %.1f MiB over the baseline"
          % (figures["peak_kib"] / 1024.0, growth_mb))
    assert figures["size"] == 200 * MIB and store.size("big") == 200 * MIB
    assert growth_mb < 80
    assert figures["peak_kib"] < 150 * 1024  # the whole module's budget


# --------------------------------------------------------------------------- #
# The contract: local and S3 behave alike.
# --------------------------------------------------------------------------- #


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return open_storage(str(tmp_path / "repo"))
    return request.getfixturevalue("store")


def test_contract_put_get_list_delete(backend):
    keys = ["postgres/db1/b2/manifest.json", "postgres/db1/b1/manifest.json", "postgres/db1/b1/dump",
            "postgres/db2/b9/manifest.json", "redis/cache/b1/dump.rdb", "postgres/db1/.lock"]
    for key in keys:
        backend.put(key, key.encode())
    backend.put("postgres/db1/b1/manifest.json", b"v2")  # replaced whole
    assert backend.get("postgres/db1/b1/manifest.json") == b"v2"
    assert backend.size("postgres/db1/b1/dump") == len("postgres/db1/b1/dump")
    assert backend.exists("postgres/db1/b1/dump") and not backend.exists("postgres/db1/b1")
    assert backend.list("postgres/db1") == ["postgres/db1/.lock", "postgres/db1/b1/dump",
                                            "postgres/db1/b1/manifest.json", "postgres/db1/b2/manifest.json"]
    assert backend.list("") == sorted(keys)
    assert backend.list("postgres/db") == [] and backend.list("nothing/here") == []
    assert backend.list_children("") == ["postgres", "redis"]
    assert backend.list_children("postgres/db1/") == ["b1", "b2"]
    assert backend.list_children("postgres/db1/b1") == []
    for call in (backend.get, backend.size, backend.reader):
        with pytest.raises(NotFound, match=r"%s does not exist" % re.escape(backend.describe("postgres/none"))):
            call("postgres/none")
    backend.delete(["postgres/db2/b9/manifest.json", "postgres/db2/missing"])
    assert backend.list_children("postgres") == ["db1"]
    backend.delete_prefix("postgres/db1/b1")
    assert backend.list("postgres") == ["postgres/db1/.lock", "postgres/db1/b2/manifest.json"]
    with pytest.raises(StorageError, match="refusing to delete everything"):
        backend.delete_prefix("")


def test_contract_lock_is_exclusive_and_released(backend):
    with backend.lock("postgres/db1/.lock", timeout=0, owner="first") as info:
        assert info.holder["owner"] == "first" and info.took_over is None and info.warnings == []
        with pytest.raises(LockTimeout, match=r"held by host %s pid %d \(first\) since "
                                              % (re.escape(socket.gethostname()), os.getpid())):
            with backend.lock("postgres/db1/.lock", timeout=0.3):
                pass
    assert not backend.exists("postgres/db1/.lock")
    with backend.lock("postgres/db1/.lock", timeout=0):
        pass


def test_more_keys_than_one_page_or_batch(store):
    keys = ["postgres/db1/b1/part-%04d" % number for number in range(1005)]  # pages and DeleteObjects: 1000
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, b""), keys))
    assert store.list("postgres/db1/b1") == keys
    store.delete(keys[:1002])
    assert store.list("postgres/db1") == keys[1002:]
    store.put("postgres/db1/b2/manifest.json", b"{}")
    store.delete_prefix("postgres/db1")
    assert store.list("") == []


# --------------------------------------------------------------------------- #
# Leftovers of killed writers.
# --------------------------------------------------------------------------- #


def test_cleanup_incomplete_aborts_the_upload_of_a_killed_writer(store, s3):
    store.put("postgres/db1/b1/manifest.json", b"{}")
    child = subprocess.Popen(python_argv("""
        import json, sys, time
        from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
        url, options = json.loads(sys.stdin.read())
        writer = open_storage(url, options).writer("postgres/db1/b2/dump")
        writer.write(b"x" * 11 * 1024 * 1024)  # two parts sent
        writer._parts[-1].result()
        print("uploading", flush=True)
        time.sleep(60)
    """), env=CHILD_ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdin.write(json.dumps([store.url, options_for(s3)]))
        child.stdin.close()
        assert child.stdout.readline().strip() == "uploading"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    # A multipart upload dropped by hand is an orphan as well.
    orphan = store.client.create_multipart_upload(Bucket=store.bucket, Key=store.full_key("postgres/db1/b3/dump"))
    assert sorted(uploads_under(store)) == [store.full_key("postgres/db1/b2/dump"),
                                            store.full_key("postgres/db1/b3/dump")]
    assert store.list("postgres") == ["postgres/db1/b1/manifest.json"]
    assert store.cleanup_incomplete("postgres/db2") == []
    removed = store.cleanup_incomplete("postgres/db1")
    assert len(removed) == 2
    assert removed[1].startswith("aborted unfinished multipart upload of %s (started "
                                 % store.describe("postgres/db1/b3/dump"))
    assert removed[1].endswith(", upload id %s)" % orphan["UploadId"])
    assert uploads_under(store) == [] and store.cleanup_incomplete("") == []
    assert store.list("postgres") == ["postgres/db1/b1/manifest.json"]


# --------------------------------------------------------------------------- #
# Locks.
# --------------------------------------------------------------------------- #


def put_lock(store, record):
    store.client.put_object(Bucket=store.bucket, Key=store.full_key("postgres/db1/.lock"),
                            Body=json.dumps(record).encode())


def test_heartbeat_keeps_a_held_lock_past_its_ttl(store):
    started = time.monotonic()
    with store.lock("postgres/db1/.lock", timeout=0, ttl=1.5, owner="pg_backup db1") as held:
        with pytest.raises(LockTimeout) as caught:
            with store.lock("postgres/db1/.lock", timeout=3, ttl=1.5):
                pass
        assert time.monotonic() - started >= 3  # twice the ttl: without renewal it would have been taken over
        record = json.loads(store.get("postgres/db1/.lock"))
        assert record["token"] == held.holder["token"] and record["expires"] > held.holder["since"]
    message = str(caught.value)
    assert message.startswith("gave up after 3s waiting for lock %s, held by host %s pid %d (pg_backup db1) since "
                              % (store.describe("postgres/db1/.lock"), socket.gethostname(), os.getpid()))
    assert "wait for that run to finish or raise the lock timeout; if it died, the lock is taken over once it " \
           "expires at " in message
    assert caught.value.holder["pid"] == os.getpid()
    assert held.lost is None and held.warnings == []
    assert not store.exists("postgres/db1/.lock")


def test_expired_lock_is_taken_over(store):
    now = time.time()
    put_lock(store, {"host": "old-host", "pid": 4242, "owner": "pg_backup db1", "since": iso(now - 700),
                     "expires": iso(now - 100)})
    with store.lock("postgres/db1/.lock", timeout=0, owner="next") as held:
        assert held.took_over == "took over lock %s from host old-host pid 4242 (pg_backup db1) since %s: it " \
                                 "expired at %s" % (store.describe("postgres/db1/.lock"), iso(now - 700), iso(now - 100))
        assert held.warnings == [held.took_over]
        assert json.loads(store.get("postgres/db1/.lock"))["owner"] == "next"
    assert not store.exists("postgres/db1/.lock")


def test_lock_of_a_dead_process_on_this_host_is_taken_over_at_once(store):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    record = dict(lock.holder_record("crashed run", ttl=600), pid=child.pid)
    put_lock(store, record)
    with store.lock("postgres/db1/.lock", timeout=0) as held:
        assert held.took_over.endswith(": its process %d is gone from this host" % child.pid)


def test_unreadable_lock_counts_from_its_last_modified_time(store):
    store.client.put_object(Bucket=store.bucket, Key=store.full_key("postgres/db1/.lock"), Body=b"not json")
    with pytest.raises(LockTimeout, match=r"held by another process \(it has not recorded who it is yet\)"):
        with store.lock("postgres/db1/.lock", timeout=0, ttl=600):
            pass
    time.sleep(2.1)
    with store.lock("postgres/db1/.lock", timeout=0, ttl=1) as held:
        assert "it expired at" in held.took_over


def test_a_lock_taken_over_behind_our_back_is_reported_not_deleted(store):
    with store.lock("postgres/db1/.lock", timeout=0, ttl=0.9) as held:
        put_lock(store, {"host": "intruder", "pid": 1, "since": iso(time.time()), "expires": iso(time.time() + 600)})
        deadline = time.monotonic() + 5
        while held.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert held.lost == "lock %s was taken over by another run while this one held it" \
            % store.describe("postgres/db1/.lock")
        with pytest.raises(StorageError, match="was taken over by another run"):
            held.check()
    assert json.loads(store.get("postgres/db1/.lock"))["host"] == "intruder"  # not ours to delete


# --------------------------------------------------------------------------- #
# Failures the user must understand.
# --------------------------------------------------------------------------- #


def test_missing_bucket_is_named_with_the_fix(s3):
    bucket = "keel-missing-" + secrets.token_hex(4)
    store = open_storage("s3://%s/backups" % bucket, options_for(s3))
    expected = r": bucket %s does not exist at %s: create it or fix the repository URL$" % (
        bucket, re.escape(s3["endpoint_url"]))
    calls = {
        "list": lambda: store.list("postgres"),
        "read": lambda: store.exists("postgres/db1/b1/manifest.json"),  # HEAD's bare 404 is told apart
        "write": lambda: store.put("postgres/db1/b1/manifest.json", b"{}"),
        "lock": lambda: store.lock("postgres/db1/.lock", timeout=1).__enter__(),
    }
    for action, call in calls.items():
        with pytest.raises(StorageError, match=r"^cannot %s s3://%s/backups" % (action, bucket) + r"\S*" + expected):
            call()
    with pytest.raises(StorageError, match=r"^cannot write s3://%s/backups/dump" % bucket + expected):
        with store.writer("dump") as writer:
            writer.write(b"x" * 6 * MIB)  # the upload starts here


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint(s3):
    endpoint = "http://127.0.0.1:%d" % free_port()
    store = open_storage("s3://keel-backups/x", dict(options_for(s3), endpoint_url=endpoint))
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"^cannot list s3://keel-backups/x/postgres: cannot reach S3 endpoint "
                                           r"%s: check endpoint_url, the network path and that the service is "
                                           r"running$" % re.escape(endpoint)):
        store.list("postgres")
    assert time.monotonic() - started < 30


@pytest.fixture
def locked_down_s3(tmp_path):
    """A private moto server that checks signatures and IAM policies, with a user allowed nothing."""
    stack = stack_tool.Stack(tmp_path / "auth-stack")
    try:
        facts = stack.start_service("s3")["s3"]
    except stack_tool.StackError as err:
        if IN_CI:
            pytest.fail("private moto server: %s" % err, pytrace=False)
        pytest.skip("private moto server: %s" % err)
    try:
        iam = boto3.client("iam", endpoint_url=facts["endpoint_url"], region_name=facts["region"],
                           aws_access_key_id=facts["access_key"], aws_secret_access_key=facts["secret_key"])
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        request = urllib.request.Request(facts["endpoint_url"] + "/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()  # from now on every request is authenticated
        yield dict(facts, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    finally:
        stack.stop()


def test_credential_errors_say_what_is_wrong_without_the_secret(locked_down_s3):
    facts = locked_down_s3
    cases = [
        (dict(secret_key="Wr0ng-s3cret-value-123"), "the secret key does not match the access key"),
        (dict(access_key="AKIAUNKNOWN000000000", secret_key="An0ther-s3cret-value"), "the access key is unknown there"),
    ]
    for override, reason in cases:
        store = open_storage("s3://%s/keel" % facts["bucket"], options_for(facts, **override))
        with pytest.raises(StorageError) as caught:
            store.put("postgres/db1/manifest.json", b"{}")
        message = str(caught.value)
        assert message == ("cannot write s3://%s/keel/postgres/db1/manifest.json: access denied by %s (%s): check "
                           "the credentials (access_key, secret_key, session_token, profile or the AWS environment "
                           "of the user running the module)" % (facts["bucket"], facts["endpoint_url"], reason))
        assert override["secret_key"] not in message and facts["secret_key"] not in message
    # Right credentials, no permission: the message names the permission. (At the bucket's root: moto 5.2.1
    # miscomputes the signature of a ListObjectsV2 whose Prefix holds a "/".)
    store = open_storage("s3://%s" % facts["bucket"], options_for(facts))
    with pytest.raises(StorageError, match=r"^cannot list s3://%s: access denied by %s: check the credentials and "
                                           r"that they are allowed s3:ListBucket on bucket %s$"
                                           % (facts["bucket"], re.escape(facts["endpoint_url"]), facts["bucket"])):
        store.list("")
    with pytest.raises(StorageError, match=r"access denied .* allowed s3:GetObject on bucket"):
        store.exists("postgres/db1/manifest.json")  # HEAD: a bare 403


def test_an_upload_aborted_behind_the_writers_back_fails_cleanly(store):
    writer = store.writer("dump")
    write_pattern(writer, 6 * MIB)
    writer._parts[0].result()
    [upload] = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.full_key("dump"))["Uploads"]
    store.client.abort_multipart_upload(Bucket=store.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    # AWS answers NoSuchUpload ("its multipart upload was aborted by someone else..."); moto 5.2.1 a bare 500.
    with pytest.raises(StorageError, match=r"^cannot write %s: " % re.escape(store.describe("dump"))):
        write_pattern(writer, 12 * MIB)
        writer.commit()
    assert uploads_under(store) == [] and not store.exists("dump")
    with pytest.raises(StorageError, match="its writer was already aborted"):
        writer.commit()


def test_since_and_expiry_are_utc(store):
    with store.lock("postgres/db1/.lock", timeout=0, ttl=60) as held:
        since = datetime.datetime.strptime(held.holder["since"], "%Y-%m-%dT%H:%M:%SZ")
        expires = datetime.datetime.strptime(held.holder["expires"], "%Y-%m-%dT%H:%M:%SZ")
        assert (expires - since).total_seconds() == 60
        utcnow = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        assert abs((utcnow - since).total_seconds()) < 5


# --------------------------------------------------------------------------- #
# Proving the lock before an irreversible step.
# --------------------------------------------------------------------------- #


def test_check_proves_the_lock_then_and_there_not_from_the_last_heartbeat(store):
    """A pause (a stopped process, a stuck request) can outlast the ttl between two heartbeats: another run takes
    the lock over, and the heartbeat has not noticed yet. check() must find out by itself, at once."""
    with store.lock("postgres/db1/.lock", timeout=0, ttl=600) as held:
        held.check()  # still ours: renews quietly
        put_lock(store, {"host": "intruder", "pid": 1, "since": iso(time.time()), "expires": iso(time.time() + 600)})
        with pytest.raises(StorageError, match="was taken over by another run while this one held it; nothing was "
                                               "committed or deleted"):
            held.check()
    assert json.loads(store.get("postgres/db1/.lock"))["host"] == "intruder"


def test_check_fails_when_the_lock_cannot_be_renewed(store, s3):
    with store.lock("postgres/db1/.lock", timeout=0, ttl=600) as held:
        reachable = store.client
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        try:
            store.client = boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % closed.getsockname()[1],
                                        region_name=s3["region"], aws_access_key_id="x", aws_secret_access_key="y",
                                        config=s3_backend._client_config(dict(url.S3_DEFAULTS, endpoint_url="x")))
            with pytest.raises(StorageError, match="cannot prove that this run still holds lock .*renewing it failed"):
                held.check()
        finally:
            store.client = reachable
            closed.close()


def test_cleanup_leaves_young_leftovers_unless_their_writer_is_proven_gone(store):
    """After a normal release (or an expiry) a writer that lost the lock may still be writing: its fresh
    leftovers stay until they are older than the ttl. A holder whose pid is gone from this host is proven dead."""
    store.put("postgres/db1/20261201T000000000Z-aaaaaa/db.dump", b"partial backup of someone still writing")
    upload = store.client.create_multipart_upload(Bucket=store.bucket,
                                                  Key=store.full_key("postgres/db1/20261201T000000000Z-bbbbbb/x"))
    store.client.upload_part(Bucket=store.bucket, Key=store.full_key("postgres/db1/20261201T000000000Z-bbbbbb/x"),
                             UploadId=upload["UploadId"], PartNumber=1, Body=b"first part of a live writer")
    with store.lock("postgres/db1/.lock", timeout=0, ttl=600) as held:
        assert held.settle == 600
        assert store.cleanup_incomplete("postgres/db1", held.settle) == []
        assert store.newest_change("postgres/db1/20261201T000000000Z-aaaaaa") > time.time() - 60
    assert uploads_under(store) == [store.full_key("postgres/db1/20261201T000000000Z-bbbbbb/x")]
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    put_lock(store, dict(lock.holder_record("killed run", ttl=600), pid=child.pid))
    with store.lock("postgres/db1/.lock", timeout=0, ttl=600) as held:
        assert held.settle == 0
        assert len(store.cleanup_incomplete("postgres/db1", held.settle)) == 1
    assert uploads_under(store) == [] and upload["UploadId"]
