# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rollout's LoadBalancer over HAProxy's runtime API (the stats socket, which needs 'level admin').

One command per connection, over a unix socket path or host:port. Taking a server out: 'set server
<backend>/<server> state drain' (no new sessions; skipped for a server in maintenance already), wait until
its current sessions reach 0 or the drain timeout, optionally 'shutdown sessions server', then 'state maint'.
Putting it back: the admin state it had before (admin_states) - 'state ready', then wait until HAProxy
reports the server running again; or 'state drain' / 'state maint' for a server someone had taken out.
The configuration file is never touched.
"""

import socket
import time

from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import READY, LoadBalancer, LoadBalancerError

READ_CHUNK = 65536
OP_STATE_RUNNING = "2"  # srv_op_state in 'show servers state': 0 stopped, 1 starting, 2 running, 3 stopping
ADMIN_STATE_READY = "0"  # srv_admin_state: a bit field, 0 when no maintenance or drain flag is set
MAINT, DRAIN = "maint", "drain"
MAINT_FLAGS = 0x01 | 0x04  # SRV_ADMF_FMAINT (runtime API, 'state maint'), SRV_ADMF_CMAINT ('disabled' in the config)
DRAIN_FLAGS = 0x08  # SRV_ADMF_FDRAIN ('state drain')
# How messages name the options that hold the socket, the backend and the server names: the rollout's, unless the
# module that uses this file names them otherwise (haproxy_maintenance).
OPTION_NAMES = {"socket": "load_balancer.socket", "backend": "load_balancer.backend",
                "servers": "load_balancer.server must give each container's HAProxy server name (default: the "
                           "container name)"}


def admin_state_name(value):
    """srv_admin_state (a bit field) -> MAINT, DRAIN or READY; flags inherited from a tracked server or set by
    DNS resolution are not the server's own and not something 'set server state' restores."""
    try:
        flags = int(value)
    except (TypeError, ValueError):
        raise LoadBalancerError("unexpected srv_admin_state '%s' from HAProxy" % value)
    if flags & MAINT_FLAGS:
        return MAINT
    return DRAIN if flags & DRAIN_FLAGS else READY


def parse_address(address, option=OPTION_NAMES["socket"]):
    """'/run/haproxy/admin.sock' or 'unix:/path' -> (AF_UNIX, path); 'host:port' or 'tcp://host:port' ->
    (AF_INET/AF_INET6, (host, port))."""
    text = (address or "").strip()
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[len("unix:"):].lstrip() or None
    if text.startswith("/"):
        return socket.AF_UNIX, text
    if text.startswith("tcp://"):
        text = text[len("tcp://"):]
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise LoadBalancerError("%s must be a unix socket path or host:port, got '%s'" % (option, address))
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


class RuntimeAPI:
    """Send one command to HAProxy's runtime API and return its answer."""

    def __init__(self, address, timeout=5.0, option=OPTION_NAMES["socket"]):
        self.address = address
        self.option = option
        self.family, self.target = parse_address(address, option)
        self.timeout = timeout

    def command(self, text):
        try:
            with socket.socket(self.family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.target)
                sock.sendall(text.encode("utf-8") + b"\n")
                chunks = []
                while True:
                    chunk = sock.recv(READ_CHUNK)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except (OSError, socket.timeout) as error:
            raise LoadBalancerError(
                "HAProxy runtime API at %s: '%s' failed: %s; check %s and that HAProxy runs "
                "with 'stats socket ... level admin'" % (self.address, text, error.strerror or error, self.option))
        return b"".join(chunks).decode("utf-8", "replace")

    def action(self, text):
        """Run a command that answers an empty line on success; its answer is the error otherwise."""
        raw = self.command(text)
        if not raw:
            raise LoadBalancerError("HAProxy runtime API at %s closed the connection without answering '%s'"
                                    % (self.address, text))
        answer = raw.strip()
        if answer:
            raise LoadBalancerError("HAProxy runtime API at %s refused '%s': %s"
                                    % (self.address, text, " ".join(answer.split())))


