"""Containers for the embedded stack: a Podman API socket (Docker-compatible), configured inside the state dir
(runc, lowered ulimits, vfs storage, host networking), and a small fleet of app containers built locally.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

from .app_image import build_app_rootfs
from .constants import APP_LABELS, APP_NAME, APP_VARIANTS, CONTAINER_TOOLS, LOG_TAIL_LINES, LOOPBACK
from .process import (
    StackError,
    check_socket_path,
    find_tool,
    import_docker,
    missing_tools,
    mounts_under,
    pick_port,
    pid_alive,
    port_answers,
    run,
    stop_pid,
    wait_until,
)
from .service import Service


class Containers(Service):
    """A Podman API socket (Docker-compatible) and a fleet of app containers.

    Networking: every container uses host networking and binds its own
    127.0.0.1 port (APP_PORT).  Rootful bridge networking with published ports
    does work in this sandbox, but (1) it gives each container a 10.88.x address
    and routes the traffic there, while the stack must stay on loopback;
    (2) each stack keeps its own IPAM database, so two stacks side by side
    (pytest -n 2) would hand out the same bridge addresses; (3) netavark leaves
    iptables chains and sysctls behind.  Host networking has none of that.

    Storage: vfs under the state dir; the images are ~2 MB, so copying a layer
    per container is cheap, and unlike overlay it needs no kernel mount, so
    nothing outside the state dir is left mounted after `stop`.
    """

    name = "containers"
    expect = "podman"

    @property
    def socket_path(self) -> Path:
        return check_socket_path(self.dir / "podman.sock")

    def running(self, facts: dict) -> bool:
        return pid_alive(facts.get("pid"), self.expect) and self._ping()

    def ensure(self, old: dict, *, fleet: int = 4, required: bool = False, **ctx) -> None:
        problem = self.engine_problem()
        if problem:
            if required:
                raise StackError(f"containers are required but cannot run: {problem}")
            self.stack.record(self.name, {"available": False, "reason": problem})
            return
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        facts = {"available": True, "reason": "", "docker_host": f"unix://{self.socket_path}",
                 "network": "host", "pid": old.get("pid"), "images": {}, "instances": []}
        self._write_configs()
        if not self.running(old):
            self.stop(old)
            self.socket_path.unlink(missing_ok=True)
            argv = [find_tool("podman"), "system", "service", "--time=0", f"unix://{self.socket_path}"]
            self.launch(facts, argv, self._ping, env=self.env())
        client = self.client()
        facts["images"] = self._ensure_images(client)
        facts["instances"] = self._ensure_fleet(client, facts["images"]["v1"], fleet, old.get("instances", []))
        self.stack.record(self.name, facts)

    @staticmethod
    def engine_problem() -> str:
        """Why the fleet cannot run here ("" if it can): a missing tool, with its package."""
        missing = missing_tools(CONTAINER_TOOLS)
        return "not installed: " + ", ".join(missing) if missing else ""

    def env(self) -> dict:
        env = dict(os.environ, CONTAINERS_CONF=str(self.dir / "containers.conf"),
                   CONTAINERS_STORAGE_CONF=str(self.dir / "storage.conf"))
        for variable in ("CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST"):
            env.pop(variable, None)  # would turn the podman CLI into a remote client
        return env

    def _write_configs(self) -> None:
        # Containers only start with runc and lowered ulimits here; everything podman
        # writes (storage, runtime state, events, network configs) stays in the state dir.
        conf = f"""\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "host"
ipcns = "private"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.dir}/events.log"
tmp_dir = "{self.dir}/tmp"
volume_path = "{self.dir}/volumes"

[network]
network_config_dir = "{self.dir}/networks"
"""
        storage = f"""\
