# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a file restore stops and starts a Redis server: commands of the caller's, a systemd service, or a
container through the Docker API (whose paths are mapped to this host through its mounts, never outside them).
"""

import os
import posixpath
import subprocess

from ansible_collections.keel.ops.plugins.module_utils import _process as process

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, EngineError, RedisError, first_line


class CommandHook:
    """Stop and start the server with commands of the caller's (argv lists; they get no secret)."""

    def __init__(self, stop, start):
        self.argv = {"stop": list(stop), "start": list(start)}

    def describe(self):
        return "commands %s / %s" % (" ".join(self.argv["stop"]), " ".join(self.argv["start"]))

    def run(self, action, workdir, timeout):
        try:
            child = process.Child(self.argv[action], dict(os.environ), workdir, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL)
        except OSError as error:
            raise RedisError("the %s hook %s cannot run: %s" % (action, self.argv[action][0],
                                                                error.strerror or error))
        try:
            child.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise RedisError("the %s hook (%s) did not finish within %ss" % (action, self.argv[action][0], timeout))
        except BaseException:
            child.kill()  # interrupted: the hook does not outlive the module
            raise
        try:
            child.finish()
        except process.ToolError as error:
            raise RedisError("the %s hook failed: %s" % (action, error))

    @staticmethod
    def host_path(path):
        return path


class SystemdHook(CommandHook):
    """systemctl stop/start of a service."""

    def __init__(self, service):
        CommandHook.__init__(self, ["systemctl", "stop", service], ["systemctl", "start", service])
        self.service = service

    def describe(self):
        return "systemd service %s" % self.service


class DockerHook:
    """Stop and start a container through the Docker API; paths inside it are mapped to the host via its mounts."""

    def __init__(self, name, docker_host):
        # Imported here: the Docker SDK costs a tenth of a second to import, and only this hook needs it.
        from ansible_collections.keel.ops.plugins.module_utils._docker import api_errors, open_client

        self._api_errors = api_errors
        self.name = name
        try:
            with api_errors(self._unreachable):
                self.client, _podman = open_client(docker_host or os.environ.get("DOCKER_HOST")
                                                   or "unix:///var/run/docker.sock", timeout=120,
                                                   purpose="docker_container")
                self.container = self.client.containers.get(name)
        except EngineError as error:
            raise RedisError("cannot reach the Docker API for container %s: %s" % (name, error))

    def _unreachable(self, error):
        if getattr(error, "status_code", None) == 404:
            return ConfigError("docker_container: no container named %s" % self.name)
        return RedisError("cannot reach the Docker API for container %s: %s" % (self.name, first_line(error)))

    def describe(self):
        return "container %s" % self.name

    def run(self, action, _workdir, timeout):
        with self._api_errors(lambda error: RedisError("could not %s container %s: %s"
                                                       % (action, self.name, first_line(error)))):
            if action == "stop":
                self.container.stop(timeout=int(timeout))
            else:
                self.container.start()

    def host_path(self, path):
        """Where a path inside the container lives on this host (the longest mount that holds it). The path is
        normalised first ('..' resolved), and what it leads to on this host, symlinks followed, must stay inside
        the mount's source: a path that leaves its mount is refused."""
        if not posixpath.isabs(path or ""):
            raise ConfigError("container %s reports %r, which is not an absolute path: set data_dir"
                              % (self.name, path))
        path = "/" + posixpath.normpath(path).lstrip("/")
        mounts = [m for m in self.container.attrs.get("Mounts") or [] if _inside(path, m["Destination"])]
        if not mounts:
            raise ConfigError("%s in container %s is not on a volume or bind mount, so this host cannot reach it; "
                              "use restore_method: keys" % (path, self.name))
        mount = max(mounts, key=lambda m: len(posixpath.normpath(m["Destination"])))
        source = os.path.normpath(mount["Source"])
        inner = posixpath.relpath(path, posixpath.normpath(mount["Destination"]))
        host = os.path.normpath(os.path.join(source, inner))
        if not _inside(os.path.realpath(host), os.path.realpath(source)):
            raise ConfigError("%s in container %s leads out of its mount (%s on this host) to %s: refused"
                              % (path, self.name, source, os.path.realpath(host)))
        return host


def _inside(path, directory):
    directory = posixpath.normpath(directory)
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def hook_from_params(params):
    if params.get("docker_container"):
        return DockerHook(params["docker_container"], params.get("docker_host"))
    if params.get("systemd_service"):
        return SystemdHook(params["systemd_service"])
    if params.get("stop_command"):
        return CommandHook(params["stop_command"], params["start_command"])
    return None
