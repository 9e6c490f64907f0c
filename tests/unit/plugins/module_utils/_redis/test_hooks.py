"""How a file restore stops and starts a server: systemd, and a container's paths mapped through its mounts."""

import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._redis import hooks as redis_hooks

from .fakes import PARAMS


def test_systemd_hook_runs_systemctl():
    hook = redis_hooks.hook_from_params(dict(PARAMS, systemd_service="redis-server"))
    assert hook.argv == {"stop": ["systemctl", "stop", "redis-server"], "start": ["systemctl", "start", "redis-server"]}


def test_container_paths_are_found_through_the_longest_mount():
    hook = redis_hooks.DockerHook.__new__(redis_hooks.DockerHook)
    hook.name = "cache"
    hook.container = type("Container", (), {"attrs": {"Mounts": [
        {"Source": "/var/lib/docker/volumes/root/_data", "Destination": "/"},
        {"Source": "/srv/redis-data", "Destination": "/data"}]}})()
    assert hook.host_path("/data/dump.rdb") == "/srv/redis-data/dump.rdb"
    hook.container.attrs["Mounts"] = [{"Source": "/srv/x", "Destination": "/other"}]
    with pytest.raises(ConfigError, match="is not on a volume or bind mount"):
        hook.host_path("/data/dump.rdb")


def docker_hook(mounts):
    hook = redis_hooks.DockerHook.__new__(redis_hooks.DockerHook)
    hook.name = "cache"
    hook.container = type("Container", (), {"attrs": {"Mounts": mounts}})()
    return hook


def test_container_paths_cannot_leave_their_mount(tmp_path):
    source = tmp_path / "data"
    source.mkdir()
    hook = docker_hook([{"Source": str(source), "Destination": "/data"}])
    assert hook.host_path("/data/./sub/../dump.rdb") == str(source / "dump.rdb")
    with pytest.raises(ConfigError, match="is not on a volume or bind mount"):
        hook.host_path("/data/../etc/shadow")
    with pytest.raises(ConfigError, match="not an absolute path"):
        hook.host_path("data/dump.rdb")
    os.symlink("/etc", str(source / "etc"))
    with pytest.raises(ConfigError, match=r"leads out of its mount .* to /etc/shadow: refused"):
        hook.host_path("/data/etc/shadow")
