"""Fixtures that give integration tests real services from the embedded stack (tools/stack.py).

- ``stack``: the facts dict of a session-wide stack (shape: see tools/stack.py / stack.json).
- ``postgres``, ``redis_server``, ``s3``, ``containers``: one service's facts; the test is skipped
  when that service is unavailable, and fails instead when CI=true (in CI a missing service is a bug).
- ``stack_control``: the ``Stack`` object itself, to stop or start one service of the session stack.
- ``private_redis``: a throwaway Redis of the test's own, which the test may stop freely.

Where the stack lives: ``KEEL_STACK_DIR`` if set (pytest workers then share it, and whatever was
already running there before the session is left running), else a fresh directory per pytest
process (so ``-n 2`` workers never share one), removed at the end.  The fresh directory is made
with ``tempfile.mkdtemp`` rather than under pytest's basetemp because PostgreSQL runs as an
unprivileged user when we are root and must be able to traverse the path (pytest keeps
``/tmp/pytest-of-<user>`` at mode 0700), and unix socket paths must stay short.
"""

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from pyrage import x25519

REPO_ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"


# tools/keel_stack is the stack (tools/stack.py its command line); named so that it cannot shadow the `stack`
# fixture. The test files import it as keel_stack too.
sys.path.insert(0, str(REPO_ROOT / "tools"))
import keel_stack as stack_tool  # noqa: E402  pylint: disable=wrong-import-position


def pytest_sessionstart(session):
    """In CI, first prove that every system program the suite runs resolves: a fresh machine that lacks one
    fails here, naming the package, instead of in whichever test happens to need it."""
    missing = stack_tool.missing_tools()
    if IN_CI and missing:
        pytest.exit("CI=true and these programs are missing (run tools/install-system-packages as root): "
                    + ", ".join(missing), returncode=3)


def unavailable(reason):
    """Skip a test whose service is missing; in CI, fail it instead."""
    if IN_CI:
        pytest.fail(f"service unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- #
# Sharing one state dir between pytest processes.
# --------------------------------------------------------------------------- #


class Lease:
    """Reference-count the pytest processes using one state dir.

    The first user notes which services were *not* running yet; the last user to leave stops
    exactly those, so a stack someone started by hand before the session keeps running.
    """

    def __init__(self, stack):
        self.stack = stack
        self.users = stack.state_dir / "pytest-users"
        self.owned = stack.state_dir / "pytest-owned.json"

    @contextlib.contextmanager
    def _locked(self):
        self.stack.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stack.state_dir / ".pytest-lease.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _live_users(self):
        self.users.mkdir(exist_ok=True)
        live = []
        for entry in self.users.iterdir():
            if Path(f"/proc/{entry.name}").exists():
                live.append(entry)
            else:
                entry.unlink(missing_ok=True)  # a crashed session must not keep the stack forever
        return live

    def join(self):
        """Register this process and start the stack; returns (facts, reasons for missing services)."""
        with self._locked():
            if not self._live_users():
                running = {name for name, (up, _text) in self.stack.status().items() if up}
                mine = [name for name in stack_tool.SERVICE_NAMES if name not in running]
                self.owned.write_text(json.dumps(mine))
            (self.users / str(os.getpid())).touch()
            return start_what_can_start(self.stack)

    def leave(self):
        """Unregister; the last one out stops what the session started."""
        with self._locked():
            (self.users / str(os.getpid())).unlink(missing_ok=True)
            if self._live_users() or not self.owned.exists():
                return
            mine = json.loads(self.owned.read_text())
            if set(mine) == set(stack_tool.SERVICE_NAMES):
                self.stack.stop()  # everything: stop it all at once, in parallel
            else:
                for name in mine:
                    self.stack.stop_service(name)
            self.owned.unlink()


def start_what_can_start(stack):
    """Start everything at once (fast); if that fails, one service at a time, keeping the reasons."""
    try:
        return stack.start(), {}
    except stack_tool.StackError:
        pass
    reasons = {}
    for name in stack_tool.ALL_SERVICES:
        try:
            stack.start(services=[name])
        except stack_tool.StackError as err:
            reasons[name] = str(err)
    return stack.facts(), reasons


# --------------------------------------------------------------------------- #
# Fixtures.
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="session")
def _stack_session():
    shared_dir = os.environ.get("KEEL_STACK_DIR")
    state_dir = Path(shared_dir) if shared_dir else Path(tempfile.mkdtemp(prefix="keel-stack-"))
    stack = stack_tool.Stack(state_dir)
    lease = Lease(stack)
    try:
        facts, reasons = lease.join()
        yield stack, facts, reasons
    finally:
        lease.leave()
        if not shared_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def stack_control(_stack_session):
    """The session's Stack object (stop_service/start_service/facts)."""
    return _stack_session[0]


