# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compliance audit trail: every keel.ops task that changes something (or fails trying) leaves one JSON entry -
who, what, where, when, the result - and never a secret, because an entry is built only from a short list of
option and result names known to hold none, each URL stripped of its credentials.

Where: `audit_log` names a file, to which each entry is appended as one line (JSON Lines, under an exclusive lock),
or a repository (an existing directory, file:///path or s3://bucket/prefix), where each entry is an object of its own
under audit/<day>/ - S3 cannot append, and one object per entry lets any number of hosts write at once. Backup
modules write into their own repository unless told otherwise. module_failures() calls watch() for every module;
modules without an `audit_log` option (the read-only ones) are never audited."""

import datetime
import fcntl
import getpass
import json
import os
import socket
import uuid

from ansible_collections.keel.ops.plugins.module_utils._redact import mask_url

PREFIX = "audit"
REPOSITORY_SCHEMES = ("s3://", "file://")
# Options that say what a task acted on. Nothing here holds a secret; values are cut and URLs masked.
TARGET_OPTIONS = ("state", "database", "source", "backup_id", "kind", "scope", "names", "labels", "paths", "image",
                  "backend", "servers", "db", "login_host", "login_port", "docker_host", "repository",
                  "to_repository", "target", "mode")
# Result fields worth keeping: identities and counts, never data.
RESULT_FIELDS = ("backup_id", "location", "msg", "changed_servers", "count", "bytes", "reclaimed", "key_count")
TEXT_LIMIT = 300


def _clean(value):
    if isinstance(value, str):
        return mask_url(value)[:TEXT_LIMIT] if "://" in value else value[:TEXT_LIMIT]
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in list(value)[:20]]
    if isinstance(value, dict):
        return dict((str(key)[:TEXT_LIMIT], _clean(item)) for key, item in list(value.items())[:20])
    return value if isinstance(value, (int, float, bool)) or value is None else str(value)[:TEXT_LIMIT]


def entry(module_name, params, result, outcome, now=None):
    """The audit entry of one task: `outcome` is "changed" or "failed"."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return {"time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "actor": params.get("audit_actor") or _os_user(),
            "host": socket.gethostname(), "module": "keel.ops.%s" % module_name, "result": outcome,
            "check_mode": bool(params.get("_ansible_check_mode")),
            "target": dict((name, _clean(params[name])) for name in TARGET_OPTIONS if params.get(name) not in (None, [], {})),
            "details": dict((name, _clean(result[name])) for name in RESULT_FIELDS if result.get(name) not in (None, [], {}))}


def _os_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "uid %d" % os.getuid()


def _usable(where):
    return where.startswith(REPOSITORY_SCHEMES) or os.path.isabs(where)


def destination(params):
    """(where, is_repository) of this task's entry: its audit_log, else a backup module's own repository (a
    repository even before its directory exists), else (None, False). A relative repository is the module's own
    error to report, never a place to write to."""
    if params.get("audit_log"):
        return params["audit_log"], is_repository(params["audit_log"])
    if params.get("repository") and _usable(params["repository"]):
        return params["repository"], True
    return None, False


def append_line(path, item):
    """One line appended under an exclusive lock, so writers on one host never interleave, and synced."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, (json.dumps(item, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def object_key(item):
    day = item["time"][:10]
    name = "%s-%s-%s-%s.json" % (item["time"].replace(":", "").replace("-", "")[:22], item["host"],
                                 item["module"].rsplit(".", 1)[-1], uuid.uuid4().hex[:8])
    return "%s/%s/%s" % (PREFIX, day, "".join(c if c.isalnum() or c in "._-" else "_" for c in name))


def is_repository(where):
    return where.startswith(REPOSITORY_SCHEMES) or os.path.isdir(where)


def open_repository(where, params):
    """The repository's storage, with the task's own S3 options. Imported here: the storage layer (and boto3)
    loads only for tasks that audit into a repository."""
    from ansible_collections.keel.ops.plugins.module_utils._backup.config import s3_options
    from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
    return open_storage(where, s3_options(params))


def write(where, repository, item, params):
    """Write `item` into a repository as an object of its own, or as a line of a file."""
    if repository:
        open_repository(where, params).put(object_key(item), (json.dumps(item, sort_keys=True) + "\n").encode("utf-8"))
    else:
        append_line(where, item)


def watch(module, module_name):
    """Make the module's exit_json and fail_json leave an audit entry when it changed something or failed, outside
    check mode. An audit that cannot be written is a warning: the change is done, and saying so matters more."""
    if "audit_log" not in getattr(module, "argument_spec", {}):
        return
    params = module.params
    if params.get("audit_log") and not _usable(params["audit_log"]):
        module.fail_json(msg="%s: audit_log %s is relative; give an absolute file path, file:///path or "
                         "s3://bucket/prefix" % (module_name, params["audit_log"]))
    exit_json, fail_json = module.exit_json, module.fail_json

    def record(result, outcome):
        where, repository = destination(params)
        if not where or module.check_mode:
            return
        try:
            write(where, repository, entry(module_name, params, result, outcome), params)
        except Exception as error:  # pylint: disable=broad-except  # never lose the task's own result to the audit
            module.warn("the audit entry could not be written to %s: %s" % (mask_url(where), error))

    def audited_exit(**result):
        if result.get("changed"):
            record(result, "changed")
        exit_json(**result)

    def audited_fail(**result):
        record(result, "failed")
        fail_json(**result)

    module.exit_json, module.fail_json = audited_exit, audited_fail
