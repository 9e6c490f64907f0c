# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # age encryption of backups and the keys that decrypt them.

    DOCUMENTATION = r"""
options:
  encryption_recipients:
    description:
      - Encrypt backups with age to these public keys (C(age1...)) or SSH public keys. The host running the
        backup never needs a private key. Authenticated and streaming; the manifest records only fingerprints.
    type: list
    elements: str
  encryption_recipients_file:
    description: File with more recipients, one per line (C(#) comments allowed).
    type: path
  encryption_passphrase_file:
    description:
      - File whose content (trailing newline removed) is a passphrase; each backup is encrypted to a fresh key
        that is itself sealed with the passphrase (age scrypt) and stored beside the data.
    type: path
  decryption_identity_file:
    description: age identity file (C(AGE-SECRET-KEY-1...) lines) to decrypt backups with, for restores and verification.
    type: path
  decryption_passphrase_file:
    description: Passphrase file to decrypt backups made with O(encryption_passphrase_file).
    type: path
"""
