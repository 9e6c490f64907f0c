# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security findings of the containers on an engine: privileged, running as root, in the host's PID or network
namespace, without a healthcheck, and on images older than N days. Read from inspect, changing nothing."""

import datetime

from ansible_collections.keel.ops.plugins.module_utils._docker import DockerException, RequestException
from ansible_collections.keel.ops.plugins.module_utils._maintenance.containers import parse_time
from ansible_collections.keel.ops.plugins.module_utils._security.findings import finding


def container_findings(details, image_created, now, max_image_age_days):
    """Findings of one container from its inspect data and its image's creation time."""
    name = (details.get("Name") or "").lstrip("/")
    config, host = details.get("Config") or {}, details.get("HostConfig") or {}
    where = "container %s" % name
    found = []
    if host.get("Privileged"):
        found.append(finding("containers.privileged", "critical", where, "%s runs privileged" % name,
                             "recreate it without --privileged, adding only the capabilities it needs (--cap-add)"))
    user = (config.get("User") or "").split(":")[0]
    if user in ("", "0", "root"):
        found.append(finding("containers.root", "medium", where, "%s runs as root" % name,
                             "give the image a USER, or run it with --user <uid>:<gid>"))
    if host.get("PidMode") == "host":
        found.append(finding("containers.host_pid", "high", where, "%s shares the host's PID namespace" % name,
                             "recreate it without --pid=host"))
    if host.get("NetworkMode") == "host":
        found.append(finding("containers.host_network", "medium", where, "%s shares the host's network namespace" % name,
                             "recreate it on a bridge network, publishing only the ports it serves"))
    if not (config.get("Healthcheck") or {}).get("Test") or (config["Healthcheck"]["Test"][:1] == ["NONE"]):
        found.append(finding("containers.no_healthcheck", "low", where, "%s has no healthcheck" % name,
                             "add a HEALTHCHECK to the image, or --health-cmd when it is created"))
    if image_created is not None:
        age = (now - image_created).days
        if age > max_image_age_days:
            found.append(finding("containers.old_image", "medium", where,
                                 "%s runs an image built %d days ago" % (name, age),
                                 "rebuild the image on a patched base and roll it out (keel.ops.rolling_update)",
                                 detail={"image": config.get("Image"), "age_days": age}))
    return found


def audit(client, max_image_age_days=90, labels=None, now=None):
    """Findings of every running container (with `labels`, when given) on the engine of a docker.DockerClient."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    filters = {"label": ["%s=%s" % item for item in sorted(labels.items())]} if labels else None
    found, seen = [], 0
    for summary in client.api.containers(filters=filters):
        details = client.api.inspect_container(summary["Id"])
        try:
            created = parse_time(client.api.inspect_image(details["Image"]).get("Created"))
        except (DockerException, RequestException):  # an image removed since is no finding of its own
            created = None
        found += container_findings(details, created, now, max_image_age_days)
        seen += 1
    return found, seen
