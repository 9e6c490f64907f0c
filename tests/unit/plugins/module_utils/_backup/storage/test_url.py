"""Repository URLs and S3 options: what parses, what is refused and how it is said, without a network.
"""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import s3
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.s3 import S3Storage
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage, parse_url, s3_options
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError


@pytest.mark.parametrize("url, expected", [
    ("/srv/backups", ("local", "/srv/backups", None)),
    ("/srv/backups/", ("local", "/srv/backups", None)),
    ("file:///srv/backups", ("local", "/srv/backups", None)),
    ("file://localhost/srv/my%20backups", ("local", "/srv/my backups", None)),
    ("s3://bkt", ("s3", "bkt", "")),
    ("S3://bkt/", ("s3", "bkt", "")),
    ("s3://bkt/a/b/", ("s3", "bkt", "a/b")),
    ("s3://bkt//a//b", ("s3", "bkt", "a/b")),
    ("  s3://my.bucket-1/keel  ", ("s3", "my.bucket-1", "keel")),
])
def test_urls_that_parse(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize("url, message", [
    ("s3://", r"^repository URL s3:// names no bucket: write it as s3://BUCKET or s3://BUCKET/PREFIX$"),
    ("s3:///prefix", r"s3:///prefix names no bucket"),
    ("s3://b/x", r"'b' is not a valid bucket name"),
    ("s3://bkt/a/../b", r"invalid prefix of repository URL s3://bkt/a/../b 'a/../b'"),
    ("backups", r"repository path backups is relative: give an absolute path"),
    ("", r"the repository URL is empty"),
    ("gs://bkt/x", r"unsupported scheme gs://, use an absolute path, file:///PATH or s3://BUCKET/PREFIX"),
    ("file://nas/srv", r"names the host nas: file URLs must be local, write file:///PATH"),
])
def test_url_errors_say_what_to_write(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_url(url)


def test_credentials_in_the_url_are_refused_without_echoing_them():
    with pytest.raises(ConfigError) as caught:
        parse_url("s3://AKIAEXAMPLE:s3cr3t-value@bkt/keel")
    message = str(caught.value)
    assert "carries credentials" in message and "access_key and secret_key" in message
    assert "s3cr3t-value" not in message and "AKIAEXAMPLE" not in message


def test_open_storage_picks_the_backend(tmp_path):
    local = open_storage("file://" + str(tmp_path))
    assert isinstance(local, LocalStorage) and local.url == str(tmp_path)
    remote = open_storage("s3://bkt/keel/", {"endpoint_url": "http://127.0.0.1:9", "access_key": "AK",
                                             "secret_key": "SK"})
    assert isinstance(remote, S3Storage)
    assert remote.url == "s3://bkt/keel"
    assert remote.describe("postgres/db1/.lock") == "s3://bkt/keel/postgres/db1/.lock"
    assert remote.full_key("postgres/db1") == "keel/postgres/db1"
    assert open_storage("s3://bkt").describe("x/y") == "s3://bkt/x/y"


def test_s3_without_boto3_is_a_dependency_error(monkeypatch):
    monkeypatch.setattr(s3, "HAS_BOTO3", False)
    with pytest.raises(DependencyError, match=r"the repository s3://bkt/p needs the Python library boto3.*pip install boto3"):
        open_storage("s3://bkt/p")


def test_s3_options_defaults_and_none_values():
    options = s3_options({"region": None, "part_size": None, "sse": "AES256"})
    assert options["part_size"] == 8 * 1024 * 1024 and options["validate_certs"] is True
    assert options["sse"] == "AES256" and options["region"] is None


@pytest.mark.parametrize("given, message", [
    ({"acces_key": "x"}, r"unknown S3 option\(s\) acces_key: the known ones are access_key, endpoint_url"),
    ({"sse": "aes"}, r"sse must be AES256 or aws:kms, not 'aes'"),
    ({"sse_kms_key_id": "k"}, r"sse_kms_key_id needs sse: aws:kms"),
    ({"part_size": 1024}, r"part_size must be a number of bytes from 5242880 \(5 MiB, the S3 minimum\)"),
    ({"part_size": True}, r"part_size must be a number of bytes"),
    ({"validate_certs": "no"}, r"validate_certs must be true or false"),
    ({"access_key": "AK"}, r"access_key and secret_key go together"),
    ({"session_token": "t"}, r"session_token needs access_key and secret_key"),
    ({"profile": "p", "access_key": "AK", "secret_key": "SK"}, r"profile and access_key contradict each other"),
    ({"endpoint_url": "minio:9000"}, r"endpoint_url minio:9000 is not an http\(s\) URL: write it as https://HOST\[:PORT\]"),
])
def test_s3_option_errors(given, message):
    with pytest.raises(ConfigError, match=message):
        s3_options(given)


@pytest.mark.parametrize("given, message", [
    ({"region": "not a region!"}, r"S3 option region 'not a region!' is not a region name"),
    ({"endpoint_url": "http://[::1"}, r"S3 option endpoint_url cannot be used: Invalid IPv6 URL"),
])
def test_options_botocore_refuses_are_config_errors_not_tracebacks(given, message):
    with pytest.raises(ConfigError, match=message):
        open_storage("s3://bkt", dict(given, access_key="AK", secret_key="SK"))


def test_unknown_profile_is_a_config_error(tmp_path, monkeypatch):
    config = tmp_path / "aws-config"
    config.write_text("[profile other]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match=r"AWS profile 'backups' is not defined for the user running the module"):
        open_storage("s3://bkt", {"profile": "backups"})


def test_endpoint_userinfo_never_printed():
    storage = open_storage("s3://bkt", {"endpoint_url": "https://user:pa55@minio.example:9000", "access_key": "AK",
                                        "secret_key": "SK"})
    assert storage.endpoint == "https://minio.example:9000"
