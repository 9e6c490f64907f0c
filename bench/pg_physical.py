"""Benchmark: keel.ops physical backups (pg_physical_backup, keel-wal) against pgBackRest, side by side in one run.

For each PostgreSQL version asked for (18: the embedded one; 15: Debian's, the newest pgBackRest 2.45 supports),
it starts a server of its own, generates the pgbench-like database of random data (bench/pgdata.py), archives
WAL into both tools' repositories (archive_command runs keel-wal, then pgbackrest archive-push), and times:

  base backup   tar of the data directory; tar | zstd -1 -T0 (the physical limit)
                pgbackrest backup --type=full (zst level 1, process-max 2)
                keel pg_physical_backup (zstd level 1 on every core; the module, start-up included)
  restore       zstd -dc | tar -x (the limit)
                pgbackrest restore; and that plus recovery to consistency (the server started until promoted)
                keel pg_physical_backup state=restored target=immediate: checksums, unpack, recovery, swap
  WAL push      N segments, one process per segment as PostgreSQL runs archive_command:
                pgbackrest archive-push, sync and async (process-max 2); keel-wal push, sync and async (batch 8)
  replay        a restore to latest over R segments written after the backup: restore_command = cp from a
                local directory (the server's own speed), pgbackrest archive-get, keel-wal fetch

and the keel module's peak RSS. Figures go to stdout and bench/results/pg_physical.json.

    .venv/bin/python bench/pg_physical.py [--size-gb 1.5] [--repeat 2] [--segments 200] [--replay-segments 32]
                                          [--versions 18,15]

Run as root (PostgreSQL then runs as the stack's unprivileged user, and so do the tools that touch its files).
"""

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS = os.path.join(BENCH_DIR, "results", "pg_physical.json")
PG15_BIN = "/usr/lib/postgresql/15/bin"
SYSTEM_PYTHON = "/usr/bin/python3"
MB = 1024 ** 2
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, ".build"))

import keel_stack  # noqa: E402  tools/keel_stack
import pgdata  # noqa: E402
from harness import BenchError, measure_rounds, module, run  # noqa: E402
from ansible_collections.keel.ops.plugins.module_utils._backup.lifecycle import open_repository  # noqa: E402
from ansible_collections.keel.ops.plugins.module_utils._postgres.physical_restore import READY  # noqa: E402
from ansible_collections.keel.ops.plugins.module_utils._postgres.physical_restore import _unpack as unpack  # noqa: E402


