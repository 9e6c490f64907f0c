# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # The backup repository: a local directory or an S3 bucket, with the same layout.

    DOCUMENTATION = r"""
options:
  repository:
    description:
      - Where backups live - a local directory (created with mode 0700 if missing) or C(s3://bucket/prefix).
      - Layout - C(<kind>/<source>/<backup_id>/) holds the artifacts and C(manifest.json), written last; a backup
        without a manifest does not exist and is removed by the next run.
    type: str
    required: true
  source:
    description:
      - Name of the folder that groups the backups of one server or database in the repository.
      - Defaults to C(<host>-<port>-<database>) (C(cluster) or C(globals) for those scopes).
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another run writing the same source to finish, then fail. Two runs never
        write one source at the same time.
    type: float
    default: 60
  s3_endpoint_url:
    description: Endpoint of an S3-compatible service (MinIO, Ceph, ...); AWS when unset.
    type: str
  s3_region:
    description: Region of the bucket.
    type: str
  s3_access_key:
    description: Access key; unset uses boto3's usual chain (environment, profile, instance role).
    type: str
  s3_secret_key:
    description: Secret key; never logged or returned.
    type: str
  s3_session_token:
    description: Session token for temporary credentials.
    type: str
  s3_profile:
    description: Named profile from the AWS configuration files.
    type: str
  s3_storage_class:
    description: Storage class of uploaded objects, for example C(STANDARD_IA).
    type: str
  s3_sse:
    description: Server-side encryption of uploaded objects.
    type: str
    choices: [AES256, aws:kms]
  s3_sse_kms_key_id:
    description: KMS key for O(s3_sse=aws:kms).
    type: str
  s3_validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  signing_key_file:
    description:
      - An ed25519 private key (PEM or OpenSSH format, unencrypted, readable only by the user running the module)
        that signs every manifest and verification record this run writes. The signature is stored beside the
        record as C(<record>.sig) and written first.
      - Use it for repositories that many hosts can write, together with O(trusted_signing_keys) on the hosts
        that restore. Make a key with C(openssl genpkey -algorithm ed25519 -out signing.pem).
    type: path
  trusted_signing_keys:
    description:
      - Public keys (each a PEM block, an OpenSSH C(ssh-ed25519 ...) line, or the path of a file holding one)
        whose signatures a manifest must carry. When set, a manifest without a valid signature by one of them is
        never believed - it is skipped with a warning in listings and refused by restore and verification -
        before any of its artifacts is read.
      - C(openssl pkey -in signing.pem -pubout) prints the public key of a signing key.
    type: list
    elements: str
"""
