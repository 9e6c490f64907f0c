# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's ContainerEngine over the Docker Engine API (Docker SDK for Python): Docker, or Podman's
Docker-compatible service.

A replacement container is created from the old one's inspect output (Config, HostConfig, networks) with
only the image changed. What the old *image* supplied (its Env entries, labels, command, entrypoint, working
dir, user, stop signal, healthcheck, exposed ports, volumes) is left out, so the new image's own defaults
apply; everything the container itself was given is carried over as is. recreate_config() does this and is
pure, so it is unit-tested on inspect documents of both engines.

Podman quirks handled here (Podman 4 compat API): it reports IpcMode 'shareable', PidMode/UTSMode 'private'
and Runtime 'oci' for containers that asked for none of them, ulimits as RLIMIT_NOFILE, Entrypoint [] for
none, WorkingDir '/' for an image without one, signals as numbers; and without systemd it never runs
healthchecks on its own, so state() asks its libpod endpoint to run one while the status is 'starting'.

Rollout records are empty volumes named <instance>-keel-rollout whose label holds the record as JSON: they
live in the engine next to the containers they describe, so any later run against the same engine finds
them, whatever host it runs from. Every API call goes through _call, which turns the SDK's errors and its
HTTP library's transport errors (a socket that goes away, a timeout) into EngineError.
"""

import copy
import json
import shlex
import signal

from ansible_collections.keel.ops.plugins.module_utils._docker import (
    DockerException,
    NotFound,
    RequestException,
    open_client,
    tls_config,
)
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, EngineError, first_line
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import (
    OLD_SUFFIX,
    ContainerEngine,
    ContainerState,
    Instance,
    TargetImage,
)


RECORD_LABEL = "keel.ops.rolling_update.record"
RECORD_SUFFIX = "-keel-rollout"
LOG_TAIL_LINES = 15
PULL_CHOICES = ("missing", "always", "never")
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


# Mode values that mean "the engine's default": not carried over, so the new container gets the default too.
DEFAULT_MODES = {
    "IpcMode": ("", "private", "shareable"),
    "PidMode": ("", "private"),
    "UTSMode": ("", "private"),
    "UsernsMode": ("", "private"),
    "CgroupnsMode": ("",),
    "Runtime": ("", "oci"),
}


# HostConfig keys that describe the old container's terminal or files, not its configuration.
DROPPED_HOST_KEYS = ("ConsoleSize", "ContainerIDFile")


# Config keys whose value is the old image's unless the container overrode it.
IMAGE_DEFAULT_KEYS = ("Cmd", "Entrypoint", "WorkingDir", "User", "StopSignal", "Healthcheck", "Shell", "OnBuild")


# Network modes that are not the name of a network to attach to.
SPECIAL_NETWORK_MODES = ("", "default", "bridge", "host", "none", "slirp4netns", "pasta", "private")


def _env_dict(entries):
    return dict(entry.split("=", 1) if "=" in entry else (entry, "") for entry in entries or [])


def _signal_number(value):
    text = str(value or "SIGTERM").strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal.Signals[name])
    except KeyError:
        return text


def _same_default(key, container_value, image_value):
    """Whether a Config value is what the image supplies (so the new image's own value should apply)."""
    if key == "StopSignal":
        return _signal_number(container_value) == _signal_number(image_value)
    if key == "WorkingDir":
        return (container_value or "/") == (image_value or "/")
    if key == "Healthcheck":
        return _compact(container_value) == _compact(image_value)
    return (container_value or None) == (image_value or None)


def _compact(value):
    """A dict without empty values, for comparisons across engines that omit or zero the same fields."""
    return dict((key, item) for key, item in (value or {}).items() if item not in (None, "", 0, [], {}))


def has_healthcheck(config):
    test = ((config or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def template_fields(attrs):
    """What templates may use for one container: env, labels, ports (host port per container port)."""
    config = attrs.get("Config") or {}
    ports = {}
    bindings = dict((attrs.get("HostConfig") or {}).get("PortBindings") or {})
    bindings.update((attrs.get("NetworkSettings") or {}).get("Ports") or {})  # a running container's actual ports
    for container_port, binds in bindings.items():
        host_port = next((bind.get("HostPort") for bind in binds or [] if bind.get("HostPort")), None)
        if host_port:
            ports[container_port] = host_port
            number, _sep, protocol = container_port.partition("/")
            if protocol in ("", "tcp") and number.isdigit():
                ports[int(number)] = host_port
    return {"env": _env_dict(config.get("Env")), "labels": dict(config.get("Labels") or {}), "ports": ports}


def instance_from_attrs(attrs):
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    host = attrs.get("HostConfig") or {}
    return Instance(
        name=attrs["Name"].lstrip("/"),
        id=attrs["Id"],
        image=config.get("Image") or attrs.get("Image"),
        image_id=attrs.get("Image"),
        running=bool(state.get("Running")),
        has_healthcheck=has_healthcheck(config),
        auto_remove=bool(host.get("AutoRemove")),
        fields=template_fields(attrs),
    )


def _engine_env(entry, config):
    """Env entries the engine adds to every container by itself (Podman: container=podman, HOSTNAME)."""
    return entry == "container=podman" or entry == "HOSTNAME=%s" % config.get("Hostname")


def _container_config(attrs, image_config, image_ref):
    config = copy.deepcopy(attrs.get("Config") or {})
    image_env = set(image_config.get("Env") or [])
    config["Env"] = [entry for entry in config.get("Env") or []
                     if entry not in image_env and not _engine_env(entry, config)]
    image_labels = image_config.get("Labels") or {}
    config["Labels"] = dict((key, value) for key, value in (config.get("Labels") or {}).items()
                            if image_labels.get(key) != value)
    for key in IMAGE_DEFAULT_KEYS:
        if key in config and _same_default(key, config[key], image_config.get(key)):
            del config[key]
    if "Entrypoint" in config and "Cmd" not in config:
        # An entrypoint given on create discards the image's command, so an own entrypoint keeps its command.
        config["Cmd"] = copy.deepcopy((attrs.get("Config") or {}).get("Cmd"))
    for key in ("ExposedPorts", "Volumes"):
        own = dict((item, value) for item, value in (config.get(key) or {}).items()
                   if item not in (image_config.get(key) or {}))
        config[key] = own or None
    host = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    if host == "host" or config.get("Hostname") == attrs.get("Id", "")[:12]:
        config.pop("Hostname", None)  # the host's name, or one the engine generated from the old id
    config["Image"] = image_ref
    return dict((key, value) for key, value in config.items() if value is not None)


def _mount_destinations(host):
    destinations = set()
    for bind in host.get("Binds") or []:
        parts = bind.split(":")
        if len(parts) >= 2:
            destinations.add(parts[1])
    for mount in host.get("Mounts") or []:
        destinations.add(mount.get("Target"))
    return destinations


def _anonymous_volume_binds(attrs, host):
    """Volumes the container got without naming them (image VOLUMEs, -v /path): bound by name into the new
    container so their data carries over, as docker compose does."""
    covered = _mount_destinations(host)
    binds = []
    for mount in attrs.get("Mounts") or []:
        if mount.get("Type") == "volume" and mount.get("Name") and mount.get("Destination") not in covered:
            binds.append("%s:%s%s" % (mount["Name"], mount["Destination"], "" if mount.get("RW", True) else ":ro"))
    return binds


def _legacy_links(links):
    """Inspect shows links as '/db:/app/db'; create wants 'db:db'."""
    result = []
    for link in links or []:
        source, _sep, target = link.partition(":")
        result.append("%s:%s" % (source.lstrip("/"), target.rsplit("/", 1)[-1] or source.lstrip("/")))
    return result


def _host_config(attrs):
    host = copy.deepcopy(attrs.get("HostConfig") or {})
    for key in DROPPED_HOST_KEYS:
        host.pop(key, None)
    for key, defaults in DEFAULT_MODES.items():
        if host.get(key) in defaults:
            host.pop(key, None)
    for key in ("KernelMemory", "KernelMemoryTCP"):  # deprecated; newer engines refuse any value
        host.pop(key, None)
    if host.get("Ulimits"):
        host["Ulimits"] = [dict(limit, Name=limit["Name"].lower().replace("rlimit_", "", 1))
                           for limit in host["Ulimits"]]
    if host.get("Links"):
        host["Links"] = _legacy_links(host["Links"])
    host["Binds"] = list(host.get("Binds") or []) + _anonymous_volume_binds(attrs, host)
    return dict((key, value) for key, value in host.items() if value is not None)


def _endpoint_config(endpoint, old_id):
    aliases = [alias for alias in endpoint.get("Aliases") or [] if alias != old_id[:12]]
    config = {}
    if aliases:
        config["Aliases"] = aliases
    if endpoint.get("IPAMConfig"):
        config["IPAMConfig"] = endpoint["IPAMConfig"]
    if endpoint.get("Links"):
        config["Links"] = endpoint["Links"]
    return config


def network_plan(attrs):
    """(primary network name or None, its endpoint config, [(other network, endpoint config)])."""
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    primary = None if mode in SPECIAL_NETWORK_MODES or mode.startswith(("container:", "ns:")) else mode
    if primary is None:
        return None, {}, []
    old_id = attrs.get("Id", "")
    others = [(name, _endpoint_config(endpoint or {}, old_id)) for name, endpoint in sorted(networks.items())
              if name != primary]
    return primary, _endpoint_config(networks.get(primary) or {}, old_id), others


def recreate_config(attrs, image_config, image_ref):
    """The create body of a container like `attrs` (inspect output) running `image_ref`.

    image_config is the old image's Config (None when the image is gone: then nothing can be told apart
    and the container's whole configuration is kept)."""
    body = _container_config(attrs, image_config or {}, image_ref)
    body["HostConfig"] = _host_config(attrs)
    primary, endpoint, _others = network_plan(attrs)
    if primary:
        body["NetworkingConfig"] = {"EndpointsConfig": {primary: endpoint}}
    return body


def connect(docker_host, timeout=60, tls=None):
    """The DockerEngine of the engine at docker_host (Docker or Podman, told apart by its /_ping)."""
    client, podman = open_client(docker_host, timeout, tls)
    return DockerEngine(client, docker_host, podman=podman)


def connect_from_params(params):
    """The engine the options of _argspecs.DOCKER name (docker_host, else DOCKER_HOST, else the local socket)."""
    tls = tls_config(params["ca_cert"], params["client_cert"], params["client_key"], params["validate_certs"])
    return connect(params["docker_host"] or DEFAULT_DOCKER_HOST, params["timeout"], tls)


class DockerEngine(ContainerEngine):
    def __init__(self, client, docker_host, podman=False):
        self.client = client
        self.api = client.api
        self.docker_host = docker_host
        self.podman = podman
        self._healthchecked = {}

    def _error(self, what, error):
        return EngineError("container engine at %s: cannot %s: %s" % (self.docker_host, what, first_line(error)))

    def _call(self, what, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (DockerException, RequestException) as error:
            raise self._error(what, error)

    def _optional(self, what, function, *args, **kwargs):
        """_call, with None for something that does not exist."""
        try:
            return function(*args, **kwargs)
        except NotFound:
            return None
        except (DockerException, RequestException) as error:
            raise self._error(what, error)

    def cli(self, *argv):
        return " ".join(shlex.quote(part) for part in ("docker", "-H", self.docker_host) + argv)

    # -- images ---------------------------------------------------------------------------------------------

    def _image_id(self, ref):
        attrs = self._optional("inspect image %s" % ref, self.api.inspect_image, ref)
        return attrs["Id"] if attrs else None

    def resolve_image(self, ref, pull="missing", check_mode=False):
        """The target image with its id; pulls it as `pull` says (never in check mode)."""
        image_id = self._image_id(ref)
        if pull == "always" or (pull == "missing" and image_id is None):
            if check_mode:
                return TargetImage(ref, None if pull == "missing" else image_id)
            self._call("pull %s" % ref, self.client.images.pull, ref)
            image_id = self._image_id(ref)
        if image_id is None:
            raise ConfigError("image %s is not on the container engine at %s%s" % (
                ref, self.docker_host, " and pull is never; pull it first or allow pull=missing"
                if pull == "never" else " even after pulling it"))
        return TargetImage(ref, image_id)

    def _image_config(self, image_id):
        attrs = self._optional("inspect image %s" % image_id, self.api.inspect_image, image_id)
        return (attrs.get("Config") or {}) if attrs is not None else None

    # -- containers -----------------------------------------------------------------------------------------

    def _inspect(self, name_or_id):
        return self._call("inspect container %s" % name_or_id, self.api.inspect_container, name_or_id)

    def _lookup(self, name_or_id):
        return self._optional("inspect container %s" % name_or_id, self.api.inspect_container, name_or_id)

    def _listed(self, labels):
        filters = {"label": ["%s=%s" % (key, value) for key, value in sorted((labels or {}).items())]}
        return self._call("list containers", self.api.containers, all=True, filters=filters)

    def select(self, names, labels):
        if names:
            found = []
            for name in names:
                attrs = self._lookup(name)
                if attrs is None:
                    raise ConfigError("no container named %s on %s%s" % (
                        name, self.docker_host, "; %s%s exists: a previous rollout was interrupted, see its "
                        "message" % (name, OLD_SUFFIX) if self.exists(name + OLD_SUFFIX) else ""))
                found.append(attrs)
            return [instance_from_attrs(attrs) for attrs in found]
        ids = [item["Id"] for item in self._listed(labels)
               if not any(name.endswith(OLD_SUFFIX) for name in item.get("Names") or [])]
        return [instance_from_attrs(self._inspect(container_id)) for container_id in ids]

    def find(self, name):
        attrs = self._lookup(name)
        return instance_from_attrs(attrs) if attrs is not None else None

    def leftovers(self, names, labels):
        if names:
            found = [self._lookup(name + OLD_SUFFIX) for name in names]
        else:
            found = [self._lookup(item["Id"]) for item in self._listed(labels)
                     if any(name.endswith(OLD_SUFFIX) for name in item.get("Names") or [])]
        return [instance_from_attrs(attrs) for attrs in found if attrs is not None]

    def stop(self, container_id, timeout):
        self._call("stop container %s" % container_id[:12], self.api.stop, container_id, timeout=int(timeout))

    def rename(self, container_id, name):
        """Safe to repeat, and sure of its outcome: a rename that fails (a timeout, or Docker refusing the
        name the container already has) is checked against the container's name."""
        try:
            self._call("rename container %s to %s" % (container_id[:12], name), self.api.rename, container_id, name)
        except EngineError:
            attrs = self._lookup(container_id)
            if attrs is None or attrs["Name"].lstrip("/") != name:
                raise

    def clone(self, instance, image_ref):
        attrs = self._inspect(instance.id)
        body = recreate_config(attrs, self._image_config(attrs["Image"]), image_ref)
        created = self._call("create container %s from %s" % (instance.name, image_ref),
                             self.api.create_container_from_config, body, instance.name)
        new_id = created["Id"]
        _primary, _endpoint, others = network_plan(attrs)
        for network, endpoint in others:
            self._call("connect %s to network %s" % (instance.name, network), self.api.connect_container_to_network,
                       new_id, network, aliases=endpoint.get("Aliases"),
                       ipv4_address=(endpoint.get("IPAMConfig") or {}).get("IPv4Address"),
                       ipv6_address=(endpoint.get("IPAMConfig") or {}).get("IPv6Address"))
        return new_id

    def start(self, container_id):
        self._call("start container %s" % container_id[:12], self.api.start, container_id)

    def remove(self, container_id):
        self._optional("remove container %s" % container_id[:12], self.api.remove_container, container_id,
                       force=True)

    def _run_podman_healthcheck(self, container_id):
        """Podman runs healthchecks from systemd timers; without systemd, ask it to run one now."""
        url = self.api._url("/libpod/containers/{0}/healthcheck", container_id)
        try:
            self.api._get(url)
        except (DockerException, RequestException):
            pass  # the status read next says what matters

    def state(self, container_id):
        attrs = self._inspect(container_id)
        state = attrs.get("State") or {}
        running = bool(state.get("Running"))
        health = (state.get("Health") or {}).get("Status") or None
        if not has_healthcheck(attrs.get("Config")):
            health = None
        elif self.podman and running and health in (None, "starting"):
            self._run_podman_healthcheck(container_id)
            state = self._inspect(container_id).get("State") or {}
            health = (state.get("Health") or {}).get("Status") or "starting"
        return ContainerState(running, state.get("Status"), health, state.get("ExitCode"))

    def fields(self, container_id):
        return template_fields(self._inspect(container_id))

    def logs(self, container_id, lines=LOG_TAIL_LINES):
        try:
            output = self.api.logs(container_id, tail=lines)
        except (DockerException, RequestException):
            return ""
        return output.decode("utf-8", "replace").strip()

    # -- rollout records ------------------------------------------------------------------------------------

    def records(self):
        listed = self._call("list volumes", self.api.volumes, filters={"label": [RECORD_LABEL]})
        records = []
        for volume in (listed or {}).get("Volumes") or []:
            try:
                record = json.loads((volume.get("Labels") or {})[RECORD_LABEL])
            except (KeyError, TypeError, ValueError):
                continue  # not one of ours after all
            if isinstance(record, dict):
                records.append(record)
        return records

    def write_record(self, name, record):
        volume, labels = name + RECORD_SUFFIX, {RECORD_LABEL: json.dumps(record, sort_keys=True)}
        created = self._call("create volume %s" % volume, self.api.create_volume, volume, labels=labels)
        if (created or {}).get("Labels") != labels:  # the engine kept an older volume of that name
            self.remove_record(name)
            self._call("create volume %s" % volume, self.api.create_volume, volume, labels=labels)

    def remove_record(self, name):
        volume = name + RECORD_SUFFIX
        self._optional("remove volume %s" % volume, self.api.remove_volume, volume)

    def record_commands(self, name):
        return [self.cli("volume", "rm", name + RECORD_SUFFIX)]