def parse_servers_state(text, backend, option=OPTION_NAMES["backend"]):
    """'show servers state <backend>' -> {server: {field: value}}."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("#")), None)
    if header is None:
        raise LoadBalancerError("HAProxy has no backend '%s' (it answered: %s); set %s to one of its backends"
                                % (backend, " ".join(text.split()) or "nothing", option))
    names = header.lstrip("#").split()
    servers = {}
    for line in lines:
        values = line.split()
        if line.startswith("#") or len(values) < len(names):
            continue  # the format version line
        row = dict(zip(names, values))
        servers[row["srv_name"]] = row
    return servers


def parse_stat_sessions(text, backend, server):
    """Current sessions (scur) of one server from 'show stat' CSV."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#"):
        raise LoadBalancerError("unexpected 'show stat' answer from HAProxy: %s" % " ".join(text.split())[:200])
    names = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(names, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") == server:
            return int(row.get("scur") or 0)
    raise LoadBalancerError("HAProxy reports no statistics for %s/%s" % (backend, server))


class HAProxyLoadBalancer(LoadBalancer):
    kind = "haproxy"

    def __init__(self, api, backend, drain_timeout=30.0, shutdown_sessions=False, serving_timeout=30.0,
                 poll_interval=0.05, clock=time.monotonic, sleep=time.sleep, names=None):
        self.names = dict(OPTION_NAMES, **(names or {}))
        if not backend:
            raise LoadBalancerError("%s is required with type haproxy: the HAProxy backend whose servers are the "
                                    "containers" % self.names["backend"])
        self.api = api
        self.backend = backend
        self.drain_timeout = drain_timeout
        self.shutdown_sessions = shutdown_sessions
        self.serving_timeout = serving_timeout
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self._ids = {}  # server -> (backend id, server id), for the cheap 'show stat <iid> 4 <sid>'

    def _servers(self):
        return parse_servers_state(self.api.command("show servers state %s" % self.backend), self.backend,
                                   self.names["backend"])

    def server_names(self):
        return sorted(self._servers())

    def preflight(self, servers):
        known = self._servers()
        missing = [name for name in servers if name not in known]
        if missing:
            raise LoadBalancerError(
                "HAProxy backend '%s' has no server named %s; its servers are %s. %s"
                % (self.backend, ", ".join(missing), ", ".join(sorted(known)) or "none", self.names["servers"]))
        for name in servers:
            self._ids[name] = (known[name]["be_id"], known[name]["srv_id"])

    def admin_states(self, servers):
        known = self._servers()
        return dict((name, admin_state_name(known[name]["srv_admin_state"]) if name in known else None)
                    for name in servers)

    def _path(self, server):
        return "%s/%s" % (self.backend, server)

    def sessions(self, server):
        if server in self._ids:
            text = self.api.command("show stat %s 4 %s" % self._ids[server])
        else:
            text = self.api.command("show stat")
        return parse_stat_sessions(text, self.backend, server)

    def drain(self, server):
        if self.admin_states([server])[server] != MAINT:  # 'state drain' would let a server in maintenance back in
            self.api.action("set server %s state drain" % self._path(server))
        deadline = self.clock() + self.drain_timeout
        left = self.sessions(server)
        while left and self.clock() < deadline:
            self.sleep(self.poll_interval)
            left = self.sessions(server)
        if left and self.shutdown_sessions:
            self.api.action("shutdown sessions server %s" % self._path(server))
        self.api.action("set server %s state maint" % self._path(server))
        return left

    def enable(self, server, state=None):
        state = state or READY
        if state not in (READY, DRAIN, MAINT):
            raise LoadBalancerError("cannot put %s back in HAProxy admin state '%s'" % (self._path(server), state))
        self.api.action("set server %s state %s" % (self._path(server), state))

    def state(self, server):
        row = self._servers().get(server)
        if row is None:
            raise LoadBalancerError("HAProxy backend '%s' no longer has a server %s" % (self.backend, server))
        return row

    def wait_serving(self, server, state=None):
        if (state or READY) != READY:
            return  # it goes back out of rotation, as it was: nothing will serve
        deadline = self.clock() + self.serving_timeout
        while True:
            row = self.state(server)
            if row["srv_op_state"] == OP_STATE_RUNNING and row["srv_admin_state"] == ADMIN_STATE_READY:
                return
            if self.clock() >= deadline:
                raise LoadBalancerError(
                    "HAProxy did not mark %s up within %gs (operational state %s, admin state %s); its health "
                    "check fails against the new container"
                    % (self._path(server), self.serving_timeout, row["srv_op_state"], row["srv_admin_state"]))
            self.sleep(self.poll_interval)

    def hint(self, server, state=None):
        return "echo 'set server %s state %s' | socat stdio %s" % (self._path(server), state or READY, self.api.address)
