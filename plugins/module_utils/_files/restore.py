# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_backup's restores: a backup (or some of its paths) put back in place or under a target directory, after
its checksums, its key and the free space are proven, through place.Placement's journal, so that it either all
lands or nothing changes."""

import hashlib
import os
import stat
import time
import uuid

from ansible_collections.keel.ops.plugins.module_utils._backup import lifecycle
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._files import archive as tar
from ansible_collections.keel.ops.plugins.module_utils._files import place
from ansible_collections.keel.ops.plugins.module_utils._files.backup import (
    SAMPLE,
    failures_reported,
    load_index,
    repository,
    stream_archive,
)
from ansible_collections.keel.ops.plugins.module_utils._files.selection import arcname

DEFAULT_JOURNAL_DIR = "/var/tmp"
SPACE_MARGIN = 1.05  # temporary copies sit beside the files they replace until the restore commits


def journal_path(config, root, source):
    digest = hashlib.sha256(("%s\n%s" % (root, source)).encode("utf-8")).hexdigest()[:16]
    return os.path.join(config.journal_dir or DEFAULT_JOURNAL_DIR, "keel-file-restore-%s.journal" % digest)


def wanted_names(config, tops):
    """The archive names to restore: every top, or those of restore_paths (each inside one of the tops)."""
    if not config.restore_paths:
        return None
    names = []
    for path in config.restore_paths:
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise ConfigError("restore_paths: %r is not an absolute path without '..'" % (path,))
        name = arcname(path)
        if not any(name == top or name.startswith(top + "/") for top in tops):
            raise ConfigError("restore_paths: %s is not inside the paths the backup holds (%s)"
                              % (path, ", ".join("/" + top for top in tops)))
        names.append(name)
    return names


def _selected(name, names):
    return names is None or any(name == want or name.startswith(want + "/") for want in names)


def _action(root, record):
    """What restoring one index record would do to what is at its destination now."""
    dest = os.path.join(root, record["name"])
    try:
        st = os.lstat(dest)
    except OSError:
        return "create"
    kind = record["type"]
    if kind == "directory":
        return "unchanged" if stat.S_ISDIR(st.st_mode) else "replace"
    if kind == "symlink":
        return "unchanged" if stat.S_ISLNK(st.st_mode) and os.readlink(dest) == record["link"] else "replace"
    if kind == "hardlink":
        target = os.path.join(root, record["link"])
        same = not stat.S_ISLNK(st.st_mode) and os.path.lexists(target) and os.path.samefile(dest, target)
        return "unchanged" if same else "replace"
    if not stat.S_ISREG(st.st_mode) or st.st_size != record["size"]:
        return "replace"
    with open(dest, "rb") as handle:
        return "unchanged" if tar.digest_of(handle) == record["sha256"] else "replace"


def plan_restore(root, index, names):
    """{action: [names]} for the records selected, plus the bytes that will be written."""
    actions = {name: _action(root, record) for name, record in index.items() if _selected(name, names)}
    for name, action in actions.items():  # a hard link to a file being replaced must be linked again
        record = index[name]
        if record["type"] == "hardlink" and action == "unchanged" and actions.get(record["link"]) != "unchanged":
            actions[name] = "replace"
    plan = {"create": [], "replace": [], "unchanged": []}
    for name in sorted(actions):
        plan[actions[name]].append(name)
    size = sum(index[name]["size"] for name in plan["create"] + plan["replace"] if index[name]["type"] == "file")
    return plan, size


def _check_space(root, size):
    probe = root
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    st = os.statvfs(probe)
    free = st.f_bavail * st.f_frsize
    if size * SPACE_MARGIN > free:
        raise KeelError("restoring needs %d bytes under %s, and %s has %d bytes free; free some space or restore "
                        "into another target" % (size, root, probe, free))
    return free


class _Dispatcher:
    """Hands each archive member to the Placement, by the type its index records; members outside the selection
    are read past."""

    def __init__(self, placement, index, names):
        self.placement, self.index, self.names = placement, index, names
        self.seen = 0

    def __call__(self, member, archive):
        record = self.index.get(member.name)
        if record is None:
            raise IntegrityError("the archive holds %r, which its index does not list" % member.name)
        if not _selected(member.name, self.names):
            return
        self.seen += 1
        if record["type"] == "directory" and member.isdir():
            self.placement.directory(record)
        elif record["type"] == "file" and member.isreg():
            self.placement.file(record, archive.extractfile(member))
        elif record["type"] == "symlink" and member.issym():
            self.placement.symlink(record)
        elif record["type"] == "hardlink" and member.islnk():
            self.placement.hardlink(record)
        else:
            raise IntegrityError("%s is a %s in the index and not in the archive" % (member.name, record["type"]))


def _summary(plan):
    return {action: len(names) for action, names in plan.items()}


@failures_reported("restoring a file set backup")
def restore(config, reporter):
    """state=restored: put a backup's files in place (or under target), all or nothing."""
    repo = repository(config, reporter)
    root = os.path.normpath(config.target or "/")
    journal = journal_path(config, root, repo.source)
    repaired = None
    if os.path.lexists(journal):
        if reporter.check_mode:
            reporter.warn("a restore interrupted earlier left %s: a real run rolls it back first" % journal)
        else:
            repaired = place.repair(journal, reporter.warn)
    chosen = repo.select(config.backup_id or "latest", config.before)
    tops = [arcname(path) for path in chosen.manifest["source"]["paths"]]
    for top in tops:
        place.check_name(top, tops, "path")
    names = wanted_names(config, tops)
    with lifecycle.reading(repo, chosen, config, "file_backup restore", hold=not reporter.check_mode) as (
            checked, identities):
        index = load_index(repo, chosen, identities)
        plan, size = plan_restore(root, index, names)
        if plan["replace"] and not config.replace:
            raise KeelError("restoring backup %s would replace %d existing entries under %s, such as %s, that differ "
                            "from the backup: set replace: true to replace them (they are kept aside until the "
                            "restore succeeds), or restore into an empty target" % (
                                chosen.id, len(plan["replace"]), root, os.path.join(root, plan["replace"][0])))
        free = _check_space(root, size)
        details = {"backup_id": chosen.id, "root": root, "paths": ["/" + top for top in tops],
                   "restore_paths": config.restore_paths, "bytes": size, "free_bytes": free,
                   "entries": _summary(plan), "replace": plan["replace"][:SAMPLE]}
        changes = bool(plan["create"] or plan["replace"])
        if reporter.check_mode:
            return dict(changed=changes, backup_id=chosen.id, plan=details, repaired=repaired, artifacts_checked=checked,
                        msg="would restore backup %s under %s: create %d, replace %d, %d unchanged"
                        % (chosen.id, root, len(plan["create"]), len(plan["replace"]), len(plan["unchanged"])))
        started = time.monotonic()
        placement = _place(repo, chosen, identities, root, tops, index, names, set(plan["unchanged"]), journal)
    duration = round(time.monotonic() - started, 3)
    counts = placement.counts
    restored = sorted(name for name in plan["create"] + plan["replace"] if index[name].get("sqlite"))
    return dict(changed=placement.changed, backup_id=chosen.id, root=root, duration=duration,
                artifacts_checked=checked, counts=counts, sqlite_checked=["/" + name for name in restored],
                owners_restored=placement.owners.restore, repaired=repaired, plan=details,
                msg="restored backup %s under %s in %.1fs: %d created, %d replaced, %d unchanged, %d attributes set"
                % (chosen.id, root, duration, counts["created"], counts["replaced"], counts["unchanged"],
                   counts["attributes"]))


def _place(repo, backup, identities, root, tops, index, names, identical, journal_file):
    journal = place.Journal(journal_file)
    journal.start({"backup_id": backup.id, "root": root, "source": repo.source})
    placement = place.Placement(root, tops, journal, uuid.uuid4().hex[:8], identical)
    try:
        stream_archive(repo, backup, identities, _Dispatcher(placement, index, names))
        placement.commit()
    except BaseException as error:
        left = placement.rollback()
        if left:
            raise KeelError("restoring backup %s failed (%s), and rolling back left %s; the journal %s lists every "
                            "step: put those back by hand, then delete it" % (backup.id, error, "; ".join(left),
                                                                              journal_file))
        journal.close()
        raise
    journal.close()
    return placement