@pytest.fixture(scope="session")
def stack(_stack_session):
    """Facts of the session stack, as in <state>/stack.json."""
    return _stack_session[1]


def _service(_stack_session, name):
    facts, reasons = _stack_session[1:]
    service = facts.get(name)
    if not isinstance(service, dict) or name in reasons:
        unavailable(f"{name}: {reasons.get(name, 'not started')}")
    if service.get("available") is False:
        unavailable(f"{name}: {service.get('reason')}")
    return service


@pytest.fixture(scope="session")
def postgres(_stack_session):
    return _service(_stack_session, "postgres")


@pytest.fixture(scope="session")
def redis_server(_stack_session):
    return _service(_stack_session, "redis")


@pytest.fixture(scope="session")
def s3(_stack_session):
    return _service(_stack_session, "s3")


@pytest.fixture(scope="session")
def smtp(_stack_session):
    return _service(_stack_session, "smtp")


@pytest.fixture(scope="session")
def containers(_stack_session):
    return _service(_stack_session, "containers")


class PrivateRedis:
    """A Redis of one test's own: ``facts`` (same keys as ``redis_server``), ``stop()``, ``start()``."""

    def __init__(self, state_dir):
        self.stack = stack_tool.Stack(state_dir)
        self.facts = {}

    def start(self):
        self.facts = self.stack.start_service("redis")["redis"]
        return self.facts

    def stop(self):
        self.stack.stop_service("redis")

    def __getitem__(self, key):
        return self.facts[key]


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "private-redis")
    try:
        server.start()
    except stack_tool.StackError as err:
        unavailable(f"redis: {err}")
    try:
        yield server
    finally:
        server.stack.stop()


PG15_BIN = "/usr/lib/postgresql/15/bin"


@pytest.fixture(scope="session")
def postgres15():
    """A second PostgreSQL server, Debian's 15, on a stack of its own (the suite installs it when root)."""
    if not os.path.exists(os.path.join(PG15_BIN, "postgres")):
        unavailable("PostgreSQL 15 is not installed (apt-get install postgresql-15)")
    state_dir = Path(tempfile.mkdtemp(prefix="keel-pg15-"))
    os.chmod(state_dir, 0o755)
    stack = stack_tool.Stack(state_dir)
    previous = os.environ.get("KEEL_PG_BIN_DIR")
    os.environ["KEEL_PG_BIN_DIR"] = PG15_BIN
    try:
        facts = stack.start(services=["postgres"])["postgres"]
    except stack_tool.StackError as err:
        unavailable("postgres 15: %s" % err)
    finally:
        if previous is None:
            os.environ.pop("KEEL_PG_BIN_DIR", None)
        else:
            os.environ["KEEL_PG_BIN_DIR"] = previous
    try:
        yield facts
    finally:
        stack.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def age_key(tmp_path):
    identity = x25519.Identity.generate()
    path = tmp_path / "backup.agekey"
    path.write_text("# test identity\n%s\n" % identity)
    return str(identity.to_public()), str(path)
