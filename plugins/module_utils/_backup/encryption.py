# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""age encryption in the pipeline (pyrage): recipients and their fingerprints, identities from key files,
passphrase-sealed per-backup keys, and streaming encrypt/decrypt that tell a wrong key from a corrupt file."""

import hashlib

from ansible_collections.keel.ops.plugins.module_utils._errors import (
    ConfigError,
    DecryptionKeyError,
    DependencyError,
    IntegrityError,
)

try:
    import pyrage
    from pyrage import passphrase as age_passphrase
    from pyrage import ssh as age_ssh
    from pyrage import x25519
except ImportError:
    pyrage = None


def require_age():
    if pyrage is None:
        raise DependencyError("age encryption needs the Python library 'pyrage' where the module runs "
                              "(pip install pyrage)")


def parse_recipient(text, where):
    """An age recipient (age1...) or an SSH public key (ssh-ed25519/ssh-rsa), as pyrage objects."""
    require_age()
    text = text.strip()
    try:
        if text.startswith("age1"):
            return x25519.Recipient.from_str(text)
        if text.startswith("ssh-"):
            return age_ssh.Recipient.from_str(text)
    except pyrage.RecipientError as error:
        raise ConfigError("%s is not a valid recipient: %s" % (where, error))
    raise ConfigError("%s must be an age public key (age1...) or an SSH public key (ssh-ed25519 ..., ssh-rsa ...); "
                      "never give a secret key here" % where)


def fingerprint(recipient_text):
    """A short, stable, non-secret name for a public key, recorded in manifests."""
    return "sha256:" + hashlib.sha256(recipient_text.strip().encode()).hexdigest()[:16]


def parse_identities(text, where):
    """Identities from the text of an age identity file (AGE-SECRET-KEY-1... lines, # comments)."""
    require_age()
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise DecryptionKeyError("%s line %d is not an age identity (AGE-SECRET-KEY-1...)" % (where, number))
    if not identities:
        raise DecryptionKeyError("%s holds no age identity (AGE-SECRET-KEY-1... lines)" % where)
    return identities


def new_passphrase_identity(secret):
    """A fresh identity for one backup, plus its age-passphrase-wrapped form to store beside the data.

    age's passphrase mode (scrypt) only exists for whole buffers in pyrage, so the stream is encrypted to a
    random X25519 key and only that small key is sealed with the passphrase.
    """
    require_age()
    identity = x25519.Identity.generate()
    return identity, age_passphrase.encrypt(str(identity).encode(), secret)


def open_passphrase_identity(wrapped, secret):
    require_age()
    try:
        return x25519.Identity.from_str(age_passphrase.decrypt(wrapped, secret).decode())
    except pyrage.DecryptError:
        raise DecryptionKeyError("the passphrase does not open this backup's key: wrong passphrase file")


class _SinkFailed(Exception):
    """Carries a failure of the consumer (say, pg_restore exiting) out of pyrage untouched."""


class _GuardedWriter:
    def __init__(self, sink):
        self.sink = sink
        self.error = None

    def write(self, data):
        try:
            return self.sink.write(data)
        except Exception as error:  # pylint: disable=broad-except
            self.error = error
            raise _SinkFailed()

    def flush(self):
        pass


def encrypt(reader, writer, recipients):
    pyrage.encrypt_io(reader, writer, recipients)


def decrypt(reader, writer, identities):
    """Stream-decrypt; a wrong key, tampered or truncated data and a failing consumer are told apart."""
    require_age()
    guarded = _GuardedWriter(writer)
    try:
        pyrage.decrypt_io(reader, guarded, identities)
    except _SinkFailed:
        raise guarded.error
    except pyrage.DecryptError as error:
        if "No matching keys" in str(error):
            raise DecryptionKeyError("none of the decryption keys given can decrypt this backup: it was "
                                     "encrypted to other recipients (%s)" % error)
        raise IntegrityError("the backup does not decrypt: %s" % error)
    except OSError as error:
        raise IntegrityError("the backup does not decrypt: it was modified or truncated (%s)" % error)
