"""Headless Chromium for the tests and tools that look at a page keel.ops renders (the DR dashboard): one argv
for every run (headless, no GPU, a private profile, no network, no sandbox when root), the DOM after the page
loaded (--dump-dom), a screenshot, and what the page said on its console, read over the DevTools protocol on a
pipe with the standard library alone.

Why the DevTools protocol rather than --enable-logging=stderr: Chromium logs every console message at INFO as
`CONSOLE:1] "Uncaught Error: x"`, so an error cannot be told from a console.log, and the format is not an
interface. Over --remote-debugging-pipe the browser sends each exception (Runtime.exceptionThrown), console call
(Runtime.consoleAPICalled, with its level) and browser-side message such as a refused resource or a
Content-Security-Policy violation (Log.entryAdded) as JSON, in order, before the page's load event.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

PROGRAM = "chromium"
DEBIAN_PATH = "/usr/bin/chromium"  # the launcher Debian's package `chromium` installs
TIMEOUT = 180  # seconds per browser run: starting one on a busy 2-core machine can take tens of seconds
OFFLINE = [  # nothing leaves the machine: no updates, no sync, no lookups of any host name
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps", "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


class ChromiumError(Exception):
    """The browser did not do what was asked, with the end of its log."""


def find_chromium() -> str | None:
    """The launcher on PATH, or where Debian puts it (tools/keel_stack SYSTEM_TOOLS) when PATH is short."""
    return shutil.which(PROGRAM) or shutil.which(DEBIAN_PATH)


def argv(profile: Path) -> list[str]:
    """The command line every run starts with; `profile` is a private --user-data-dir (created if missing)."""
    program = find_chromium()
    if program is None:
        raise ChromiumError(f"{PROGRAM} is not installed (apt-get install chromium)")
    Path(profile).mkdir(parents=True, exist_ok=True)
    args = [program, "--headless", "--disable-gpu", f"--user-data-dir={profile}"] + OFFLINE
    if os.geteuid() == 0:  # Chromium refuses to run as root with its sandbox on
        args.append("--no-sandbox")
    return args


def environment(profile: Path) -> dict:
    """The environment of a run: HOME and the XDG directories inside the profile, because Chromium keeps its
    crash reports and dconf its cache under $HOME whatever --user-data-dir says, and nothing may write there."""
    env = dict(os.environ)
    for name, folder in (("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        env[name] = str(Path(profile) / folder)
        Path(env[name]).mkdir(parents=True, exist_ok=True)
    return env


def _run(args: list[str], profile: Path, timeout: float) -> str:
    """Run the browser to its end and return its stdout; on a timeout, its whole process group is killed."""
    with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=environment(profile), start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the renderer and zygote too, not only the browser
            out, err = proc.communicate()
            raise ChromiumError(f"{args[0]} did not finish within {timeout} s:\n{err[-3000:]}") from None
    if proc.returncode != 0:
        raise ChromiumError(f"{args[0]} exited with {proc.returncode}:\n{err[-3000:]}")
    return out


def dump_dom(url: str, profile: Path, timeout: float = TIMEOUT) -> str:
    """The page's DOM, serialized by the browser once it has loaded."""
    return _run(argv(profile) + ["--dump-dom", url], profile, timeout)


def screenshot(url: str, png: Path, profile: Path, size: tuple[int, int] = (1280, 1100),
               timeout: float = TIMEOUT) -> Path:
    """A PNG of the page as a window of `size` shows it."""
    Path(png).unlink(missing_ok=True)
    _run(argv(profile) + ["--hide-scrollbars", f"--window-size={size[0]},{size[1]}", f"--screenshot={png}", url],
         profile, timeout)
    if not Path(png).is_file():
        raise ChromiumError(f"{PROGRAM} exited without writing {png}")
    return Path(png)


