# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository URLs and S3 options: what a repository is, checked before anything is reached, and the storage
that serves it (open_storage). boto3 is imported only for s3:// repositories."""

import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.base import MIB, key_parts
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


DEFAULT_PART_SIZE = 8 * MIB  # two in flight plus one filling: ~24 MiB, well inside the module's memory budget
MIN_PART_SIZE = 5 * MIB  # S3 refuses smaller parts, except the last one
MAX_PART_SIZE = 5 * 1024 * MIB
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


def open_storage(url, s3=None):
    """Return the Storage for a repository URL: an absolute path, file:///path or s3://bucket[/prefix]."""
    kind, location, prefix = parse_url(url)
    # Imported here, not at the top: boto3 takes a tenth of a second to import, and only s3:// needs it.
    if kind == "local":
        from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
        return LocalStorage(location)
    from ansible_collections.keel.ops.plugins.module_utils._backup.storage.s3 import S3Storage
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
    prefix = "/".join(key_parts(path, allow_empty=True, error=ConfigError, what="prefix of repository URL %s" % url))
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
    if options["region"] is not None:
        _check_region(options["region"])
    endpoint = options["endpoint_url"]
    try:
        parts = urlsplit(endpoint) if endpoint else None
    except ValueError as error:  # an unclosed [IPv6 address, for one
        raise ConfigError("S3 option endpoint_url cannot be used: %s; write it as https://HOST[:PORT]" % error)
    if parts and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError("S3 option endpoint_url %s is not an http(s) URL: write it as https://HOST[:PORT]"
                          % printable_endpoint(options))


def _check_region(region):
    """botocore's own rule for region names, so a typo fails here rather than as an odd endpoint error."""
    try:
        import botocore.exceptions
        import botocore.utils
    except ImportError:
        return  # S3Storage says that boto3 is missing
    try:
        botocore.utils.validate_region_name(region)
    except botocore.exceptions.InvalidRegionError:
        raise ConfigError("S3 option region %r is not a region name: write it as AWS does, such as eu-central-1 "
                          "(S3-compatible servers usually accept us-east-1)" % region)


def endpoint_secrets(options):
    """The credentials an endpoint_url carries in its userinfo (as written and decoded): botocore quotes the URL in
    some of its errors, so these are masked like the keys. A user name alone is no secret, and masking a short one
    would garble the rest of the message."""
    userinfo = urlsplit(options["endpoint_url"] or "").netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return sorted({text for text in (userinfo if password else "", password, unquote(password)) if text},
                  key=len, reverse=True)


def printable_endpoint(options):
    endpoint = options["endpoint_url"]
    if not endpoint:
        return "AWS S3" + (" (%s)" % options["region"] if options["region"] else "")
    parts = urlsplit(endpoint)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
