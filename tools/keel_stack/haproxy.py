"""HAProxy in front of the app fleet, with its runtime API on a unix socket, for the rolling update.
"""

from __future__ import annotations


from .constants import LOOPBACK
from .process import StackError, check_socket_path, find_tool, http_get, pick_port
from .service import Service


class HAProxy(Service):
    name = "haproxy"
    expect = "haproxy"

    def port(self, facts: dict) -> int | None:
        url = facts.get("frontend_url")
        return int(url.rstrip("/").rsplit(":", 1)[1]) if url else None

    def reusable(self, old: dict, *, instances: list, **ctx) -> bool:
        # A changed fleet needs a new configuration, hence a restart.
        path = self.dir / "haproxy.cfg"
        return path.exists() and path.read_text() == self._config(self.port(old), instances)

    def start(self, old: dict, *, instances: list, **ctx) -> dict:
        binary = find_tool("haproxy")
        if not binary:
            raise StackError("haproxy is not installed (apt-get install haproxy)")
        port = pick_port(self.port(old))
        config = self.dir / "haproxy.cfg"
        config.write_text(self._config(port, instances))
        check_socket_path(self.dir / "admin.sock").unlink(missing_ok=True)
        facts = {"frontend_url": f"http://{LOOPBACK}:{port}/", "stats_socket": str(self.dir / "admin.sock"),
                 "backend": "app", "servers": [i["name"] for i in instances]}
        # -db: stay in the foreground, so the pid we record is haproxy itself.
        return self.launch(facts, [binary, "-db", "-f", str(config)],
                           lambda: http_get(facts["frontend_url"])[0] == 200)

    def _config(self, port: int | None, instances: list) -> str:
        servers = "".join(f"    server {i['name']} {LOOPBACK}:{i['port']} check\n" for i in instances)
        return f"""\
# written by tools/stack.py
global
    log stderr format raw local0 notice
    stats socket {self.dir}/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 30s

defaults
    mode http
    log global
    option log-health-checks
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 1s

frontend web
    bind {LOOPBACK}:{port}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms rise 2 fall 2
{servers}"""

    def describe(self, facts: dict) -> str:
        return f"{facts['frontend_url']} -> {', '.join(facts['servers'])}"
