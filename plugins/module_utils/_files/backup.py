# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File sets for file_backup, in the repository every backup kind shares (_backup/): the options, a backup through
the shared lifecycle (the tar stream and its index as two artifacts), verification of every file against the
index, retention and the info listing. Restores are restore.py's."""

import contextlib
import hashlib
import os
import re
import socket
import time

from ansible_collections.keel.ops.plugins.module_utils import _process as process
from ansible_collections.keel.ops.plugins.module_utils._backup import encoding, lifecycle, listing
from ansible_collections.keel.ops.plugins.module_utils._backup.config import VERSION, BackupConfig
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import isoformat, utcnow
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import parse_url
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import archive as tar
from ansible_collections.keel.ops.plugins.module_utils._files.selection import Selection, check_paths

KIND = "files"
TOOL = "keel.ops.file_backup"
SAMPLE = 20  # paths named in a result's lists (excluded secrets, skipped, changed while read) before "and N more"


class FileBackupConfig(BackupConfig):
    """Validated options of file_backup; built from module params by from_params()."""

    @classmethod
    def from_params(cls, params):
        config = super(FileBackupConfig, cls).from_params(params)
        if params.get("state") == "present":
            check_paths(params.get("paths"))
        elif params.get("paths"):
            check_paths(params["paths"])
        for option in ("target", "journal_dir"):
            value = params.get(option)
            if value is not None and not os.path.isabs(value):
                raise ConfigError("%s must be an absolute path, got %s" % (option, value))
        if (params.get("sqlite_timeout") or 0) <= 0:
            raise ConfigError("sqlite_timeout must be a number of seconds above 0, got %s" % params.get("sqlite_timeout"))
        if params.get("state") in ("restored",) and not params.get("paths") and not params.get("source"):
            raise ConfigError("state=restored needs source (or the paths the backup was taken of) to find its backups")
        return config

    def source_name(self):
        """The repository folder of this file set, unless the user named it: <host>-<first path's name>, plus a
        hash of every path when there are several (two hosts or two sets never share a folder by accident)."""
        if self.source:
            return self.source
        names = sorted(check_paths(self.paths))
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", "%s-%s" % (socket.gethostname().split(".")[0], os.path.basename(names[0])))
        if len(names) > 1:
            stem += "-" + hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:8]
        return stem.lstrip(".-")[:100] or "files"

    def selection(self):
        kind, location, _prefix = parse_url(self.repository)
        return Selection(self.paths, include=self.include, exclude=self.exclude, include_secrets=self.include_secrets,
                         sqlite=self.sqlite_patterns, excluded_roots=[location] if kind == "local" else [])


def repository(config, reporter):
    return lifecycle.open_repository(config.__dict__, KIND, config.source_name(), reporter)


def _sample(paths):
    return paths[:SAMPLE] + (["... and %d more" % (len(paths) - SAMPLE)] if len(paths) > SAMPLE else [])


def _report_left_out(selection, reporter):
    if selection.excluded_secrets:
        reporter.warn("left out %d secret file(s) such as %s: name them in paths or include_secrets to back them up"
                      % (len(selection.excluded_secrets), selection.excluded_secrets[0]))
    for skipped in selection.skipped[:SAMPLE]:
        reporter.warn("skipped %s (%s)" % (skipped["path"], skipped["reason"]))


def _plan(config, repo):
    """What a backup would store, from a walk of the file set (no content is read)."""
    selection = config.selection()
    counts, size, inodes = dict.fromkeys(("files", "directories", "symlinks", "hardlinks", "sqlite"), 0), 0, set()
    for entry in selection.walk():
        kind = {"directory": "directories", "symlink": "symlinks"}.get(entry.kind, "files")
        if kind == "files" and entry.stat.st_nlink > 1:
            inode = (entry.stat.st_dev, entry.stat.st_ino)
            kind = "hardlinks" if inode in inodes else kind
            inodes.add(inode)
        counts[kind] += 1
        counts["sqlite"] += entry.sqlite
        size += entry.stat.st_size if kind == "files" else 0
    return selection, dict(counts, source=repo.source, repository=repo.describe(), paths=selection.paths, bytes=size,
                           excluded_secrets=_sample(selection.excluded_secrets), skipped=selection.skipped[:SAMPLE])


def backup(config, reporter):
    """state=present: store the file set, then apply retention."""
    repo = repository(config, reporter)
    if reporter.check_mode:
        selection, plan = _plan(config, repo)
        _report_left_out(selection, reporter)
        return dict(changed=True, plan=plan, backup_id=None,
                    msg="would back up %s files (%s bytes) of %s into %s"
                    % (plan["files"], plan["bytes"], ", ".join(plan["paths"]), repo.describe()))
    selection = config.selection()
    run = lifecycle.BackupRun(config, reporter, repo, TOOL)
    manifest = lifecycle.run_backup(run, lambda run: _take(run, selection))
    _report_left_out(selection, reporter)
    for path in manifest["statistics"]["changed_paths"]:
        reporter.warn("%s changed while it was read: the backup holds the bytes read, which may mix two versions"
                      % path)
    stats = manifest["statistics"]
    result = run.result(manifest, {"source": repo.source, "repository": repo.describe(), "paths": selection.paths})
    result.update(excluded_secrets=_sample(selection.excluded_secrets), skipped=selection.skipped[:SAMPLE])
    result["msg"] = "backup %s of %s: %d files (%d SQLite), %d directories, %d bytes; %d bytes stored in %.1fs" % (
        manifest["id"], ", ".join(selection.paths), stats["files"], stats["sqlite"], stats["directories"],
        stats["bytes"], result["size"], manifest["duration"])
    return result