def _high(fd: int) -> int:
    """The same file under a number of 10 or more, so that moving pipe ends to 3 and 4 never overwrites one."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class _DevTools:
    """The DevTools protocol over --remote-debugging-pipe: the browser reads commands on its fd 3 and writes
    answers and events on its fd 4, each a JSON text ended by a NUL byte."""

    def __init__(self, args: list[str], env: dict, log: Path, deadline: float):
        commands_read, self.commands = (_high(fd) for fd in os.pipe())
        self.answers, answers_write = (_high(fd) for fd in os.pipe())
        log_fd = _high(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        # posix_spawn, not subprocess: only its file actions can place the pipe ends at exactly fd 3 and 4.
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, log_fd, 2),
                   (os.POSIX_SPAWN_DUP2, commands_read, 3), (os.POSIX_SPAWN_DUP2, answers_write, 4)]
        try:
            self.pid = os.posix_spawn(args[0], args + ["--remote-debugging-pipe", "about:blank"], env,
                                      file_actions=actions, setpgroup=0)
        finally:
            for fd in (commands_read, answers_write, log_fd):
                os.close(fd)
        self.log, self.deadline = log, deadline
        self.buffer, self.events, self.last_id = b"", [], 0

    def fail(self, what: str):
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        raise ChromiumError(f"{what}\n--- end of {self.log} ---\n{tail}")

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.commands, data):]
        return self.last_id

    def receive(self) -> dict:
        """The next message; events are kept in self.events as they pass."""
        while b"\0" not in self.buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.fail("the browser did not answer in time")
            if select.select([self.answers], [], [], remaining)[0]:
                chunk = os.read(self.answers, 1 << 16)
                if not chunk:
                    self.fail("the browser closed its DevTools pipe")
                self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(text)
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        wanted = self.send(method, params, session)
        while True:
            message = self.receive()
            if message.get("id") == wanted:
                if "error" in message:
                    self.fail(f"{method} failed: {message['error']}")
                return message.get("result", {})

    def wait_for(self, method: str, session: str):
        while not any(e["method"] == method and e.get("sessionId") == session for e in self.events):
            self.receive()

    def close(self):
        """Ask the browser to quit; kill its process group if it has not within a minute."""
        try:
            self.send("Browser.close")
        except OSError:
            pass  # it is gone already
        deadline = time.monotonic() + 60
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.killpg(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.1)
        os.close(self.commands)
        os.close(self.answers)


def _message(event: dict) -> dict | None:
    """{origin, level, text} of an event that is something the page said, or None."""
    params = event.get("params", {})
    if event["method"] == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return {"origin": "exception", "level": "error",
                "text": details.get("exception", {}).get("description") or details.get("text", "")}
    if event["method"] == "Runtime.consoleAPICalled":
        level = {"assert": "error", "warning": "warning"}.get(params.get("type"), params.get("type"))
        text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
        return {"origin": "console", "level": level, "text": text}
    if event["method"] == "Log.entryAdded":
        entry = params.get("entry", {})
        return {"origin": entry.get("source", "log"), "level": entry.get("level"), "text": entry.get("text", "")}
    return None


def console_messages(url: str, profile: Path, timeout: float = TIMEOUT) -> list[dict]:
    """Everything the page said while it loaded: exceptions, console calls and the browser's own messages about
    it, each {origin, level, text}; level "error" for exceptions, console.error/assert and refused resources."""
    tools = _DevTools(argv(profile), environment(profile), Path(profile) / "chromium.log", time.monotonic() + timeout)
    try:
        target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable", session=session)
        navigated = tools.call("Page.navigate", {"url": url}, session)
        if navigated.get("errorText"):
            tools.fail(f"cannot open {url}: {navigated['errorText']}")
        tools.wait_for("Page.loadEventFired", session)
        # One more round trip: whatever the page logged while loading has arrived before its answer does.
        tools.call("Runtime.evaluate", {"expression": "document.readyState"}, session)
    finally:
        tools.close()
    said = [_message(event) for event in tools.events if event.get("sessionId") == session]
    return [message for message in said if message is not None]


def console_errors(url: str, profile: Path, timeout: float = TIMEOUT) -> list[dict]:
    return [message for message in console_messages(url, profile, timeout) if message["level"] == "error"]
