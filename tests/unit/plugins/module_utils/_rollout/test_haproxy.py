"""The HAProxy adapter against a stand-in runtime API on a unix socket that answers as HAProxy 2.6 does."""

import os
import shutil
import socket
import socketserver
import tempfile
import threading

import pytest

from ansible_collections.keel.ops.plugins.module_utils._rollout.haproxy import (
    HAProxyLoadBalancer,
    RuntimeAPI,
    admin_state_name,
    parse_address,
    parse_servers_state,
    parse_stat_sessions,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import LoadBalancerError

STATE_HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
                "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
                "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
                "srv_check_port srv_check_addr srv_agent_addr srv_agent_port")
STAT_HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status"


class OneCommand(socketserver.StreamRequestHandler):
    def handle(self):
        command = self.rfile.readline().decode().strip()
        self.server.fake.commands.append(command)
        self.wfile.write(self.server.fake.answer(command).encode())


class FakeHAProxy:
    """Servers of backend 'app' with admin/operational states and a scripted list of session counts."""

    def __init__(self, path, sessions=(0,)):
        self.path = path
        self.admin = {"web-1": "0", "web-2": "0"}
        self.sessions = list(sessions)
        self.commands = []
        self.server = socketserver.UnixStreamServer(path, OneCommand)
        self.server.fake = self
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, command):
        words = command.split()
        if command == "show servers state app":
            rows = ["3 app %d %s 127.0.0.1 %s %s 1 1 5 15 3 3 6 0 0 0 - 8080 - 0 0 - - 0"
                    % (index, name, "0" if state == "1" else "2", state)
                    for index, (name, state) in enumerate(sorted(self.admin.items()), 1)]
            return "1\n%s\n%s\n\n" % (STATE_HEADER, "\n".join(rows))
        if command.startswith("show servers state"):
            return "Can't find backend.\n\n"
        if words[:2] == ["show", "stat"]:
            count = self.sessions.pop(0) if len(self.sessions) > 1 else self.sessions[0]
            return "%s\napp,web-1,0,0,%d,5,,100,0,0,,0,,0,0,0,0,UP\n\n" % (STAT_HEADER, count)
        if words[:2] == ["set", "server"]:
            backend, _sep, server = words[2].partition("/")
            if backend != "app":
                return "No such backend.\n\n"
            if server not in self.admin:
                return "No such server.\n\n"
            if words[4] not in ("ready", "drain", "maint"):
                return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
            self.admin[server] = {"ready": "0", "drain": "8", "maint": "1"}[words[4]]
            return "\n"
        if words[:3] == ["shutdown", "sessions", "server"]:
            self.sessions = [0]
            return "\n"
        return "Unknown command.\n\n"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def haproxy():
    directory = tempfile.mkdtemp(prefix="kh-")
    servers = []

    def start(**options):
        server = FakeHAProxy(os.path.join(directory, "admin%d.sock" % len(servers)), **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
    shutil.rmtree(directory, ignore_errors=True)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def balancer(server, **options):
    clock = Clock()
    lb = HAProxyLoadBalancer(RuntimeAPI(server.path, timeout=2), "app", clock=clock, sleep=clock.sleep, **options)
    lb.preflight(["web-1"])
    return lb


def test_drain_waits_for_sessions_then_puts_the_server_in_maintenance(haproxy):
    server = haproxy(sessions=[3, 2, 0])
    lb = balancer(server)
    assert lb.drain("web-1") == 0
    assert server.commands[1:] == ["show servers state app", "set server app/web-1 state drain", "show stat 3 4 1",
                                   "show stat 3 4 1", "show stat 3 4 1", "set server app/web-1 state maint"]
    assert server.admin["web-1"] == "1"
    lb.enable("web-1")
    lb.wait_serving("web-1")
    assert server.admin["web-1"] == "0"


def test_drain_timeout_then_shutdown_sessions(haproxy):
    server = haproxy(sessions=[5])
    lb = balancer(server, drain_timeout=0.2, shutdown_sessions=True)
    assert lb.drain("web-1") == 5
    assert server.commands[-2:] == ["shutdown sessions server app/web-1", "set server app/web-1 state maint"]


def test_drain_timeout_without_shutdown_moves_on(haproxy):
    server = haproxy(sessions=[5])
    lb = balancer(server, drain_timeout=0.2)
    assert lb.drain("web-1") == 5
    assert not any(command.startswith("shutdown") for command in server.commands)


def test_preflight_lists_the_servers_of_the_backend(haproxy):
    server = haproxy()
    lb = HAProxyLoadBalancer(RuntimeAPI(server.path), "app")
    with pytest.raises(LoadBalancerError, match="HAProxy backend 'app' has no server named api-1; its servers are "
                                                "web-1, web-2"):
        lb.preflight(["web-1", "api-1"])
    with pytest.raises(LoadBalancerError, match="HAProxy has no backend 'nope' \\(it answered: Can't find backend.\\)"):
        HAProxyLoadBalancer(RuntimeAPI(server.path), "nope").preflight(["web-1"])


def test_refused_command_is_an_error_with_haproxys_answer(haproxy):
    server = haproxy()
    lb = balancer(server)
    with pytest.raises(LoadBalancerError, match="refused 'set server app/web-9 state ready': No such server."):
        lb.enable("web-9")


def test_wait_serving_gives_up_with_the_states(haproxy):
    server = haproxy()
    lb = balancer(server, serving_timeout=0.1)
    server.admin["web-1"] = "1"
    with pytest.raises(LoadBalancerError, match="did not mark app/web-1 up within 0.1s \\(operational state 0, "
                                                "admin state 1\\)"):
        lb.wait_serving("web-1")


def test_a_missing_socket_says_what_to_check():
    api = RuntimeAPI("/nonexistent/admin.sock", timeout=1)
    with pytest.raises(LoadBalancerError, match="HAProxy runtime API at /nonexistent/admin.sock: 'show servers state "
                                                "app' failed: No such file or directory; check load_balancer.socket"):
        HAProxyLoadBalancer(api, "app").preflight(["web-1"])


def test_backend_is_required():
    with pytest.raises(LoadBalancerError, match="load_balancer.backend is required"):
        HAProxyLoadBalancer(RuntimeAPI("/x"), None)


@pytest.mark.parametrize("address, expected", [
    ("/run/haproxy/admin.sock", (socket.AF_UNIX, "/run/haproxy/admin.sock")),
    ("unix:/run/admin.sock", (socket.AF_UNIX, "/run/admin.sock")),
    ("127.0.0.1:9999", (socket.AF_INET, ("127.0.0.1", 9999))),
    ("tcp://lb1.internal:9999", (socket.AF_INET, ("lb1.internal", 9999))),
    ("[::1]:9999", (socket.AF_INET6, ("::1", 9999))),
])
def test_parse_address(address, expected):
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["", "lb1", "lb1:http"])
def test_parse_address_refuses(address):
    with pytest.raises(LoadBalancerError, match="must be a unix socket path or host:port"):
        parse_address(address)


