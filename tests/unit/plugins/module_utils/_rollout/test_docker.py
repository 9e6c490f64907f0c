"""Recreating a container from its inspect output: what is carried over, what is left to the new image, and
the Podman quirks. The documents below are trimmed from real `inspect` output of Podman 4 and Docker 27."""

import copy

import docker
import pytest
import requests
from ansible_collections.keel.ops.plugins.module_utils import _docker as docker_client
from ansible_collections.keel.ops.plugins.module_utils._rollout import docker as docker_engine

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, EngineError
from ansible_collections.keel.ops.plugins.module_utils._rollout.docker import (
    DockerEngine,
    instance_from_attrs,
    network_plan,
    recreate_config,
    template_fields,
)

PODMAN_IMAGE = {
    "Env": ["APP_HOST=127.0.0.1", "APP_PORT=8080"],
    "Cmd": ["/bin/app"],
    "Entrypoint": None,
    "WorkingDir": "",
    "Labels": {"app": "keel-app", "keel.stack.source": "1d7efd629852a087"},
    "StopSignal": "15",
}

PODMAN_CONTAINER = {
    "Id": "7a7e53181899853c6b010e1c0c010df2d98d63aaabf5107c5e99228b6832e534",
    "Name": "/keel-app-1",
    "Image": "sha256:85cfa7841ddc8e14b4efdcb6c6383de34f9ee3b745285e73d0039ca7da212964",
    "State": {"Status": "running", "Running": True, "Health": {"Status": "", "FailingStreak": 0, "Log": None}},
    "Config": {
        "Hostname": "vm",
        "User": "",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm",
                "container=podman", "APP_HOST=127.0.0.1", "APP_PORT=60481", "HOME=/", "HOSTNAME=vm"],
        "Cmd": ["/bin/app"],
        "Image": "localhost/keel-app:v1",
        "Volumes": None,
        "WorkingDir": "/",
        "Entrypoint": [],
        "OnBuild": None,
        "Labels": {"app": "keel-app", "keel.stack": "1", "keel.stack.source": "1d7efd629852a087"},
        "StopSignal": "15",
        "StopTimeout": 0,
    },
    "HostConfig": {
        "Binds": ["/srv/data:/data:ro,rprivate,rbind", "appvol:/vol:rw,rprivate,nosuid,nodev,rbind"],
        "LogConfig": {"Type": "json-file", "Config": None},
        "NetworkMode": "host",
        "PortBindings": {},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "AutoRemove": False,
        "IpcMode": "shareable",
        "PidMode": "private",
        "UTSMode": "private",
        "CgroupnsMode": "",
        "Runtime": "oci",
        "ConsoleSize": [0, 0],
        "ShmSize": 65536000,
        "PidsLimit": 2048,
        "Links": None,
        "Ulimits": [{"Name": "RLIMIT_NOFILE", "Hard": 1024, "Soft": 1024}],
        "KernelMemory": 0,
    },
    "Mounts": [
        {"Type": "volume", "Name": "appvol", "Destination": "/vol", "RW": True},
        {"Type": "bind", "Source": "/srv/data", "Destination": "/data", "RW": False},
    ],
    "NetworkSettings": {"Ports": {}, "Networks": {}},
}

DOCKER_IMAGE = {
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
    "Cmd": ["gunicorn", "app:wsgi"],
    "Entrypoint": ["/entrypoint.sh"],
    "WorkingDir": "/srv",
    "User": "app",
    "ExposedPorts": {"8000/tcp": {}},
    "Volumes": {"/srv/cache": {}},
    "Labels": {"org.opencontainers.image.version": "1.8.0"},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD", "/healthcheck"], "Interval": 5000000000},
}