[storage]
driver = "vfs"
graphroot = "{self.dir}/storage"
runroot = "{self.dir}/run"
"""
        (self.dir / "containers.conf").write_text(conf)
        (self.dir / "storage.conf").write_text(storage)

    def client(self):
        return import_docker().DockerClient(base_url=f"unix://{self.socket_path}", version="auto", timeout=60)

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket_path))
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return sock.recv(64).split(b" ")[1:2] == [b"200"]
        except OSError:
            return False

    def _ensure_images(self, client) -> dict:
        images = {}
        for variant in APP_VARIANTS:
            ref = f"localhost/{APP_NAME}:{variant}"
            tar = build_app_rootfs(variant)
            digest = hashlib.sha256(tar).hexdigest()[:16]
            if self._image_source(client, ref) != digest:  # missing, or built from other files
                self._import_image(ref, variant, tar, digest)
            images[variant] = ref
        return images

    @staticmethod
    def _image_source(client, ref: str) -> str | None:
        try:
            return (client.images.get(ref).labels or {}).get("keel.stack.source")
        except import_docker().errors.ImageNotFound:
            return None

    def _import_image(self, ref: str, variant: str, tar: bytes, digest: str) -> None:
        # Only where to listen is configuration (ENV); what the image does is in its files.
        path = self.dir / f"rootfs-{variant}.tar"
        path.write_bytes(tar)
        changes = ['CMD ["/bin/app"]', "ENV APP_HOST=127.0.0.1", "ENV APP_PORT=8080", "STOPSIGNAL SIGTERM",
                   f"LABEL keel.stack.source={digest}", f"LABEL app={APP_NAME}"]
        argv = [find_tool("podman"), "import", "--quiet"]
        for change in changes:
            argv += ["--change", change]
        try:
            run(argv + [str(path), ref], what=f"podman import {ref}", env=self.env())
        finally:
            path.unlink(missing_ok=True)

    def _ensure_fleet(self, client, image: str, fleet: int, old_instances: list) -> list:
        old_ports = {item["name"]: item["port"] for item in old_instances}
        existing = {c.name: c for c in client.containers.list(all=True, filters={"label": "keel.stack=1"})}
        instances = []
        try:
            for index in range(1, fleet + 1):
                name = f"{APP_NAME}-{index}"
                container = existing.pop(name, None)
                port = self._app_port(container) if container else pick_port(old_ports.get(name))
                if container is None:
                    self._run_app(client, name, image, port)
                elif container.status != "running":
                    container.start()
                instances.append({"name": name, "port": port,
                                  "health_url": f"http://{LOOPBACK}:{port}/health"})
            for name, container in existing.items():  # the fleet shrank
                if name.startswith(f"{APP_NAME}-"):
                    container.remove(force=True)
        except import_docker().errors.APIError as err:
            raise StackError(f"container engine refused: {err.explanation or err}") from err
        for item in instances:
            self._wait_serving(client, item)
        return instances

    def _wait_serving(self, client, item: dict) -> None:
        container = client.containers.get(item["name"])

        def serving():
            container.reload()
            if container.status not in ("created", "running"):
                logs = container.logs(tail=LOG_TAIL_LINES).decode(errors="replace")
                raise StackError(f"container {item['name']} is {container.status}; its output:\n{logs}")
            return port_answers(item["port"])

        wait_until(serving, what=item["name"], pid=None, expect="", log=self.log, timeout=20)

    @staticmethod
    def _run_app(client, name: str, image: str, port: int) -> None:
        # ipc_mode private: no per-container /dev/shm tmpfs mounted on the host side.
        client.containers.run(image, name=name, detach=True, network_mode="host", ipc_mode="private",
                              environment={"APP_PORT": str(port)}, labels=dict(APP_LABELS))

    @staticmethod
    def _app_port(container) -> int:
        for item in container.attrs["Config"].get("Env") or []:
            if item.startswith("APP_PORT="):
                return int(item.split("=", 1)[1])
        raise StackError(f"container {container.name} has no APP_PORT")

    def stop(self, facts: dict) -> None:
        # Remove the containers first, through the CLI so it also works when the
        # API service is already gone; then the service; then any stray mount.
        if (self.dir / "storage").exists() and find_tool("podman"):
            try:
                run([find_tool("podman"), "rm", "--all", "--force", "--time", "0"],
                    what="podman rm", env=self.env(), timeout=60)
            except StackError as err:
                print(f"stack: warning: {err}", file=sys.stderr)
        stop_pid(facts.get("pid"), self.expect)
        for point in mounts_under(self.dir):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def describe(self, facts: dict) -> str:
        if not facts.get("available"):
            return f"unavailable: {facts.get('reason')}"
        names = ", ".join(f"{i['name']}:{i['port']}" for i in facts.get("instances", []))
        return f"{facts['docker_host']} [{names}]"