class Site:
    """One server of one version, its work directory, and both tools' repositories."""

    def __init__(self, version, work, size_gb):
        self.version, self.work = version, work
        os.makedirs(work, exist_ok=True)
        os.chmod(work, 0o755)
        self.stack = keel_stack.Stack(__import__("pathlib").Path(work) / "stack")
        previous = os.environ.get("KEEL_PG_BIN_DIR")
        if version == 15:
            os.environ["KEEL_PG_BIN_DIR"] = PG15_BIN
        try:
            self.pg = self.stack.start_service("postgres")["postgres"]
        finally:
            os.environ.pop("KEEL_PG_BIN_DIR", None)
            if previous:
                os.environ["KEEL_PG_BIN_DIR"] = previous
        self.bin = self.pg["bin_dir"]
        self.data = os.path.join(work, "stack", "postgres", "data")
        self.user = pwd.getpwuid(os.stat(self.data).st_uid)
        self.info = pgdata.ensure_database(self.pg, "bench", size_gb)
        self.keel_repo = self.private("keel-repo")
        self.pgbr_repo = self.private("pgbackrest-repo")
        self.pgbackrest = shutil.which("pgbackrest") if version <= 15 else None

    def private(self, name, clean=False):
        path = os.path.join(self.work, name)
        if clean:
            shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def as_user(self):
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def conn(self):
        return dict(login_host=self.pg["host"], login_port=self.pg["port"], login_user=self.pg["user"],
                    login_password=self.pg["password"], bin_dir=self.bin)

    def keel_args(self, **extra):
        return dict(self.conn(), repository=self.keel_repo, source="bench", python=SYSTEM_PYTHON,
                    owner=self.user.pw_name, **extra)

    # -- archiving into both --------------------------------------------------------------------------- #

    def pgbackrest_conf(self, pg_path=None, extra="", repo=None, name="pgbackrest.conf"):
        """A configuration of its own per use: the server's archive_command keeps reading the main one."""
        path = os.path.join(self.work, name)
        with open(path, "w") as handle:
            handle.write("[global]\nrepo1-path=%s\ncompress-type=zst\ncompress-level=1\nprocess-max=2\n"
                         "log-level-console=warn\nlog-path=%s\nlock-path=%s\nspool-path=%s\n%s\n"
                         "[bench]\npg1-path=%s\npg1-port=%d\npg1-user=%s\npg1-socket-path=%s\n"
                         % (repo or self.pgbr_repo, self.private("pgbackrest-log"), self.private("pgbackrest-lock"),
                            self.private("pgbackrest-spool"), extra, pg_path or self.data, self.pg["port"],
                            self.pg["user"], os.path.join(self.work, "stack", "postgres", "run")))
        os.chmod(path, 0o644)
        return path

    def enable_archiving(self):
        result = module("pg_wal_archive", dict(self.conn(), repository=self.keel_repo, source="bench",
                                               command_directory=os.path.join(self.work, "keel-wal"),
                                               config_file=os.path.join(self.work, "etc", "wal.json"),
                                               python=SYSTEM_PYTHON, verify=False))
        command = result["archive_command"]
        if self.pgbackrest:
            command += " && pgbackrest --config=%s --stanza=bench archive-push %%p" % self.pgbackrest_conf()
        with contextlib.closing(pgdata.connect(self.pg, "postgres")) as conn, conn.cursor() as cursor:
            conn.autocommit = True
            cursor.execute("ALTER SYSTEM SET archive_command = %s", (command,))
            cursor.execute("ALTER SYSTEM SET archive_mode = on")
            cursor.execute("ALTER SYSTEM SET max_wal_size = '4GB'")
        self.stack.stop_service("postgres")
        if self.version == 15:
            os.environ["KEEL_PG_BIN_DIR"] = PG15_BIN
        try:
            self.pg = self.stack.start_service("postgres")["postgres"]
        finally:
            os.environ.pop("KEEL_PG_BIN_DIR", None)
        if self.pgbackrest:
            self.pgbr("stanza-create")

    def pgbr(self, *argv, conf=None):
        """pgbackrest as the server's user, as it runs archive-push: one owner for its whole repository."""
        argv = ["pgbackrest", "--config=%s" % (conf or self.pgbackrest_conf()), "--stanza=bench"] + list(argv)
        env = dict(os.environ, PGPASSWORD=self.pg["password"])  # the bench's throwaway server only
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, **self.as_user())
        if proc.returncode != 0:
            raise BenchError("pgbackrest %s failed: %s" % (argv[-1], (proc.stderr or proc.stdout)[-1500:]))
        return proc.stdout

    def sql(self, statement):
        return pgdata.execute(self.pg, "bench", statement)

    def switch_wal(self):
        pgdata.execute(self.pg, "postgres", "SELECT pg_logical_emit_message(false, 'bench', 'switch')")
        segment = pgdata.execute(self.pg, "postgres", "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            archived = pgdata.execute(self.pg, "postgres", "SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
            if archived and archived >= segment:
                return segment
            time.sleep(0.1)
        raise BenchError("segment %s was not archived" % segment)


def timed(action):
    started = time.monotonic()
    extra = action() or {}
    return dict(extra, seconds=round(time.monotonic() - started, 3))


# -- base backups and restores ------------------------------------------------------------------------- #


def backup_steps(site):
    tar_file = os.path.join(site.work, "limit.tar")
    zst_file = os.path.join(site.work, "limit.tar.zst")

    def tar():
        run(["tar", "-cf", tar_file, "-C", site.data, "."], what="tar")
        return {"bytes": os.path.getsize(tar_file)}

    def tar_zstd():
        tar_proc = subprocess.Popen(["tar", "-cf", "-", "-C", site.data, "."], stdout=subprocess.PIPE)
        with open(zst_file, "wb") as out:
            zstd = subprocess.Popen(["zstd", "-1", "-T0", "-q", "-c"], stdin=tar_proc.stdout, stdout=out)
            tar_proc.stdout.close()
            if zstd.wait() or tar_proc.wait():
                raise BenchError("tar | zstd failed")
        return {"bytes": os.path.getsize(zst_file)}

    def pgbackrest():
        site.pgbr("--type=full", "backup")
        return {}

    def keel():
        result = module("pg_physical_backup", site.keel_args())
        return {"bytes": result["size"], "raw_bytes": result["raw_size"], "backup_id": result["backup_id"]}

    steps = [("backup: tar", lambda: timed(tar)), ("backup: tar | zstd -1 -T0", lambda: timed(tar_zstd))]
    if site.pgbackrest:
        steps.append(("backup: pgbackrest full", lambda: timed(pgbackrest)))
    steps.append(("backup: keel pg_physical_backup", lambda: timed(keel)))
    return steps


class Recovery:
    """PostgreSQL started on a restored data directory until it is promoted, then stopped: what a restore is
    worth before a client can connect."""

    def __init__(self, site, data, restore_command, target="immediate"):
        self.site, self.data, self.restore_command, self.target = site, data, restore_command, target

    def __call__(self):
        log = os.path.join(self.data, "bench-recovery.log")
        sockets = self.data
        argv = [os.path.join(self.site.bin, "postgres"), "-D", self.data, "-c", "listen_addresses=", "-c",
                "unix_socket_directories=%s" % sockets, "-c", "archive_mode=off", "-c", "logging_collector=off",
                "-c", "restore_command=%s" % self.restore_command, "-c", "recovery_target_action=promote"]
        if self.target == "immediate":
            argv += ["-c", "recovery_target=immediate"]
        open(os.path.join(self.data, "recovery.signal"), "w").close()
        with open(log, "wb") as handle:
            proc = subprocess.Popen(argv, stdout=handle, stderr=handle, **self.site.as_user())
        try:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                with open(log, "rb") as handle:
                    text = handle.read().decode("utf-8", "replace")
                if READY in text.replace("read-only connections", ""):
                    return
                if proc.poll() is not None:
                    raise BenchError("recovery failed: %s" % text[-800:])
                time.sleep(0.05)
            raise BenchError("recovery did not finish")
        finally:
            if proc.poll() is None:
                proc.send_signal(2)
                proc.wait()


def restore_steps(site):
    zst_file = os.path.join(site.work, "limit.tar.zst")

    def fresh(name):
        path = os.path.join(site.work, name)
        shutil.rmtree(path, ignore_errors=True)
        os.mkdir(path, 0o700)
        os.chown(path, site.user.pw_uid, site.user.pw_gid)
        return path

    def untar_zstd():
        target = fresh("restore-limit")
        with open(zst_file, "rb") as source:
            zstd = subprocess.Popen(["zstd", "-dc", "-q"], stdin=source, stdout=subprocess.PIPE)
            tar = subprocess.Popen(["tar", "-xf", "-", "-C", target], stdin=zstd.stdout)
            zstd.stdout.close()
            if tar.wait() or zstd.wait():
                raise BenchError("zstd -dc | tar -x failed")
        return {}

    def pgbackrest(recover):
        target = fresh("restore-pgbackrest")
        conf = site.pgbackrest_conf(pg_path=target, name="pgbackrest-restore.conf")
        started = time.monotonic()
        site.pgbr("--type=immediate", "--target-action=promote", "restore", conf=conf)
        laid_out = time.monotonic() - started
        if recover:
            Recovery(site, target, "pgbackrest --config=%s --stanza=bench archive-get %%f \"%%p\"" % conf)()
        return {"laid_out_seconds": round(laid_out, 3)}

    def keel():
        target = os.path.join(site.work, "restore-keel")
        shutil.rmtree(target, ignore_errors=True)
        args = site.keel_args(state="restored", data_directory=target, target="immediate", archive=False)
        result = module("pg_physical_backup", args)
        return {"timings": result["timings"]}

    steps = [("restore: zstd -dc | tar -x", lambda: timed(untar_zstd))]
    if site.pgbackrest:
        steps += [("restore: pgbackrest restore", lambda: timed(lambda: pgbackrest(False))),
                  ("restore: pgbackrest + recovery", lambda: timed(lambda: pgbackrest(True)))]
    steps.append(("restore: keel (with recovery)", lambda: timed(keel)))
    return steps


# -- WAL push ------------------------------------------------------------------------------------------ #


def fake_cluster(site, count):
    """A data directory holding only what the push tools read (PG_VERSION, pg_control) and a pg_wal of `count`
    segments marked ready, each a real segment of this cluster copied out of the keel archive."""
    root = os.path.join(site.work, "push-cluster")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "global"))
    os.makedirs(os.path.join(root, "pg_wal", "archive_status"))
    shutil.copy(os.path.join(site.data, "PG_VERSION"), root)
    shutil.copy(os.path.join(site.data, "global", "pg_control"), os.path.join(root, "global"))
    real = sorted(name for name in os.listdir(os.path.join(site.data, "pg_wal")) if len(name) == 24)
    if not real:
        raise BenchError("no WAL segment in pg_wal to copy")
    names = []
    for index in range(count):
        name = "0000000A%016X" % (0x100 + index)  # a timeline of its own: no name collides with the real WAL
        name = name[:8] + "%08X%08X" % ((0x100 + index) // 256, (0x100 + index) % 256)
        shutil.copy(os.path.join(site.data, "pg_wal", real[index % len(real)]), os.path.join(root, "pg_wal", name))
        names.append(name)
    for folder, dirs, files in os.walk(root):
        for entry in dirs + files + [""]:
            os.lchown(os.path.join(folder, entry), site.user.pw_uid, site.user.pw_gid)
    return root, names


def push_steps(site, count):
    keel_config = os.path.join(site.work, "etc", "wal.json")
    launcher = os.path.join(site.work, "keel-wal", "keel-wal")

    def mark_ready(root, names):
        status = os.path.join(root, "pg_wal", "archive_status")
        for entry in os.listdir(status):
            os.unlink(os.path.join(status, entry))
        for name in names:
            open(os.path.join(status, name + ".ready"), "w").close()
        shutil.rmtree(os.path.join(root, "pg_wal", "keel-spool"), ignore_errors=True)

    def push_all(argv_of, root, names):
        for name in names:
            subprocess.run(argv_of(name), check=True, cwd=root, **site.as_user())
            status = os.path.join(root, "pg_wal", "archive_status", name)
            os.rename(status + ".ready", status + ".done")  # what PostgreSQL does after a success

    def keel(async_push):
        root, names = fake_cluster(site, count)
        repo = site.private("push-keel-repo", clean=True)
        config = json.load(open(keel_config))
        config.update(repository=repo, **({"async": True, "batch": 8, "workers": 2} if async_push else {}))
        path = os.path.join(site.work, "etc", "push.json")
        with open(path, "w") as handle:
            json.dump(config, handle)
        os.chmod(path, 0o644)
        mark_ready(root, names)
        started = time.monotonic()
        push_all(lambda name: [SYSTEM_PYTHON, launcher, "push", "--config", path, "pg_wal/" + name, name], root,
                 names)
        return {"seconds": round(time.monotonic() - started, 3), "segments_per_second":
                round(count / (time.monotonic() - started), 1)}

    def pgbackrest(async_push):
        root, names = fake_cluster(site, count)
        repo = site.private("push-pgbackrest-repo", clean=True)
        site.private("pgbackrest-spool", clean=True)  # its async status files would acknowledge the next run's pushes
        conf = site.pgbackrest_conf(pg_path=root, extra="archive-async=y\n" if async_push else "", repo=repo,
                                    name="pgbackrest-push.conf")
        site.pgbr("--no-online", "stanza-create", conf=conf)
        mark_ready(root, names)
        started = time.monotonic()
        push_all(lambda name: ["pgbackrest", "--config=%s" % conf, "--stanza=bench", "archive-push",
                               os.path.join(root, "pg_wal", name)], root, names)
        return {"seconds": round(time.monotonic() - started, 3),
                "segments_per_second": round(count / (time.monotonic() - started), 1)}

    steps = []
    if site.pgbackrest:
        steps += [("WAL push: pgbackrest archive-push", lambda: pgbackrest(False)),
                  ("WAL push: pgbackrest async", lambda: pgbackrest(True))]
    steps += [("WAL push: keel-wal push", lambda: keel(False)), ("WAL push: keel-wal async", lambda: keel(True))]
    return steps


# -- replay -------------------------------------------------------------------------------------------- #


def replay_steps(site, segments):
    """A base backup, then `segments` of WAL; each step restores to latest and times the recovery alone."""
    backup = module("pg_physical_backup", site.keel_args())
    first = None
    while True:
        site.sql("INSERT INTO history SELECT hid + (SELECT max(hid) FROM history), tid, bid, aid, delta, mtime, "
                 "filler FROM history LIMIT 200000")
        segment = site.switch_wal()
        first = first or segment
        if int(segment[8:], 16) - int(first[8:], 16) >= segments:
            break
    raw = site.private("replay-raw", clean=True)
    launcher = os.path.join(site.work, "keel-wal", "keel-wal")
    config = os.path.join(site.work, "etc", "wal.json")
    # The raw segments, for the server's own speed (untimed): keel-wal fetch writes them as PostgreSQL wrote them.
    archive = os.path.join(site.keel_repo, "pgwal", "bench")
    for folder, _dirs, files in os.walk(archive):
        for entry in files:
            name = entry.split("-", 1)[0]
            if len(name) == 24:
                subprocess.run([SYSTEM_PYTHON, launcher, "fetch", "--config", config, name,
                                os.path.join(raw, name)], check=True, **site.as_user())

    repo = open_repository({"repository": site.keel_repo}, "pgbase", "bench")
    chosen = repo.load(backup["backup_id"])

    def laid_out():
        """The base backup unpacked, not yet recovered (untimed)."""
        target = os.path.join(site.work, "replay-target")
        shutil.rmtree(target, ignore_errors=True)
        os.mkdir(target, 0o700)
        os.chown(target, site.user.pw_uid, site.user.pw_gid)
        unpack(repo, chosen, None, target, (site.user.pw_uid, site.user.pw_gid), {})
        return target

    def with_command(command_of):
        def measure():
            target = laid_out()
            started = time.monotonic()
            Recovery(site, target, command_of(target), target="latest")()
            return {"seconds": round(time.monotonic() - started, 3), "segments": segments}
        return measure

    steps = [("replay: cp (the server's own speed)", with_command(lambda target: "cp %s/%%f %%p" % raw))]
    if site.pgbackrest:
        steps.append(("replay: pgbackrest archive-get", with_command(
            # pgbackrest reads a relative %p against pg1-path: point it at the restored directory
            lambda target: "pgbackrest --config=%s --stanza=bench archive-get %%f \"%%p\""
            % site.pgbackrest_conf(pg_path=target, name="pgbackrest-replay.conf"))))
    steps.append(("replay: keel-wal fetch", with_command(
        lambda target: "%s %s fetch --config %s %%f %%p" % (SYSTEM_PYTHON, launcher, config))))
    return steps


def machine(site):
    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "load_average_at_start": os.getloadavg(),
            "pgbackrest": run(["pgbackrest", "version"]).stdout.strip() if shutil.which("pgbackrest") else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--size-gb", type=float, default=1.5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--replay-segments", type=int, default=32)
    parser.add_argument("--versions", default="18,15")
    parser.add_argument("--work", help="work directory (default: a fresh one under /tmp, removed at the end)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: PostgreSQL and the tools then run as the stack's unprivileged user")
    results = {}
    for version in [int(v) for v in args.versions.split(",")]:
        work = args.work or tempfile.mkdtemp(prefix="keel-bench-physical-")
        work = os.path.join(work, "pg%d" % version)
        site = Site(version, work, args.size_gb)
        try:
            site.enable_archiving()
            runs = {}
            print("PostgreSQL %s, %d MB database" % (site.pg["version"], site.info["size_bytes"] // MB))
            measure_rounds(backup_steps(site), args.repeat, runs)
            measure_rounds(restore_steps(site), args.repeat, runs)
            measure_rounds(push_steps(site, args.segments), args.repeat, runs)
            measure_rounds(replay_steps(site, args.replay_segments), args.repeat, runs)
            results[version] = {"machine": machine(site), "database_mb": site.info["size_bytes"] // MB, "runs": runs}
        finally:
            site.stack.stop()
            if not args.work:
                shutil.rmtree(os.path.dirname(work), ignore_errors=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    for version, result in results.items():
        print("\nPostgreSQL %s (%d MB)" % (version, result["database_mb"]))
        for key, value in result["runs"].items():
            extra = {k: v for k, v in value.items() if k != "seconds"}
            print("  %-40s %8s s  %s" % (key, value.get("seconds", "FAILED"), json.dumps(extra) if extra else ""))


if __name__ == "__main__":
    main()