DOCKER_CONTAINER = {
    "Id": "3f2a9c1d0b7e6f5a4c3b2a190817161514131211100f0e0d0c0b0a0908070605",
    "Name": "/api-1",
    "Image": "sha256:aaaa",
    "State": {"Status": "running", "Running": True, "Health": {"Status": "healthy"}},
    "Config": {
        "Hostname": "3f2a9c1d0b7e",
        "User": "app",
        "Env": ["DATABASE_URL=postgres://db/app", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
        "Cmd": ["gunicorn", "-w", "4", "app:wsgi"],
        "Image": "registry.example.internal/api:1.8.0",
        "WorkingDir": "/srv",
        "Entrypoint": ["/entrypoint.sh"],
        "ExposedPorts": {"8000/tcp": {}, "9100/tcp": {}},
        "Volumes": {"/srv/cache": {}},
        "Labels": {"org.opencontainers.image.version": "1.8.0", "com.example.team": "payments"},
        "StopSignal": "3",
        "Healthcheck": {"Test": ["CMD", "/healthcheck"], "Interval": 5000000000, "Timeout": 0},
    },
    "HostConfig": {
        "Binds": None,
        "NetworkMode": "backend",
        "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18000"}]},
        "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        "Mounts": [{"Type": "bind", "Source": "/etc/api", "Target": "/etc/api", "ReadOnly": True}],
        "IpcMode": "private",
        "Runtime": "runc",
        "Links": ["/db-1:/api-1/db"],
        "Memory": 536870912,
    },
    "Mounts": [
        {"Type": "bind", "Source": "/etc/api", "Destination": "/etc/api", "RW": False},
        {"Type": "volume", "Name": "4c1e0f9b8a7d", "Destination": "/srv/cache", "RW": True},
    ],
    "NetworkSettings": {
        "Ports": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18000"}], "9100/tcp": None},
        "Networks": {
            "backend": {"Aliases": ["api", "3f2a9c1d0b7e"], "IPAMConfig": None},
            "metrics": {"Aliases": ["api-metrics"], "IPAMConfig": {"IPv4Address": "10.9.0.7"}},
        },
    },
}


def test_podman_container_keeps_its_own_settings_and_drops_the_images():
    body = recreate_config(copy.deepcopy(PODMAN_CONTAINER), PODMAN_IMAGE, "localhost/keel-app:v2")
    assert body["Image"] == "localhost/keel-app:v2"
    # APP_HOST came from the image; container=podman and HOSTNAME are the engine's; the rest was the container's.
    assert body["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm",
                           "APP_PORT=60481", "HOME=/"]
    assert body["Labels"] == {"keel.stack": "1"}
    for key in ("Cmd", "Entrypoint", "WorkingDir", "StopSignal", "Hostname", "Volumes", "OnBuild"):
        assert key not in body, key
    host = body["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["Binds"] == PODMAN_CONTAINER["HostConfig"]["Binds"], "named and bind mounts as the engine reports them"
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Ulimits"] == [{"Name": "nofile", "Hard": 1024, "Soft": 1024}]
    for key in ("IpcMode", "PidMode", "UTSMode", "CgroupnsMode", "Runtime", "ConsoleSize", "KernelMemory", "Links"):
        assert key not in host, key
    assert host["ShmSize"] == 65536000 and host["PidsLimit"] == 2048
    assert "NetworkingConfig" not in body


def test_docker_container_on_user_networks_with_ports_and_an_anonymous_volume():
    body = recreate_config(copy.deepcopy(DOCKER_CONTAINER), DOCKER_IMAGE, "registry.example.internal/api:1.9.0")
    assert body["Env"] == ["DATABASE_URL=postgres://db/app"]
    assert body["Labels"] == {"com.example.team": "payments"}
    assert body["Cmd"] == ["gunicorn", "-w", "4", "app:wsgi"], "an overridden command is kept"
    assert "Entrypoint" not in body and "WorkingDir" not in body and "User" not in body
    assert "StopSignal" not in body, "3 is the image's SIGQUIT"
    assert "Healthcheck" not in body, "the same healthcheck as the image's, zero fields aside"
    assert "Hostname" not in body, "generated from the old container's id"
    assert body["ExposedPorts"] == {"9100/tcp": {}} and "Volumes" not in body
    host = body["HostConfig"]
    assert host["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18000"}]}
    assert host["Mounts"] == DOCKER_CONTAINER["HostConfig"]["Mounts"]
    assert host["Binds"] == ["4c1e0f9b8a7d:/srv/cache"], "the anonymous volume's data carries over"
    assert host["Links"] == ["db-1:db"]
    assert host["Memory"] == 536870912 and host["Runtime"] == "runc" and "IpcMode" not in host
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"backend": {"Aliases": ["api"]}}}
    primary, _endpoint, others = network_plan(DOCKER_CONTAINER)
    assert primary == "backend"
    assert others == [("metrics", {"Aliases": ["api-metrics"], "IPAMConfig": {"IPv4Address": "10.9.0.7"}})]


def test_container_overrides_of_image_defaults_are_kept():
    attrs = copy.deepcopy(DOCKER_CONTAINER)
    attrs["Config"].update(User="root", WorkingDir="/tmp", StopSignal="SIGTERM", Hostname="api-1.internal",
                           Healthcheck={"Test": ["CMD", "curl", "-f", "localhost:8000"], "Interval": 1000000000})
    body = recreate_config(attrs, DOCKER_IMAGE, "api:2")
    kept = (body["User"], body["WorkingDir"], body["StopSignal"], body["Hostname"])
    assert kept == ("root", "/tmp", "SIGTERM", "api-1.internal")
    assert body["Healthcheck"]["Test"] == ["CMD", "curl", "-f", "localhost:8000"]


