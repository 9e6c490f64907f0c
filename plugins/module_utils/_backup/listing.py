# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every backup engine shares (pg_backup's, redis_snapshot's): the reporter, secret files, client tools run
as children, the encoder that turns a stream into a stored artifact, the keys that open one, and retention."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import os
import subprocess
import tempfile

from ansible_collections.keel.ops.plugins.module_utils import _pipeline as pipeline
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._repository import (
    Repository,
    new_backup_id,
    parse_timestamp,
    plan_retention,
    retention_configured,
    utcnow,
    validate_retention,
    validate_source,
)
from ansible_collections.keel.ops.plugins.module_utils._signing import Signer, Trust
from ansible_collections.keel.ops.plugins.module_utils._storage import StorageError, check_repository, open_storage

KEY_ARTIFACT = "key.age"
STDERR_TAIL = 2000
VERSION = "0.1.0"
RETENTION_OPTIONS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class ToolError(KeelError):
    """A child process (pg_dump, redis-check-rdb, a stop hook...) failed; the message carries its stderr."""


class BackupConfig:
    """Options every backup engine reads the same way (storage, compression, encryption, retention, 'before');
    each engine's config subclasses it and adds its own connection and checks in from_params()."""

    def __init__(self, **options):
        self.__dict__.update(options)

    @classmethod
    def from_params(cls, params):
        config = cls(**params)
        config.s3 = s3_options(params)
        check_repository(params["repository"], config.s3)
        config.signer, config.trust = signing_from_params(params)
        config.compression_level = pipeline.validate_compression(
            params.get("compression") or "zstd", params.get("compression_level"))
        validate_retention(params)
        config.recipients, config.passphrase = encryption_from_params(params)
        config.before = parse_timestamp(params["before"], "before") if params.get("before") else None
        return config

    @property
    def encrypted(self):
        return bool(self.recipients or self.passphrase)


class Reporter:
    """What the engine may ask of its caller: warnings and whether this is a dry run."""

    def __init__(self, check_mode=False, warn=None):
        self.check_mode = check_mode
        self.warnings = []
        self._warn = warn

    def warn(self, text):
        self.warnings.append(text)
        if self._warn:
            self._warn(text)


def recipient_texts(params):
    texts = list(params.get("encryption_recipients") or [])
    path = params.get("encryption_recipients_file")
    if path:
        texts += [line.strip() for line in read_text(path, "encryption_recipients_file").splitlines()
                  if line.strip() and not line.strip().startswith("#")]
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


class Child:
    """A client tool run with its stderr in a file (no pipe to fill up), whose failure is never ignored."""

    def __init__(self, argv, env, workdir, stdin=None, stdout=None):
        self.name = os.path.basename(argv[0])
        self.stderr_path = os.path.join(workdir, "%s.%d.stderr" % (self.name, id(self)))
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env)
        for pipe in (self.proc.stdout, self.proc.stdin):
            if pipe is not None:
                _widen_pipe(pipe)

    def stderr_tail(self):
        with open(self.stderr_path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace").strip()
        return text[-STDERR_TAIL:]

    def finish(self):
        """Wait and raise with the tool's own words when it failed."""
        code = self.proc.wait()
        if code != 0:
            output = self.stderr_tail() or "no error output"
            raise ToolError("%s failed (exit status %d): %s" % (self.name, code, output))
        return self.stderr_tail()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _widen_pipe(pipe):
    """A 1 MiB pipe instead of 64 KiB lets the tool keep producing while this process compresses a chunk.
    Linux only; elsewhere, or past the system's limit, the default stays."""
    try:
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, pipeline.CHUNK)
    except (OSError, ValueError):
        pass


def workdir():
    return tempfile.mkdtemp(prefix="keel-backup-")


# --- backup -----------------------------------------------------------------------------------------

class Encoder:
    """Compression and encryption of one backup: where its artifacts' bytes are turned into stored bytes."""

    def __init__(self, config):
        self.algorithm = config.compression or "zstd"
        self.level = config.compression_level
        self.recipients = [recipient for _text, recipient in config.recipients]
        self.fingerprints = [pipeline.fingerprint(text) for text, _recipient in config.recipients]
        self.passphrase = config.passphrase
        self.wrapped_key = None
        if self.passphrase:
            identity, self.wrapped_key = pipeline.new_passphrase_identity(self.passphrase)
            self.recipients.append(identity.to_public())

    @property
    def encrypted(self):
        return bool(self.recipients)

    def artifact_name(self, stem):
        return stem + pipeline.EXTENSIONS[self.algorithm] + (".age" if self.encrypted else "")

    def manifest(self):
        encryption = None
        if self.encrypted:
            encryption = {"method": "age", "recipients": self.fingerprints, "passphrase": bool(self.passphrase)}
        return {"compression": {"algorithm": self.algorithm, "level": self.level}, "encryption": encryption}

    def write(self, source, writer):
        """Stream source into writer; return (bytes read from source, bytes stored, sha256 of stored)."""
        counted = pipeline.CountingReader(source)
        hashed = pipeline.HashingWriter(writer)
        background = pipeline.BackgroundWriter(hashed)  # hashing and storage I/O off the producing thread
        compressed = pipeline.compressing_reader(counted, self.algorithm, self.level)
        try:
            if self.encrypted:
                pipeline.encrypt(compressed, background, self.recipients)
            else:
                pipeline.copy(compressed, background)
        finally:
            background.close()
        return counted.size, hashed.size, hashed.sha256


