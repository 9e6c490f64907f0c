"""botocore errors built by hand, translated for the user: what failed, where, what to check, and no credential."""

import botocore.exceptions as botocore_exceptions
import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import s3_errors
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import whoami
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.s3 import S3Storage
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import s3_options

ENDPOINT = "https://minio.internal:9000"
ACCESS, SECRET, TOKEN = "AKIAKEELTEST00000000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY", "FwoGZXIvYXdzEJr//TOKEN"
WHERE = "s3://keel-backups/prod/postgres/db1/manifest.json"


@pytest.fixture(scope="module")
def storage():
    """A real S3Storage (its client is never called unless a test says so)."""
    return S3Storage("keel-backups", "prod", s3_options(dict(
        endpoint_url="https://ops:hunter2@minio.internal:9000", access_key=ACCESS, secret_key=SECRET,
        session_token=TOKEN, storage_class="DEEP_ARCHIVE")))


def client_error(code, message="", operation="PutObject", headers=None):
    return botocore_exceptions.ClientError({"Error": {"Code": code, "Message": message},
                                            "ResponseMetadata": {"HTTPHeaders": headers or {}}}, operation)


def translated(storage, err, action="write", key="postgres/db1/manifest.json"):
    error = s3_errors.translate(storage, err, action, key)
    text = str(error)
    for secret in (ACCESS, SECRET, TOKEN, "hunter2"):
        assert secret not in text
    return error


@pytest.mark.parametrize("code, action, tail", [
    ("NoSuchBucket", "write",
     "bucket keel-backups does not exist at %s: create it or fix the repository URL" % ENDPOINT),
    ("SignatureDoesNotMatch", "write", "access denied by %s (the secret key does not match the access key): check the "
     "credentials (access_key, secret_key, session_token, profile or the AWS environment of the user running the "
     "module)" % ENDPOINT),
    ("ExpiredToken", "list", "access denied by %s (the session token has expired): check the credentials" % ENDPOINT),
    ("AccessDenied", "read", "access denied by %s: check the credentials and that they are allowed s3:GetObject on "
     "bucket keel-backups (and s3:ListBucket, or a missing key looks the same)" % ENDPOINT),
    ("AccessDenied", "delete", "access denied by %s: check the credentials and that they are allowed s3:DeleteObject "
     "on bucket keel-backups" % ENDPOINT),
    ("403", "copy", "access denied by %s: check the credentials and that they are allowed this operation on "
     "bucket keel-backups" % ENDPOINT),
    ("NoSuchUpload", "write", "its multipart upload was aborted by someone else (cleanup_incomplete in another run, "
     "or a lifecycle rule): run it again"),
    ("PreconditionFailed", "read", "the object changed while it was being read: run it again"),
    ("NotImplemented", "lock", "%s does not support conditional writes (If-None-Match / If-Match)" % ENDPOINT),
    ("InvalidStorageClass", "write", "%s refuses storage class 'DEEP_ARCHIVE': choose one it supports" % ENDPOINT),
    ("KMS.DisabledException", "write", "server-side encryption failed (KMS.DisabledException: key is disabled): "
     "check sse_kms_key_id"),
])
def test_client_errors_say_what_to_fix(storage, code, action, tail):
    message = "key is disabled" if code.startswith("KMS") else "The request was refused: %s %s" % (ACCESS, SECRET)
    error = translated(storage, client_error(code, message), action)
    assert isinstance(error, StorageError) and not isinstance(error, NotFound)
    assert str(error).startswith("cannot %s %s: %s" % (action, WHERE, tail))


def test_a_missing_key_is_not_found_and_says_so_without_advice(storage):
    error = translated(storage, client_error("NoSuchKey", operation="GetObject"), "read")
    assert isinstance(error, NotFound) and str(error) == "%s does not exist" % WHERE