def test_without_the_old_image_everything_is_kept():
    body = recreate_config(copy.deepcopy(PODMAN_CONTAINER), None, "localhost/keel-app:v2")
    assert "APP_HOST=127.0.0.1" in body["Env"] and body["Cmd"] == ["/bin/app"]
    assert body["Labels"]["keel.stack.source"] == "1d7efd629852a087"


def test_instance_and_template_fields():
    item = instance_from_attrs(DOCKER_CONTAINER)
    assert (item.name, item.image, item.image_id, item.running, item.has_healthcheck, item.auto_remove) == (
        "api-1", "registry.example.internal/api:1.8.0", "sha256:aaaa", True, True, False)
    assert item.fields["env"]["DATABASE_URL"] == "postgres://db/app"
    assert item.fields["ports"] == {"8000/tcp": "18000", 8000: "18000"}
    assert template_fields(PODMAN_CONTAINER)["labels"]["keel.stack"] == "1"
    assert instance_from_attrs(PODMAN_CONTAINER).has_healthcheck is False


class StubAPI:
    """Just enough of docker.APIClient for state(): inspect answers in turn, and the libpod call recorded."""

    def __init__(self, states):
        self.states = list(states)
        self.calls = []

    def inspect_container(self, container_id):
        attrs = copy.deepcopy(PODMAN_CONTAINER)
        attrs["Config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "true"]}
        attrs["State"]["Health"]["Status"] = self.states.pop(0)
        return attrs

    def _url(self, path, *args):
        return path.format(*args)

    def _get(self, url):
        self.calls.append(url)


class StubClient:
    def __init__(self, api):
        self.api = api


def test_podman_is_asked_to_run_a_healthcheck_it_would_never_run_itself():
    api = StubAPI(["starting", "healthy"])
    engine = DockerEngine(StubClient(api), "unix:///run/podman.sock", podman=True)
    assert engine.state("abc").health == "healthy"
    assert api.calls == ["/libpod/containers/abc/healthcheck"]


def test_docker_healthchecks_are_only_read():
    api = StubAPI(["starting"])
    engine = DockerEngine(StubClient(api), "unix:///var/run/docker.sock", podman=False)
    assert engine.state("abc").health == "starting"
    assert api.calls == []


def test_tls_options_go_together():
    with pytest.raises(ConfigError, match="client_cert and client_key go together"):
        docker_client.tls_config(client_cert="/c.pem")
    assert docker_client.tls_config() is None


# --------------------------------------------------------------------------------------------------------
# Transport errors, repeatable steps and rollout records, against a stand-in for docker.APIClient
# --------------------------------------------------------------------------------------------------------

class MemoryAPI:
    """Containers and volumes in memory, answering as docker.APIClient does; `broken` maps a method name to the
    exception it raises (before doing anything), `late` to one it raises after doing its work."""

    def __init__(self):
        self.by_id = {"id-1": "/app-1", "id-2": "/app-2-keel-old"}
        self.volumes_by_name = {}
        self.broken = {}
        self.late = {}

    def _enter(self, method):
        if method in self.broken:
            raise self.broken[method]

    def _leave(self, method):
        if method in self.late:
            raise self.late.pop(method)

    def _id(self, name_or_id):
        for container_id, name in self.by_id.items():
            if name_or_id in (container_id, name.lstrip("/")):
                return container_id
        raise docker.errors.NotFound("no such container: %s" % name_or_id)

    def inspect_container(self, name_or_id):
        self._enter("inspect_container")
        container_id = self._id(name_or_id)
        attrs = copy.deepcopy(PODMAN_CONTAINER)
        attrs.update(Id=container_id, Name=self.by_id[container_id])
        return attrs

    def containers(self, all=False, filters=None):  # pylint: disable=redefined-builtin
        self._enter("containers")
        return [{"Id": container_id, "Names": [name]} for container_id, name in self.by_id.items()]

    def inspect_image(self, ref):
        self._enter("inspect_image")
        return {"Id": "sha256:" + ref, "Config": {}}

    def stop(self, container_id, timeout):
        self._enter("stop")

    def rename(self, container_id, name):
        self._enter("rename")
        if self.by_id[container_id] == "/" + name:
            raise docker.errors.APIError("Renaming a container with the same name as its current name")
        self.by_id[container_id] = "/" + name
        self._leave("rename")

    def remove_container(self, container_id, force=False):
        self._enter("remove_container")
        del self.by_id[self._id(container_id)]

    def create_volume(self, name, labels=None):
        self._enter("create_volume")
        volume = self.volumes_by_name.setdefault(name, {"Name": name, "Labels": dict(labels or {})})
        return copy.deepcopy(volume)

    def volumes(self, filters=None):
        self._enter("volumes")
        return {"Volumes": [copy.deepcopy(volume) for volume in self.volumes_by_name.values()]}

    def remove_volume(self, name):
        self._enter("remove_volume")
        if name not in self.volumes_by_name:
            raise docker.errors.NotFound("no such volume: %s" % name)
        del self.volumes_by_name[name]


def memory_engine():
    api = MemoryAPI()
    return DockerEngine(StubClient(api), "unix:///run/podman.sock", podman=True), api


GONE = requests.exceptions.ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))")
SLOW = requests.exceptions.ReadTimeout(
    "UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. (read timeout=60)")