def store_key(repo, backup_id, encoder):
    """Store the passphrase-sealed key of an encrypted backup beside its data."""
    with repo.artifact_writer(backup_id, KEY_ARTIFACT) as writer:
        hashed = pipeline.HashingWriter(writer)
        hashed.write(encoder.wrapped_key)
        writer.commit()
    return {"name": KEY_ARTIFACT, "size": hashed.size, "sha256": hashed.sha256, "raw_size": 0, "kind": "key"}


def store_artifact(repo, backup_id, name, encoder, source):
    """Write one artifact through the encoder; it only becomes visible on commit."""
    with repo.artifact_writer(backup_id, name) as writer:
        raw, size, digest = encoder.write(source, writer)
        writer.commit()
    return {"name": name, "size": size, "sha256": digest, "raw_size": raw}


def _policy(config):
    return dict((option, getattr(config, option, None)) for option in RETENTION_OPTIONS)


def apply_retention(repo, config, reporter, exclude=()):
    """Grandfather-father-son retention. `exclude` (the backup this run committed) is never deleted, whatever the
    ids of other writers say about time; backups a restore holds are kept until it is done."""
    policy = _policy(config)
    if not retention_configured(policy):
        return {"applied": False, "kept": [], "deleted": []}
    backups = repo.list()
    keep, delete = plan_retention([(b.id, b.time) for b in backups], policy)
    for backup_id in exclude:
        if backup_id in delete:
            delete.remove(backup_id)
            keep[backup_id] = ["taken by this run"]
    held = repo.live_holds()
    for backup_id in [b for b in delete if b in held]:
        delete.remove(backup_id)
        keep[backup_id] = ["held by %s" % ", ".join(held[backup_id])]
    if not reporter.check_mode:
        deleted = repo.delete(delete)
        for backup_id in set(delete) - set(deleted):
            keep[backup_id] = ["held by a restore that started meanwhile"]
        delete = deleted
    return {"applied": True, "kept": sorted(keep, reverse=True), "deleted": delete, "reasons": keep}


def run_backup(repo, config, reporter, take):
    """The lifecycle every backup kind shares: lock -> clean up -> take -> commit -> retention.

    take(backup_id) writes the artifacts and returns the manifest. It is committed only after the lock proves,
    then and there, that this run still holds it; retention runs after a second proof and never deletes the
    backup just committed. Returns (manifest, what cleanup removed, retention result)."""
    with repo.lock(config.lock_timeout) as lock:
        cleaned = _clean_up(repo, lock, reporter)
        backup_id = new_backup_id()
        try:
            manifest = take(backup_id)
            lock.check()
            repo.commit(manifest)
        except BaseException:
            with contextlib.suppress(StorageError):  # the next run's cleanup removes what this cannot
                repo.abandon(backup_id)
            raise
        try:
            lock.check()
        except StorageError as error:
            reporter.warn("backup %s is complete, but retention was skipped: %s" % (backup_id, error))
            return manifest, cleaned, {"applied": False, "kept": [], "deleted": [], "skipped": str(error)}
        return manifest, cleaned, apply_retention(repo, config, reporter, exclude=(backup_id,))


def prune(repo, config, reporter):
    """state=absent of every backup kind: retention only, under the lock; without a keep_* option there is nothing
    to do, which is an error. Returns (retention result, what cleanup removed)."""
    if not retention_configured(_policy(config)):
        raise ConfigError("state=absent applies retention: set at least one of %s" % ", ".join(RETENTION_OPTIONS))
    if reporter.check_mode:
        return apply_retention(repo, config, reporter), []
    with repo.lock(config.lock_timeout) as lock:
        cleaned = _clean_up(repo, lock, reporter)
        lock.check()
        return apply_retention(repo, config, reporter), cleaned


def _clean_up(repo, lock, reporter):
    for warning in lock.warnings:
        reporter.warn(warning)
    cleaned, left = repo.cleanup(lock.settle)
    for text in left:
        reporter.warn(text)
    return cleaned


class _KeyWorks(Exception):
    """Raised by the probe writer at the first decrypted byte: the key opens the backup."""


class _ProbeWriter:
    def write(self, data):
        raise _KeyWorks()

    def flush(self):
        pass