def test_a_bare_404_asks_whether_the_bucket_or_the_key_is_missing(storage, monkeypatch):
    def bucket_there(Bucket):
        return {}

    def bucket_gone(Bucket):
        raise client_error("404", operation="HeadBucket")

    monkeypatch.setattr(storage.client, "head_bucket", bucket_there)
    assert isinstance(translated(storage, client_error("404", operation="HeadObject"), "read"), NotFound)
    monkeypatch.setattr(storage.client, "head_bucket", bucket_gone)
    error = translated(storage, client_error("404", operation="HeadObject"), "read")
    assert isinstance(error, StorageError) and not isinstance(error, NotFound)
    assert "bucket keel-backups does not exist at %s" % ENDPOINT in str(error)
    listing = translated(storage, client_error("NotFound", operation="ListObjectsV2"), "list", key=None)
    assert str(listing).startswith("cannot list s3://keel-backups/prod: bucket keel-backups does not exist")


def test_a_bucket_in_another_region_names_the_region_s3_reported(storage):
    error = translated(storage, client_error("PermanentRedirect", headers={"x-amz-bucket-region": "eu-west-1"}))
    assert str(error).endswith(": bucket keel-backups lives in another region (eu-west-1): set the region option to it")
    assert str(translated(storage, client_error("301"))).endswith("another region: set the region option to it")


def test_an_unknown_answer_is_quoted_with_the_credentials_it_echoes_masked(storage):
    error = translated(storage, client_error("SlowDown", "Reduce your rate, %s / %s / %s" % (ACCESS, SECRET, TOKEN)))
    assert str(error) == "cannot write %s: %s answered SlowDown: Reduce your rate, *** / *** / ***" % (WHERE, ENDPOINT)


@pytest.mark.parametrize("err, tail", [
    (botocore_exceptions.EndpointConnectionError(endpoint_url=ENDPOINT), "cannot reach S3 endpoint %s: check "
     "endpoint_url, the network path and that the service is running" % ENDPOINT),
    (botocore_exceptions.ConnectTimeoutError(endpoint_url=ENDPOINT), "cannot reach S3 endpoint %s: check "
     "endpoint_url, the network path and that the service is running" % ENDPOINT),
    (botocore_exceptions.NoCredentialsError(), "no usable S3 credentials were found: set access_key and secret_key, "
     "or profile, or provide AWS credentials to the user running the module (%s)" % whoami()),
    (botocore_exceptions.SSLError(endpoint_url=ENDPOINT, error="self-signed"), "the TLS certificate of %s could not be "
     "verified: install the CA that signed it, or for a test endpoint set validate_certs: false" % ENDPOINT),
    (botocore_exceptions.ResponseStreamingError(error="connection reset"), "the connection to %s kept breaking (An "
     "error occurred while reading from response stream: connection reset): check the network and run it again"
     % ENDPOINT),
    (botocore_exceptions.ParamValidationError(report="Invalid bucket name"), "Parameter validation failed:\n"
     "Invalid bucket name (endpoint %s)" % ENDPOINT),
])
def test_transport_errors_name_the_endpoint_without_its_credentials(storage, err, tail):
    error = translated(storage, err, "list", key="postgres")
    assert isinstance(error, StorageError) and not isinstance(error, NotFound)
    assert str(error) == "cannot list s3://keel-backups/prod/postgres: " + tail


def test_a_broken_stream_never_quotes_the_password_of_an_endpoint_url(storage):
    err = botocore_exceptions.ReadTimeoutError(endpoint_url="https://ops:hunter2@minio.internal:9000/keel-backups/x")
    translated(storage, err, "read")


def test_a_caller_may_name_the_place_itself(storage):
    error = s3_errors.translate(storage, client_error("AccessDenied"), "clean up", where="s3://keel-backups/prod/x/")
    assert str(error).startswith("cannot clean up s3://keel-backups/prod/x/: access denied by %s: check the "
                                 "credentials and that they are allowed s3:ListBucketMultipartUploads" % ENDPOINT)
