"""The options every backup kind shares: key and passphrase files read with precise errors, S3 options, and the
config built (and checked) before anything is reached."""

import re

import pytest
from pyrage import x25519

from ansible_collections.keel.ops.plugins.module_utils._backup import config as backup_config
from ansible_collections.keel.ops.plugins.module_utils._backup.config import BackupConfig, Reporter
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

from .helpers import at


def public_key():
    return str(x25519.Identity.generate().to_public())


def test_a_missing_or_unreadable_file_is_named_with_its_option(tmp_path):
    missing = str(tmp_path / "nowhere.txt")
    with pytest.raises(ConfigError, match="^encryption_recipients_file: cannot read %s: No such file or directory$"
                                          % re.escape(missing)):
        backup_config.read_text(missing, "encryption_recipients_file")
    with pytest.raises(ConfigError, match="^decryption_identity_file: cannot read %s: Is a directory$"
                                          % re.escape(str(tmp_path))):
        backup_config.read_text(str(tmp_path), "decryption_identity_file")


def test_a_binary_key_file_is_refused_with_the_offending_byte(tmp_path):
    path = tmp_path / "key.der"
    path.write_bytes(b"AGE\xff\x00")
    with pytest.raises(ConfigError, match=r"^decryption_identity_file: .*key.der is not a UTF-8 text file \(byte 3 is "
                                          r"0xff\): give the key file itself"):
        backup_config.read_text(str(path), "decryption_identity_file")


def test_a_secret_file_loses_only_its_line_ending(tmp_path):
    path = tmp_path / "passphrase"
    path.write_text("  correct horse battery  \r\n")
    assert backup_config.read_secret_file(str(path), "encryption_passphrase_file") == "  correct horse battery  "
    assert backup_config.read_secret_file(None, "encryption_passphrase_file") is None
    assert backup_config.read_secret_file("", "encryption_passphrase_file") is None


def test_an_empty_secret_file_is_refused_rather_than_used_as_an_empty_passphrase(tmp_path):
    path = tmp_path / "passphrase"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="^decryption_passphrase_file: %s is empty$" % re.escape(str(path))):
        backup_config.read_secret_file(str(path), "decryption_passphrase_file")


def test_recipients_come_from_the_list_then_the_file_without_comments_or_blank_lines(tmp_path):
    path = tmp_path / "recipients.txt"
    path.write_text("# the ops team\nage1second\n\n   \n  # indented comment\n  age1third  \n")
    params = dict(encryption_recipients=["age1first"], encryption_recipients_file=str(path))
    where = "encryption_recipients_file %s line " % path
    assert backup_config.recipient_texts(params) == [("age1first", "encryption_recipients[0]"),
                                                     ("age1second", where + "2"), ("age1third", where + "6")]
    assert backup_config.recipient_texts(dict(encryption_recipients=None, encryption_recipients_file=None)) == []


def test_a_bad_recipient_in_the_file_is_named_by_the_file_and_its_line(tmp_path):
    path = tmp_path / "recipients.txt"
    path.write_text("# the ops team\n%s\nAGE-SECRET-KEY-1NOTAPUBLICKEY\n" % public_key())
    params = dict(encryption_recipients=[public_key()], encryption_recipients_file=str(path))
    with pytest.raises(ConfigError, match="^encryption_recipients_file %s line 3 must be an age public key"
                       % re.escape(str(path))):
        backup_config.encryption_from_params(params)


def test_s3_options_are_the_set_s3_parameters_without_their_prefix():
    params = dict(repository="s3://b/p", s3_region="eu-central-1", s3_access_key=None, s3_validate_certs=False,
                  login_host="db1")
    assert backup_config.s3_options(params) == {"region": "eu-central-1", "validate_certs": False}
    assert backup_config.s3_options(dict(repository="/srv/backups", s3_region=None)) is None


def test_a_config_from_params_carries_parsed_recipients_passphrase_and_defaults(tmp_path):
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("s3cret\n")
    recipient = public_key()
    config = BackupConfig.from_params(dict(repository=str(tmp_path / "repo"), compression="gzip",
                                           compression_level=None, encryption_recipients=[recipient],
                                           encryption_passphrase_file=str(passphrase), keep_last=3,
                                           before="2026-03-01T12:00:00Z", labels={"team": "db"}))
    assert config.compression_level == 6 and config.keep_last == 3 and config.labels == {"team": "db"}
    assert [(text, str(parsed)) for text, parsed in config.recipients] == [(recipient, recipient)]
    assert config.passphrase == "s3cret" and config.encrypted
    assert config.before == at("2026-03-01T12:00:00") and config.signer is None and config.trust is None
    assert config.s3 is None


def test_a_config_without_keys_is_not_encrypted(tmp_path):
    config = BackupConfig.from_params(dict(repository=str(tmp_path), compression=None))
    assert not config.encrypted and config.recipients == [] and config.passphrase is None
    assert config.compression_level == 1 and config.before is None  # zstd's default level


@pytest.mark.parametrize("params, message", [
    (dict(repository="relative/path"), "repository path relative/path is relative"),
    (dict(repository="s3://bucket/x", s3_access_key="AKIAEXAMPLE"), "access_key and secret_key go together"),
    (dict(repository="/srv/b", keep_daily=-1), "keep_daily must be 0 or more"),
    (dict(repository="/srv/b", compression="gzip", compression_level=12), "compression_level for gzip must be 1 to 9"),
    (dict(repository="/srv/b", before="yesterday"), "before must be an ISO 8601 timestamp"),
    (dict(repository="/srv/b", encryption_recipients=["AGE-SECRET-KEY-1XYZ"]),
     "encryption_recipients\\[0\\] must be an age public key .* never give a secret key here"),
])
def test_invalid_options_are_refused_before_anything_is_reached(params, message):
    with pytest.raises(ConfigError, match=message):
        BackupConfig.from_params(params)


def test_the_reporter_keeps_warnings_and_passes_them_on():
    passed = []
    reporter = Reporter(check_mode=True, warn=passed.append)
    reporter.warn("lock taken over")
    assert reporter.warnings == passed == ["lock taken over"] and reporter.check_mode
