"""Small generic helpers of the embedded stack: free ports, private files, short commands and long-running
service processes (spawned, watched, stopped), the unprivileged user PostgreSQL runs as when we are root, and
the programs the stack needs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from .constants import LOG_TAIL_LINES, LOOPBACK, PG_RUN_USER, SUN_PATH_MAX, SYSTEM_TOOLS


# Popen objects of the services this process started.  Keeping them referenced
# stops Python from warning about (and reaping) children that must outlive the
# call that started them.
_CHILDREN: dict[int, subprocess.Popen] = {}


class StackError(RuntimeError):
    """A service could not be started or stopped; the first line is for humans."""

    def __init__(self, message: str, log: Path | None = None):
        super().__init__(message + log_tail(log) if log else message)


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
    """A program on PATH, or an absolute path (a program, or a library directory) that exists."""
    if os.path.isabs(name):
        return name if os.path.exists(name) else None
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