def open_identities(config, repo, backup):
    """The keys that open an encrypted backup, proven on its first artifact before anything is touched."""
    encryption = backup.manifest.get("encryption")
    if not encryption:
        return None
    identities = []
    if config.decryption_identity_file:
        identities += pipeline.parse_identities(read_text(config.decryption_identity_file, "decryption_identity_file"),
                                                config.decryption_identity_file)
    passphrase = read_secret_file(config.decryption_passphrase_file, "decryption_passphrase_file")
    if passphrase and encryption.get("passphrase"):
        with repo.open_artifact(backup.id, KEY_ARTIFACT) as reader:
            identities.append(pipeline.open_passphrase_identity(reader.read(), passphrase))
    if not identities:
        raise pipeline.DecryptionKeyError(
            "backup %s is encrypted (recipients %s%s): give decryption_identity_file%s"
            % (backup.id, ", ".join(encryption["recipients"]) or "none",
               ", passphrase" if encryption.get("passphrase") else "",
               " or decryption_passphrase_file" if encryption.get("passphrase") else ""))
    data_artifact = next(a for a in backup.manifest["artifacts"] if a["kind"] != "key")
    with repo.open_artifact(backup.id, data_artifact["name"]) as reader:
        try:
            pipeline.decrypt(reader, _ProbeWriter(), identities)
        except _KeyWorks:
            return identities
    return identities


def stream_into(repo, backup, artifact, identities, consumer_stdin):
    """Storage -> (decrypt) -> decompress -> a child's stdin."""
    algorithm = backup.manifest["compression"]["algorithm"]
    sink = pipeline.decompressing_writer(consumer_stdin, algorithm)
    with repo.open_artifact(backup.id, artifact["name"]) as reader:
        if identities:
            pipeline.decrypt(reader, sink, identities)
        else:
            pipeline.copy(reader, sink)
    sink.close()


def s3_options(params):
    """The s3_* module options as the storage layer's s3 dict (None when none is set)."""
    options = dict((key[len("s3_"):], value) for key, value in params.items()
                   if key.startswith("s3_") and value is not None)
    return options or None


def encryption_from_params(params):
    """(recipients as (text, object) pairs, passphrase or None) from the encryption_* options."""
    recipients = [(text, pipeline.parse_recipient(text, "encryption_recipients[%d]" % index))
                  for index, text in enumerate(recipient_texts(params))]
    return recipients, read_secret_file(params.get("encryption_passphrase_file"), "encryption_passphrase_file")


def open_repository_storage(params):
    return open_storage(params["repository"], s3_options(params))


def signing_from_params(params):
    """(Signer or None, Trust or None) from signing_key_file and trusted_signing_keys."""
    signer = Signer.from_file(params["signing_key_file"]) if params.get("signing_key_file") else None
    trust = Trust.from_option(params["trusted_signing_keys"]) if params.get("trusted_signing_keys") else None
    return signer, trust


def open_repository(params, kind, source, reporter=None, storage=None):
    """The one way every module opens the backups of a source: storage, signing and trust from the options
    (already loaded when `params` is a config's __dict__)."""
    signer, trust = (params["signer"], params["trust"]) if "signer" in params else signing_from_params(params)
    return Repository(storage or open_repository_storage(params), kind, source, signer=signer, trust=trust,
                      warn=reporter.warn if reporter else None)


def _listed(backup, params, since):
    """The filters every info module shares: labels, since, verified."""
    labels = backup.manifest.get("labels") or {}
    return (all(labels.get(k) == v for k, v in (params.get("labels") or {}).items())
            and (since is None or backup.time >= since)
            and params.get("verified") in (None, bool(backup.verified)))


def _usable_source(name, storage, kind, reporter):
    """A folder in the repository is data: one that is not a valid source name is skipped, with a warning."""
    try:
        validate_source(name)
    except ConfigError:
        reporter.warn("skipped %r in %s: not a source folder keel.ops writes" % (name, storage.describe(kind)))
        return False
    return True


def describe_repository(params, kind, reporter, noun="backup", wanted=None):
    """The info modules' listing: backups of one kind (one or every source), filtered, newest first, limited,
    plus the age of the newest in hours and whether it is older than max_age (then a warning)."""
    storage = open_repository_storage(params)
    since = parse_timestamp(params["since"], "since") if params.get("since") else None
    names = [params["source"]] if params.get("source") else [name for name in storage.list_children(kind)
                                                             if _usable_source(name, storage, kind, reporter)]
    found = [backup for name in names for backup in open_repository(params, kind, name, reporter, storage).list()
             if _listed(backup, params, since) and (wanted is None or wanted(backup))]
    found.sort(key=lambda backup: backup.time, reverse=True)
    if params.get("limit") is not None:
        found = found[:max(0, params["limit"])]
    age = round((utcnow() - found[0].time).total_seconds() / 3600.0, 2) if found else None
    max_age = params.get("max_age")
    stale = max_age is not None and (age is None or age > max_age)
    if stale:
        reporter.warn("no %s in %s matches" % (noun, storage.url) if age is None else
                      "the newest %s (%s) is %.1f hours old, more than max_age %g" % (noun, found[0].id, age, max_age))
    return found, age, stale
