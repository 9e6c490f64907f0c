# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container engine housekeeping for container_prune: the stopped containers and dangling images the runbooks'
`docker system prune -f` removes, chosen one by one through the engine API so that anything carrying the
protection label stays, a container stopped only minutes ago (a rollout's previous version, a job between runs)
stays until it is old enough, and the space each removal gives back is counted. Plan, then remove."""

import datetime

from ansible_collections.keel.ops.plugins.module_utils._docker import api_errors
from ansible_collections.keel.ops.plugins.module_utils._errors import EngineError, first_line

DEFAULT_PROTECT_LABEL = "keel.ops.protect"
STOPPED = ("exited", "created", "dead")
_FALSE = ("", "0", "false", "no", "off")


def parse_time(text):
    """An engine timestamp (RFC 3339 with nanoseconds, or epoch seconds) as an aware datetime; None for the zero
    time engines give a container that never ran."""
    if isinstance(text, (int, float)):
        return datetime.datetime.fromtimestamp(text, datetime.timezone.utc)
    if not text or text.startswith("0001-01-01"):
        return None
    head, _dot, rest = text.partition(".")
    zone = rest.lstrip("0123456789") if rest else head[19:]
    head = head[:19]
    zone = "+00:00" if zone in ("", "Z") else zone
    return datetime.datetime.fromisoformat(head + zone)


def image_id(text):
    """Image IDs compared without the digest prefix some engines print and others leave out."""
    return (text or "").split(":", 1)[-1]


def protected(labels, protect_label):
    value = (labels or {}).get(protect_label)
    return value is not None and str(value).strip().lower() not in _FALSE


def _age_hours(since, now):
    return (now - since).total_seconds() / 3600.0 if since else None


def container_plan(containers, protect_label, older_than_hours, now):
    """(remove, kept): stopped containers old enough and unprotected, and the stopped ones kept with why."""
    remove, kept = [], []
    for item in containers:
        if item["status"] not in STOPPED:
            continue
        since = item["finished"] or item["created"]
        age = _age_hours(since, now)
        entry = {"kind": "container", "name": item["name"], "id": item["id"], "image": item["image"],
                 "status": item["status"], "bytes": item["bytes"], "stopped_hours": round(age, 2) if age else age}
        if protected(item["labels"], protect_label):
            kept.append(dict(entry, reason="carries the protection label %s" % protect_label))
        elif age is not None and age < older_than_hours:
            kept.append(dict(entry, reason="stopped %.1f hours ago, less than %s" % (age, older_than_hours)))
        else:
            remove.append(entry)
    return remove, kept


def image_plan(images, protect_label, in_use):
    """(remove, kept): dangling images (no tag) no container uses, unless protected."""
    remove, kept = [], []
    for item in images:
        entry = {"kind": "image", "id": item["id"], "bytes": item["bytes"], "created": item["created"]}
        if protected(item["labels"], protect_label):
            kept.append(dict(entry, reason="carries the protection label %s" % protect_label))
        elif item["id"] in in_use:
            kept.append(dict(entry, reason="a container still uses it"))
        else:
            remove.append(entry)
    return remove, kept


class Pruner:
    """Reads and removes through a docker.DockerClient's low-level API."""

    def __init__(self, client, docker_host):
        self.api = client.api
        self.docker_host = docker_host

    def _error(self, what):
        return lambda error: EngineError("container engine at %s: cannot %s: %s"
                                         % (self.docker_host, what, first_line(error)))

    @staticmethod
    def _labels(labels):
        return ["%s=%s" % item for item in sorted((labels or {}).items())]

    def containers(self, labels=None):
        """Every container (within `labels`, when given) with its status, times, labels and writable layer size."""
        filters = {"label": self._labels(labels)} if labels else None
        with api_errors(self._error("list the containers")):
            listed = self.api.containers(all=True, size=True, filters=filters)
            found = []
            for summary in listed:
                details = self.api.inspect_container(summary["Id"])
                state = details.get("State") or {}
                found.append({"id": summary["Id"], "name": (details.get("Name") or "").lstrip("/"),
                              "image": summary.get("Image"), "image_id": image_id(details.get("Image")),
                              "status": (state.get("Status") or summary.get("State") or "").lower(),
                              "finished": parse_time(state.get("FinishedAt")),
                              "created": parse_time(details.get("Created")),
                              "labels": summary.get("Labels") or {}, "bytes": summary.get("SizeRw") or 0})
        return found

    def dangling_images(self, labels=None):
        filters = dict({"dangling": True}, **({"label": self._labels(labels)} if labels else {}))
        with api_errors(self._error("list the images")):
            listed = self.api.images(filters=filters)
        return [{"id": image_id(item["Id"]), "bytes": item.get("Size") or 0, "labels": item.get("Labels") or {},
                 "created": parse_time(item.get("Created")).isoformat() if item.get("Created") else None}
                for item in listed]

    def remove(self, entry):
        """(entry, removed): an engine that refuses (in use, already gone) leaves the entry with its reason."""
        try:
            with api_errors(self._error("remove %s %s" % (entry["kind"], entry.get("name") or entry["id"]))):
                if entry["kind"] == "container":
                    self.api.remove_container(entry["id"], v=False)
                else:
                    self.api.remove_image(entry["id"])
        except EngineError as error:
            return dict(entry, reason=str(error)), False
        return entry, True


def prune(pruner, options, check_mode=False, now=None):
    """What container_prune returns: removed (or to remove), kept with reasons, skipped, and the bytes reclaimed."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    containers = pruner.containers(options.get("labels"))
    plan, kept = ([], [])
    if options["containers"]:
        plan, kept = container_plan(containers, options["protect_label"], options["older_than_hours"], now)
    if options["images"]:
        gone = set(entry["id"] for entry in plan)
        in_use = set(item["image_id"] for item in containers if item["id"] not in gone)
        images, kept_images = image_plan(pruner.dangling_images(options.get("labels")), options["protect_label"], in_use)
        plan, kept = plan + images, kept + kept_images
    removed, skipped = ([], [])
    if check_mode:
        removed = plan
    else:
        for entry in plan:
            result, done = pruner.remove(entry)
            (removed if done else skipped).append(result)
    return {"changed": bool(removed), "removed": removed, "kept": kept, "skipped": skipped,
            "reclaimed": sum(entry["bytes"] for entry in removed)}