def test_parsers():
    text = "1\n%s\n3 app 1 web-1 127.0.0.1 2 0 1 1 5 15 3 3 6 0 0 0 - 8080 - 0 0 - - 0\n\n" % STATE_HEADER
    assert parse_servers_state(text, "app")["web-1"]["srv_op_state"] == "2"
    assert parse_stat_sessions("%s\napp,web-1,0,0,4\n" % STAT_HEADER, "app", "web-1") == 4
    with pytest.raises(LoadBalancerError, match="no statistics for app/web-2"):
        parse_stat_sessions("%s\napp,web-1,0,0,4\n" % STAT_HEADER, "app", "web-2")


def test_a_connection_closed_without_an_answer_is_not_a_success(haproxy):
    server = haproxy()
    lb = balancer(server)
    server.answer = lambda command: ""
    with pytest.raises(LoadBalancerError, match="closed the connection without answering 'set server app/web-1 "
                                                "state ready'"):
        lb.enable("web-1")


@pytest.mark.parametrize("flags, state", [("0", "ready"), ("1", "maint"), ("8", "drain"), ("4", "maint"),
                                          ("9", "maint"), ("2", "ready"), ("32", "ready")])
def test_admin_state_names(flags, state):
    """The server's own flags (runtime API maint/drain, 'disabled' in the config); inherited or DNS ones are not."""
    assert admin_state_name(flags) == state


def test_admin_states_of_the_servers(haproxy):
    server = haproxy()
    server.admin["web-2"] = "8"
    lb = balancer(server)
    assert lb.admin_states(["web-1", "web-2", "web-9"]) == {"web-1": "ready", "web-2": "drain", "web-9": None}


@pytest.mark.parametrize("before, flags", [("maint", "1"), ("drain", "8"), ("ready", "0"), (None, "0")])
def test_a_server_goes_back_to_the_admin_state_it_had(haproxy, before, flags):
    server = haproxy()
    lb = balancer(server, serving_timeout=0.1)
    lb.drain("web-1")
    lb.enable("web-1", before)
    lb.wait_serving("web-1", before)  # returns at once for a server that does not go back in rotation
    assert server.admin["web-1"] == flags
    assert ("state %s" % (before or "ready")) in lb.hint("web-1", before)


def test_a_server_in_maintenance_is_not_let_back_in_to_drain(haproxy):
    server = haproxy()
    server.admin["web-1"] = "1"
    lb = balancer(server)
    assert lb.drain("web-1") == 0
    assert "set server app/web-1 state drain" not in server.commands
    assert server.admin["web-1"] == "1"


def test_an_admin_state_that_is_not_one_is_refused_before_reaching_haproxy(haproxy):
    server = haproxy()
    lb = balancer(server)
    with pytest.raises(LoadBalancerError, match="cannot put app/web-1 back in HAProxy admin state 'ready; x'"):
        lb.enable("web-1", "ready; x")
    assert not any(command.startswith("set server") for command in server.commands)
