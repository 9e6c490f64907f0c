# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ed25519 signatures of the records a repository holds (manifests, verification records).

Checksums prove that artifacts match their manifest; they cannot prove who wrote the manifest. In a repository
that many hosts can write (one bucket for a fleet), a host that is broken into could plant a manifest and a
dump of its choosing. With signing, backups are signed by a key only the backup hosts hold, and restores trust
only the public keys they are given: a manifest without a valid signature is never believed, before any
artifact is read.

Keys: `openssl genpkey -algorithm ed25519 -out signing.pem` (or `ssh-keygen -t ed25519 -N ''`), and the
public half with `openssl pkey -in signing.pem -pubout` (or the `.pub` file of ssh-keygen).
"""

import base64
import hashlib
import json

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError, IntegrityError

ALGORITHM = "ed25519"


def _crypto():
    """The cryptography library, imported only when signing is configured."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise DependencyError("manifest signing needs the Python library 'cryptography' where the module runs "
                              "(pip install cryptography)")
    return serialization, ed25519, InvalidSignature


def fingerprint(public_key):
    """'SHA256:<base64>' of the raw public key, as ssh-keygen -l prints it."""
    serialization = _crypto()[0]
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def _read(path, option):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError) as error:
        raise ConfigError("%s: cannot read %s: %s" % (option, path, error.strerror or error))


class Signer:
    """Signs records with one private key."""

    def __init__(self, private_key):
        self.key = private_key
        self.fingerprint = fingerprint(private_key.public_key())

    @classmethod
    def from_file(cls, path, option="signing_key_file"):
        serialization, ed25519, _invalid = _crypto()
        data = _read(path, option)
        try:
            if b"OPENSSH PRIVATE KEY" in data:
                key = serialization.load_ssh_private_key(data, password=None)
            else:
                key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise ConfigError("%s: %s is not an unencrypted ed25519 private key in PEM or OpenSSH format (%s); make "
                              "one with: openssl genpkey -algorithm ed25519 -out signing.pem" % (option, path, error))
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError("%s: %s holds a %s key; manifest signing uses ed25519 keys"
                              % (option, path, key.__class__.__name__.replace("PrivateKey", "").lstrip("_")))
        return cls(key)

    def sign(self, data):
        signature = base64.b64encode(self.key.sign(data)).decode()
        return json.dumps({"algorithm": ALGORITHM, "key": self.fingerprint, "signature": signature}).encode()


def _public_key(text, option):
    serialization, ed25519, _invalid = _crypto()
    data = text.strip().encode()
    try:
        if data.startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(data)
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, IndexError) as error:
        raise ConfigError("%s: not an ed25519 public key in PEM or OpenSSH format (%s)" % (option, error))
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError("%s: manifest signing uses ed25519 keys, this one is %s" % (option, key.__class__.__name__))
    return key


class Trust:
    """The public keys a manifest must be signed by."""

    def __init__(self, keys):
        self.keys = dict((fingerprint(key), key) for key in keys)

    @classmethod
    def from_option(cls, entries, option="trusted_signing_keys"):
        """Each entry is a public key itself (PEM, or an OpenSSH 'ssh-ed25519 ...' line) or a file holding one."""
        keys = []
        for index, entry in enumerate(entries):
            where = "%s[%d]" % (option, index)
            text = entry if entry.lstrip().startswith(("-----BEGIN", "ssh-")) else \
                _read(entry, where).decode("utf-8", "replace")
            keys.append(_public_key(text, where))
        if not keys:
            raise ConfigError("%s is empty: give the public keys whose signatures a manifest may carry" % option)
        return cls(keys)

    def verify(self, data, signature, what):
        """Raise IntegrityError unless `signature` (the bytes of a .sig record) is a valid signature of `data` by
        one of the trusted keys."""
        _serialization, _ed25519, invalid_signature = _crypto()
        if signature is None:
            raise IntegrityError("%s is not signed, and trusted_signing_keys requires a signature: it was not "
                                 "written by a run with signing_key_file" % what)
        try:
            record = json.loads(signature.decode("utf-8"))
            key = self.keys.get(record.get("key"))
            raw = base64.b64decode(record["signature"], validate=True)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise IntegrityError("%s has a signature record that cannot be read: it cannot be trusted" % what)
        if key is None:
            raise IntegrityError("%s is signed by key %s, which is not among trusted_signing_keys (%s)"
                                 % (what, record.get("key"), ", ".join(sorted(self.keys))))
        try:
            key.verify(raw, data)
        except invalid_signature:
            raise IntegrityError("%s does not match its signature by key %s: it was changed after it was signed, "
                                 "and cannot be trusted" % (what, record.get("key")))
