"""The Stack: one state directory, the services in it, which of them to reuse, start or stop, and the facts
they report (<state>/stack.json, mode 0600: it holds passwords).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .constants import ALL_SERVICES, DEFAULT_STATE_DIR, SERVICE_NAMES
from .containers import Containers
from .haproxy import HAProxy
from .postgres import Postgres
from .process import StackError, write_private
from .redis import Redis
from .s3 import S3
from .smtp import Smtp


SERVICE_CLASSES = {cls.name: cls for cls in (Postgres, Redis, S3, Smtp, Containers, HAProxy)}


def parse_services(services) -> list:
    if services is None:
        return list(ALL_SERVICES)
    if isinstance(services, str):
        services = [s.strip() for s in services.split(",") if s.strip()]
    for name in services:
        if name not in ALL_SERVICES:
            raise StackError(f"unknown service {name!r} (choose from {', '.join(ALL_SERVICES)})")
    return list(dict.fromkeys(services))


def check_service_name(name: str) -> None:
    if name not in SERVICE_NAMES:
        raise StackError(f"unknown service {name!r} (choose from {', '.join(SERVICE_NAMES)})")


class Stack:
    def __init__(self, state_dir: str | os.PathLike | None = None):
        chosen = state_dir or os.environ.get("KEEL_STACK_DIR") or DEFAULT_STATE_DIR
        self.state_dir = Path(chosen).absolute()
        self.facts_path = self.state_dir / "stack.json"
        self._facts: dict = {}
        self._mutex = threading.Lock()

    # -- public API ---------------------------------------------------------

    def facts(self) -> dict:
        try:
            return json.loads(self.facts_path.read_text())
        except FileNotFoundError:
            return {}

    def start(self, services=None, fleet: int = 4, require=()) -> dict:
        wanted = parse_services(services)
        if fleet < 1:
            raise StackError(f"--fleet must be at least 1 (HAProxy needs a server), not {fleet}")
        required = set(parse_services(require)) if require else set()
        if os.environ.get("CI") == "true":
            required.add("containers")  # in CI a missing engine is a failure, not a skip
        with self._locked():
            self._start(wanted, fleet, required)
            return dict(self._facts)

    def stop(self) -> None:
        if not self.facts_path.exists():
            return  # nothing was ever started here
        with self._locked():
            names = [name for name in SERVICE_NAMES if isinstance(self._facts.get(name), dict)]
            self._stop(names)

    def stop_service(self, name: str) -> None:
        check_service_name(name)
        with self._locked():
            self._stop([name])

    def start_service(self, name: str) -> dict:
        check_service_name(name)
        with self._locked():
            fleet = len((self._facts.get("containers") or {}).get("instances") or []) or 4
            self._start(["containers"] if name == "haproxy" else [name], fleet, {"containers"})
            return dict(self._facts)

    def status(self) -> dict:
        """Service name -> (running?, one-line description) for what the facts record."""
        facts = self.facts()
        report = {}
        for name in SERVICE_NAMES:
            if isinstance(facts.get(name), dict):
                service = SERVICE_CLASSES[name](self)
                report[name] = (service.running(facts[name]), service.describe(facts[name]))
        return report

    # -- internals (callers hold the lock) -----------------------------------

    def record(self, name: str, facts: dict) -> None:
        """Store one service's facts and rewrite the file at once (a crash keeps the pids)."""
        with self._mutex:
            self._facts[name] = facts
            write_private(self.facts_path, json.dumps(self._facts, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def _locked(self):
        # One process at a time per state dir: pytest workers may share one.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o711)  # searchable (PostgreSQL's user), not listable
        with open(self.state_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._facts = self.facts()
                self._facts["state_dir"] = str(self.state_dir)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _start(self, wanted: list, fleet: int, required: set) -> None:
        before = self._pids()
        jobs = {name: self._job(name, fleet, name in required) for name in wanted}
        with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
            futures = {name: pool.submit(job) for name, job in jobs.items()}
        errors = {name: f.exception() for name, f in futures.items() if f.exception()}
        if errors:
            # Undo only what this call started; instances that were reused stay up.
            self._stop([name for name, pid in self._pids().items() if pid not in (None, before[name])])
            name, err = next(iter(errors.items()))
            if isinstance(err, StackError):
                raise StackError(f"{name} failed to start: {err}")
            raise err

    def _pids(self) -> dict:
        return {name: (self._facts.get(name) or {}).get("pid") for name in SERVICE_NAMES}

    def _job(self, name: str, fleet: int, required: bool):
        if name == "containers":
            return lambda: self._ensure_containers(fleet, required)
        service = SERVICE_CLASSES[name](self)
        return lambda: service.ensure(self._facts.get(name) or {})

    def _ensure_containers(self, fleet: int, required: bool) -> None:
        """The fleet, then HAProxy in front of it (it needs the fleet's ports)."""
        containers = Containers(self)
        try:
            containers.ensure(self._facts.get("containers") or {}, fleet=fleet, required=required)
        except StackError as err:
            if required:
                raise
            containers.stop(self._facts.get("containers") or {})
            self.record("containers", {"available": False, "reason": str(err).splitlines()[0]})
        facts = self._facts["containers"]
        proxy = HAProxy(self)
        if facts.get("available"):
            proxy.ensure(self._facts.get("haproxy") or {}, instances=facts["instances"])
        elif isinstance(self._facts.get("haproxy"), dict):
            proxy.stop(self._facts["haproxy"])  # nothing to balance
            with self._mutex:
                self._facts.pop("haproxy")
            self.record("containers", facts)

    def _stop(self, names: list) -> None:
        def stop_one(name):
            facts = self._facts.get(name)
            if not isinstance(facts, dict):
                return
            SERVICE_CLASSES[name](self).stop(facts)
            if "pid" in facts:
                self.record(name, dict(facts, pid=None))

        with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
            for future in [pool.submit(stop_one, name) for name in names]:
                future.result()