TRANSPORT_CALLS = [
    ("containers", lambda engine: engine.select(None, {"app": "x"}), "list containers"),
    ("inspect_container", lambda engine: engine.select(["app-1"], None), "inspect container app-1"),
    ("inspect_container", lambda engine: engine.find("app-1"), "inspect container app-1"),
    ("inspect_container", lambda engine: engine.leftovers(["app-2"], None), "inspect container app-2-keel-old"),
    ("inspect_image", lambda engine: engine.resolve_image("app:v2", "never"), "inspect image app:v2"),
    ("stop", lambda engine: engine.stop("id-1", 10), "stop container id-1"),
    ("remove_container", lambda engine: engine.remove("id-1"), "remove container id-1"),
    ("volumes", lambda engine: engine.records(), "list volumes"),
    ("create_volume", lambda engine: engine.write_record("app-1", {}), "create volume app-1-keel-rollout"),
]


@pytest.mark.parametrize("error", [GONE, SLOW], ids=["socket gone", "timeout"])
@pytest.mark.parametrize("method, call, what", TRANSPORT_CALLS, ids=[c[2] for c in TRANSPORT_CALLS])
def test_transport_errors_become_engine_errors_that_say_what_failed(error, method, call, what):
    engine, api = memory_engine()
    api.broken[method] = error
    with pytest.raises(EngineError, match=r"^container engine at unix:///run/podman.sock: cannot %s: " % what):
        call(engine)


def test_a_rename_that_timed_out_after_renaming_is_a_success():
    engine, api = memory_engine()
    api.late["rename"] = SLOW
    engine.rename("id-1", "app-1-keel-old")
    assert api.by_id["id-1"] == "/app-1-keel-old"
    engine.rename("id-1", "app-1-keel-old")  # again: Docker refuses the name it already has, which is fine here


def test_a_rename_that_failed_is_an_error():
    engine, api = memory_engine()
    api.broken["rename"] = SLOW
    with pytest.raises(EngineError, match="cannot rename container id-1 to app-1-keel-old: .*Read timed out"):
        engine.rename("id-1", "app-1-keel-old")


def test_removing_a_container_that_is_gone_is_not_an_error():
    engine, api = memory_engine()
    engine.remove("id-1")
    engine.remove("id-1")
    assert "id-1" not in api.by_id


def test_leftovers_are_the_keel_old_containers_of_the_selection():
    engine, _api = memory_engine()
    assert [item.name for item in engine.leftovers(None, {"app": "keel-app"})] == ["app-2-keel-old"]
    assert [item.name for item in engine.leftovers(["app-2"], None)] == ["app-2-keel-old"]
    assert engine.leftovers(["app-1"], None) == []
    assert [item.name for item in engine.select(None, {"app": "keel-app"})] == ["app-1"]


def test_records_are_volumes_that_survive_the_process_and_replace_a_stale_one():
    engine, api = memory_engine()
    api.volumes_by_name["app-1-keel-rollout"] = {"Name": "app-1-keel-rollout",
                                                 "Labels": {docker_engine.RECORD_LABEL: '{"instance": "stale"}'}}
    api.volumes_by_name["other"] = {"Name": "other", "Labels": {docker_engine.RECORD_LABEL: "not json"}}
    engine.write_record("app-1", {"instance": "app-1", "old_id": "id-1", "lb_before": "ready"})
    again = DockerEngine(StubClient(api), "unix:///run/podman.sock")  # the next run
    assert again.records() == [{"instance": "app-1", "old_id": "id-1", "lb_before": "ready"}]
    again.remove_record("app-1")
    again.remove_record("app-1")
    assert again.records() == []
    assert again.record_commands("app-1") == ["docker -H unix:///run/podman.sock volume rm app-1-keel-rollout"]
