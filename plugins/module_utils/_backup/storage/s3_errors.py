# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an S3 error means for the user: botocore's exceptions and error codes turned into StorageError
messages that say what failed, where, and what to check (credentials, permissions, region, endpoint), without
ever carrying a credential."""

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import NotFound, StorageError
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import whoami

try:
    import botocore.exceptions
    # Errors that break a streaming GET midway; the reader resumes from where it stopped.
    STREAM_ERRORS = (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ResponseStreamingError,
                     botocore.exceptions.IncompleteReadError, botocore.exceptions.ConnectionClosedError)
except ImportError:
    STREAM_ERRORS = ()


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


def error_code(err):
    return str(err.response.get("Error", {}).get("Code", ""))


def translate(storage, err, action, key=None, where=None):
    """The StorageError (or NotFound) that tells the user what a botocore exception means here."""
    where = where or storage.describe(key if key is not None else "")
    if isinstance(err, botocore.exceptions.ClientError):
        cls, message = _client_error(storage, err, action, key, where)
    else:
        cls, message = StorageError, _transport_error(storage, err, action, where)
    return cls(storage.redact(message))


def _client_error(storage, err, action, key, where):
    code = error_code(err)
    details = err.response.get("Error", {})
    fail = "cannot %s %s: " % (action, where)
    if code == "NoSuchKey" or (code in S3_MISSING and key is not None and not _bucket_missing(storage)):
        return NotFound, "%s does not exist" % where
    if code == "NoSuchBucket" or code in S3_MISSING:
        return StorageError, fail + "bucket %s does not exist at %s: create it or fix the repository URL" % (
            storage.bucket, storage.endpoint)
    if code in S3_BAD_CREDENTIALS:
        return StorageError, fail + "access denied by %s (%s): check the credentials (access_key, secret_key, " \
            "session_token, profile or the AWS environment of the user running the module)" % (
                storage.endpoint, S3_BAD_CREDENTIALS[code])
    if code in S3_DENIED:
        # Without s3:ListBucket, S3 answers a read of a missing key with AccessDenied rather than NoSuchKey.
        return StorageError, fail + "access denied by %s: check the credentials and that they are allowed %s " \
            "on bucket %s%s" % (storage.endpoint, S3_PERMISSIONS.get(action, "this operation"), storage.bucket,
                                " (and s3:ListBucket, or a missing key looks the same)" if action == "read" else "")
    if code in S3_WRONG_REGION:
        region = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
        return StorageError, fail + "bucket %s lives in another region%s: set the region option to it" % (
            storage.bucket, " (%s)" % region if region else "")
    if code == "NoSuchUpload":
        return StorageError, fail + "its multipart upload was aborted by someone else (cleanup_incomplete in " \
            "another run, or a lifecycle rule): run it again"
    if code in ("PreconditionFailed", "412") and action == "read":
        return StorageError, fail + "the object changed while it was being read: run it again"
    if code == "NotImplemented" and action == "lock":
        return StorageError, fail + "%s does not support conditional writes (If-None-Match / If-Match), " \
            "which the repository lock needs: use an endpoint that does, such as AWS S3 or a recent MinIO" \
            % storage.endpoint
    if code == "InvalidStorageClass":
        return StorageError, fail + "%s refuses storage class %r: choose one it supports" % (
            storage.endpoint, storage.object_args().get("StorageClass"))
    if "KMS" in code:
        return StorageError, fail + "server-side encryption failed (%s: %s): check sse_kms_key_id and that " \
            "the credentials may use that key" % (code, details.get("Message", ""))
    answer = "%s: %s" % (code or "an error", details.get("Message") or err)
    return StorageError, fail + "%s answered %s" % (storage.endpoint, answer)


def _transport_error(storage, err, action, where):
    exceptions = botocore.exceptions
    fail = "cannot %s %s: " % (action, where)
    if isinstance(err, (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)):
        return fail + "no usable S3 credentials were found: set access_key and secret_key, or profile, or " \
            "provide AWS credentials to the user running the module (%s)" % whoami()
    if isinstance(err, exceptions.SSLError):
        return fail + "the TLS certificate of %s could not be verified: install the CA that signed it, or " \
            "for a test endpoint set validate_certs: false" % storage.endpoint
    if isinstance(err, (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError,
                        exceptions.ProxyConnectionError)):
        return fail + "cannot reach S3 endpoint %s: check endpoint_url, the network path and that the " \
            "service is running" % storage.endpoint
    if isinstance(err, STREAM_ERRORS):
        return fail + "the connection to %s kept breaking (%s): check the network and run it again" % (
            storage.endpoint, err)
    return fail + "%s (endpoint %s)" % (err, storage.endpoint)


def _bucket_missing(storage):
    # HEAD answers a bare 404 both for a missing key and a missing bucket: ask about the bucket.
    try:
        storage.client.head_bucket(Bucket=storage.bucket)
    except botocore.exceptions.ClientError as err:
        return error_code(err) in ("NoSuchBucket",) + S3_MISSING
    except botocore.exceptions.BotoCoreError:
        return False
    return False