def _take(run, selection):
    reader = tar.ArchiveReader(selection, run.workdir, run.config.sqlite_timeout)
    try:
        run.store("files.tar", reader, kind="files", format="tar")
    except BaseException:
        with contextlib.suppress(KeelError):  # the storage's error is the one to report, not the broken pipe's
            reader.close()
        raise
    reader.close()
    with open(reader.index_path, "rb") as index:
        run.store("index.jsonl", index, kind="index", format="jsonl")
    os.unlink(reader.index_path)
    stats = dict(reader.counts, bytes=reader.bytes, excluded_secrets=len(selection.excluded_secrets),
                 skipped=len(selection.skipped), changed_paths=_sample(reader.changed))
    return run.manifest(KIND, "tar", statistics=stats,
                        source={"host": socket.gethostname(), "paths": selection.paths,
                                "include": selection.include, "exclude": selection.exclude})


def artifact(backup, kind):
    return next(a for a in backup.manifest["artifacts"] if a.get("kind") == kind)


def load_index(repo, backup, identities):
    """The index of a backup ({name: record}), read through the pipeline."""
    collector = tar.IndexCollector()
    encoding.stream_into(repo, backup, artifact(backup, "index"), identities, collector)
    collector.close()
    return collector.records


class _Checker:
    """Every member of a stored archive against the index: present in it, of the same type, and for files the
    same sha256; finished() then says whether the index lists anything the archive lacked."""

    def __init__(self, index):
        self.index, self.seen = index, set()

    def __call__(self, member, archive):
        record = self.index.get(member.name)
        kind = {"directory": member.isdir(), "symlink": member.issym(), "hardlink": member.islnk(),
                "file": member.isreg()}
        if record is None or not kind[record["type"]]:
            raise IntegrityError("the archive holds %s, which its index does not list as such" % member.name)
        if member.isreg():
            found = tar.digest_of(archive.extractfile(member))
            if found != record["sha256"]:
                raise IntegrityError("%s does not match the sha256 its index recorded" % member.name)
        self.seen.add(member.name)

    def finished(self):
        missing = set(self.index) - self.seen
        if missing:
            raise IntegrityError("the index lists %d entries the archive lacks, such as %s"
                                 % (len(missing), sorted(missing)[0]))


def stream_archive(repo, backup, identities, handler):
    """Run the stored archive backwards through the pipeline, handing each member to handler(member, archive)."""
    consumer = tar.TarConsumer(handler)
    try:
        encoding.stream_into(repo, backup, artifact(backup, "files"), identities, consumer)
    finally:
        consumer.close()


def check_archive(repo, backup, identities):
    """Stream the archive and prove every file against the index; returns the index."""
    index = load_index(repo, backup, identities)
    checker = _Checker(index)
    stream_archive(repo, backup, identities, checker)
    checker.finished()
    stats = backup.manifest["statistics"]
    files = sum(1 for record in index.values() if record["type"] == "file")
    if files != stats["files"]:
        raise IntegrityError("the archive holds %d files, its manifest says %d" % (files, stats["files"]))
    return index


def failures_reported(what):
    return process.failures_reported(what, "check that path (permissions, free space), or run the task as a user "
                                           "that can read and write it (become: true)")


@failures_reported("verifying a file set backup")
def verify(config, reporter):
    """state=verified: checksums, then every file of the archive against its sha256 in the index."""
    repo = repository(config, reporter)
    chosen = repo.select(config.backup_id or "latest", config.before)
    if reporter.check_mode:
        return dict(changed=False, backup_id=chosen.id, msg="would verify file set backup %s" % chosen.id,
                    plan={"backup_id": chosen.id})
    started = time.monotonic()
    with lifecycle.reading(repo, chosen, config, "file_backup verification") as (checked, identities):
        index = check_archive(repo, chosen, identities)
    duration = round(time.monotonic() - started, 3)
    stats = chosen.manifest["statistics"]
    verification = {"time": isoformat(utcnow()), "result": "ok", "method": "archive", "duration": duration,
                    "artifacts_checked": checked, "entries": len(index), "files": stats["files"],
                    "sqlite": stats.get("sqlite", 0), "tool_version": VERSION}
    repo.record_verification(chosen.id, verification)
    return dict(changed=True, backup_id=chosen.id, verification=verification, duration=duration,
                msg="file set backup %s verified: checksums match and all %d files match their sha256"
                % (chosen.id, stats["files"]))


@failures_reported("applying retention to file set backups")
def prune(config, reporter):
    """state=absent: retention only."""
    return lifecycle.prune(repository(config, reporter), config, reporter, "file set backups")


def _summary(backup):
    summary = backup.summary()
    stats = backup.manifest.get("statistics") or {}
    summary.update(paths=(backup.manifest.get("source") or {}).get("paths"),
                   **{key: stats.get(key) for key in ("files", "directories", "symlinks", "sqlite", "bytes")})
    return summary


@failures_reported("listing file set backups")
def describe_backups(params, reporter):
    """file_backup_info: backups newest first, filtered, and whether the newest is older than max_age."""
    found, age, stale = listing.describe_repository(params, KIND, reporter)
    return dict(backups=[_summary(b) for b in found], count=len(found), newest_age_hours=age, stale=stale)
