# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every backup kind reads the same way - repository and S3, compression, encryption, signing,
retention, 'before' - into a plain config object, checked before anything is reached; and the Reporter through
which the backup logic warns and learns whether this is a dry run."""

from ansible_collections.keel.ops.plugins.module_utils._backup import compression, encryption
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import parse_timestamp
from ansible_collections.keel.ops.plugins.module_utils._backup.retention import validate_retention
from ansible_collections.keel.ops.plugins.module_utils._backup.signing import Signer, Trust
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import check_repository
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


VERSION = "0.1.0"


class BackupConfig:
    """Options every backup kind reads the same way (storage, compression, encryption, retention, 'before');
    each kind's config subclasses it and adds its own connection and checks in from_params()."""

    def __init__(self, **options):
        self.__dict__.update(options)

    @classmethod
    def from_params(cls, params):
        config = cls(**params)
        config.s3 = s3_options(params)
        check_repository(params["repository"], config.s3)
        config.signer, config.trust = signing_from_params(params)
        config.compression_level = compression.validate_compression(
            params.get("compression") or compression.DEFAULT_COMPRESSION, params.get("compression_level"))
        validate_retention(params)
        config.recipients, config.passphrase = encryption_from_params(params)
        config.before = parse_timestamp(params["before"], "before") if params.get("before") else None
        return config

    @property
    def encrypted(self):
        return bool(self.recipients or self.passphrase)


class Reporter:
    """What the backup logic may ask of the module: warnings, and whether this is a dry run."""

    def __init__(self, check_mode=False, warn=None):
        self.check_mode = check_mode
        self.warnings = []
        self._warn = warn

    def warn(self, text):
        self.warnings.append(text)
        if self._warn:
            self._warn(text)


def recipient_texts(params):
    """The recipients given, each with where it came from (for a message that points at the bad one)."""
    texts = [(text, "encryption_recipients[%d]" % index)
             for index, text in enumerate(params.get("encryption_recipients") or [])]
    path = params.get("encryption_recipients_file")
    if path:
        for number, line in enumerate(read_text(path, "encryption_recipients_file").splitlines(), 1):
            if line.strip() and not line.strip().startswith("#"):
                texts.append((line.strip(), "encryption_recipients_file %s line %d" % (path, number)))
    return texts


def read_text(path, option):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (IOError, OSError) as error:
        raise ConfigError("%s: cannot read %s: %s" % (option, path, error.strerror or error))
    except UnicodeDecodeError as error:
        raise ConfigError("%s: %s is not a UTF-8 text file (byte %d is 0x%02x): give the key file itself, as "
                          "age-keygen or the key's owner wrote it"
                          % (option, path, error.start, error.object[error.start]))


def read_secret_file(path, option):
    if not path:
        return None
    secret = read_text(path, option).rstrip("\r\n")
    if not secret:
        raise ConfigError("%s: %s is empty" % (option, path))
    return secret


def s3_options(params):
    """The s3_* module options as the storage layer's s3 dict (None when none is set)."""
    options = dict((key[len("s3_"):], value) for key, value in params.items()
                   if key.startswith("s3_") and value is not None)
    return options or None


def encryption_from_params(params):
    """(recipients as (text, object) pairs, passphrase or None) from the encryption_* options."""
    recipients = [(text, encryption.parse_recipient(text, where)) for text, where in recipient_texts(params)]
    return recipients, read_secret_file(params.get("encryption_passphrase_file"), "encryption_passphrase_file")


def signing_from_params(params):
    """(Signer or None, Trust or None) from signing_key_file and trusted_signing_keys."""
    signer = Signer.from_file(params["signing_key_file"]) if params.get("signing_key_file") else None
    trust = Trust.from_option(params["trusted_signing_keys"]) if params.get("trusted_signing_keys") else None
    return signer, trust
