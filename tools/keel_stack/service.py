"""A service of the embedded stack: it knows how to start, check and stop itself; the Stack decides which to
reuse and records what they report.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from .constants import LOOPBACK
from .process import pid_alive, port_answers, spawn, stop_pid, wait_until

if TYPE_CHECKING:  # only the annotations name it; the Stack imports the services
    from .stack import Stack


class Service:
    name = ""
    expect = ""  # a word of the process command line, checked before signalling a pid
    stop_signal = signal.SIGTERM

    def __init__(self, stack: "Stack"):
        self.stack = stack
        self.dir = stack.state_dir / self.name
        self.log = stack.state_dir / "logs" / f"{self.name}.log"

    def port(self, facts: dict) -> int | None:
        return facts.get("port")

    def running(self, facts: dict) -> bool:
        return pid_alive(facts.get("pid"), self.expect) and port_answers(self.port(facts))

    def ensure(self, old: dict, **ctx) -> None:
        """Reuse a healthy instance, otherwise (re)start it."""
        if self.running(old) and self.reusable(old, **ctx):
            return
        self.stop(old)  # a half-dead instance must not keep the port or the data dir
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.stack.record(self.name, self.start(old, **ctx))

    def reusable(self, old: dict, **ctx) -> bool:
        # Facts are recorded as soon as a process is spawned; a start that died
        # half-way left "version": None behind, and such an instance is not trusted.
        return old.get("version", "") is not None

    def start(self, old: dict, **ctx) -> dict:
        raise NotImplementedError

    def stop(self, facts: dict) -> None:
        stop_pid(facts.get("pid"), self.expect, self.stop_signal)

    def launch(self, facts: dict, argv: list[str], ready, *, timeout=30, **popen) -> dict:
        """Spawn, record the pid at once (so `stop` can clean up a failed start), wait until ready."""
        facts["pid"] = spawn(argv, self.log, **popen)
        self.stack.record(self.name, facts)
        wait_until(ready, what=self.name, pid=facts["pid"], expect=self.expect, log=self.log, timeout=timeout)
        return facts

    def describe(self, facts: dict) -> str:
        return f"{LOOPBACK}:{self.port(facts)}"
