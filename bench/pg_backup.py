"""Benchmark: keel.ops.pg_backup against pg_dump -Fc and a pg_dump | zstd pipe, side by side in one run.

Starts its own embedded stack (PostgreSQL and the moto S3 endpoint, tools/stack.py) in a fresh state dir,
generates a pgbench-like database of random data (bench/pgdata.py), then times:

  backup    pg_dump -Fc (reference: what community.postgresql.postgresql_db runs)
            pg_dump -Fc -Z0 | zstd -1 -T0 (reference: the raw cost of dumping and compressing)
            pg_dump -Fd -j2 (reference, no target)
            pg_dump -Fc -Z0 | zstd -1 -T0 | age -r KEY | boto3 upload_fileobj from stdin to the S3 endpoint
              (reference for keel's age + S3 backup: the same work in separate processes)
            keel, default settings, local repository
            keel, age encryption, uploaded to the S3 endpoint
  restore   zstd -dc | pg_restore into a fresh database (reference)
            pg_restore -j2 from the directory dump (reference, no target)
            keel, from the local repository into a fresh database
            keel, replace=true over a live copy of the database (restored beside it, then swapped in)
            keel, from the encrypted S3 backup (no target)

and the peak RSS of each keel module process on a 100 MB and on the full-size database.  Figures go to
stdout and to bench/results/pg_backup.json.  MB = 2^20 bytes; MB/s = pg_database_size of the source / seconds.

    .venv/bin/python bench/pg_backup.py [--size-gb 1.5] [--repeat 2] [--only-reference] [--state-dir DIR]
                                        [--only ref_dump_zstd,ref_dump_age_s3,keel_backup,keel_backup_enc_s3]

Each timed step runs --repeat times (in rounds over all tools) and its fastest run counts: on a shared
2-core machine two runs of the same command differ by up to 1.5x.  One untimed warm-up backup and restore
go first.

--state-dir keeps the stack's data there (stopped, not removed), so the next run with the same dir reuses
the generated databases instead of generating them again.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
MODULE = os.path.join(ROOT, "plugins", "modules", "pg_backup.py")
RESULTS = os.path.join(BENCH_DIR, "results", "pg_backup.json")
MB = 1024 ** 2
SMALL_GB = 100 / 1024  # the "100 MB" database of the memory comparison
sys.path.insert(0, BENCH_DIR)

import pgdata  # noqa: E402  (bench/ is not a package)
from harness import LAUNCHER, BenchError, measure_rounds  # bench/, beside this script


# --------------------------------------------------------------------------- #
# Running children: argv lists, pipes built from Popen objects, peak RSS from wait4.
# --------------------------------------------------------------------------- #


def run_pipeline(stages, env, stdin=None, stdout=None):
    """Run argv lists connected stdout -> stdin, like a shell pipe but without a shell.

    Returns (seconds, [peak RSS in MB of each stage]).  Each stage's peak RSS is the kernel's accounting of
    that child (wait4 in LAUNCHER); it also covers the grandchildren that child reaped itself (e.g. the
    pg_dump under a keel module), so it is an upper bound of the stage's own process.
    """
    procs, errors, rss_files = [], [], []
    upstream = stdin if stdin is not None else subprocess.DEVNULL
    started = time.monotonic()
    for index, argv in enumerate(stages):
        last = index == len(stages) - 1
        errors.append(tempfile.TemporaryFile())  # a file, not a pipe: a chatty child cannot block on it
        rss_files.append(tempfile.NamedTemporaryFile(prefix="rss-"))
        wrapped = [sys.executable, "-I", "-S", "-c", LAUNCHER, rss_files[-1].name] + argv
        procs.append(subprocess.Popen(wrapped, stdin=upstream, stdout=stdout if last else subprocess.PIPE,
                                      stderr=errors[-1], env=env))
        if index:
            upstream.close()  # only the next child holds the read end now, so SIGPIPE reaches the writer
        upstream = procs[-1].stdout
    rss, failed = [], []
    for argv, proc, err, rss_file in zip(stages, procs, errors, rss_files):
        proc.wait()
        text = rss_file.read().decode()
        rss.append(int(text) / 1024 if text else None)  # KiB on Linux
        if proc.returncode != 0:
            err.seek(0)
            failed.append(f"{os.path.basename(argv[0])} exited {proc.returncode}: "
                          f"{err.read().decode(errors='replace').strip()[-2000:]}")
        err.close()
        rss_file.close()
    seconds = time.monotonic() - started
    if failed:
        raise BenchError("\n".join(failed))
    return seconds, rss


def pg_env(pg, passfile):
    """Environment for the PostgreSQL client tools: connection in PG* variables, password in a 0600 file."""
    return dict(os.environ, PGHOST=pg["host"], PGPORT=str(pg["port"]), PGUSER=pg["user"], PGPASSFILE=passfile,
                PGSSLMODE="disable", PGGSSENCMODE="disable")


def write_passfile(path, pg):
    def escape(value):
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(":".join(escape(v) for v in (pg["host"], pg["port"], "*", pg["user"], pg["password"])) + "\n")


def tool_version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unavailable"


def path_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(top, name)) for top, _dirs, names in os.walk(path) for name in names)


# --------------------------------------------------------------------------- #
# The reference tools.
# --------------------------------------------------------------------------- #


class Reference:
    def __init__(self, pg, env, workdir, dbname):
        self.pg, self.env, self.workdir, self.dbname = pg, env, workdir, dbname
        self.bin = lambda name: os.path.join(pg["bin_dir"], name)

    def dump_custom(self):
        out = os.path.join(self.workdir, "ref.dump")
        argv = [self.bin("pg_dump"), "-Fc", "-f", out, self.dbname]
        seconds, rss = run_pipeline([argv], self.env)
        return {"seconds": seconds, "output_bytes": path_size(out), "peak_rss_mb": rss, "commands": [argv]}

    def dump_zstd(self):
        out = os.path.join(self.workdir, "ref.dump.zst")
        stages = [[self.bin("pg_dump"), "-Fc", "-Z0", self.dbname], ["zstd", "-1", "-T0", "-q", "-c"]]
        with open(out, "wb") as sink:
            seconds, rss = run_pipeline(stages, self.env, stdout=sink)
        return {"seconds": seconds, "output_bytes": path_size(out), "peak_rss_mb": rss, "commands": stages}

    def dump_directory(self):
        out = os.path.join(self.workdir, "ref.dir")
        shutil.rmtree(out, ignore_errors=True)
        argv = [self.bin("pg_dump"), "-Fd", "-j2", "-f", out, self.dbname]
        seconds, rss = run_pipeline([argv], self.env)
        return {"seconds": seconds, "output_bytes": path_size(out), "peak_rss_mb": rss, "commands": [argv]}

    def dump_age_s3(self, recipient, s3):
        """The zstd pipe through the age CLI, streamed into the same S3 endpoint keel writes to by boto3's
        upload_fileobj from stdin (its default transfer settings). Credentials go in the environment, never argv."""
        key = "bench-reference/ref.dump.zst.age"
        stages = [[self.bin("pg_dump"), "-Fc", "-Z0", self.dbname], ["zstd", "-1", "-T0", "-q", "-c"],
                  ["age", "-r", recipient], [sys.executable, "-c", S3_UPLOADER, s3["bucket"], key]]
        env = dict(self.env, AWS_ACCESS_KEY_ID=s3["access_key"], AWS_SECRET_ACCESS_KEY=s3["secret_key"],
                   AWS_DEFAULT_REGION=s3["region"], KEEL_BENCH_S3_ENDPOINT=s3["endpoint_url"])
        seconds, rss = run_pipeline(stages, env)
        output_bytes = s3_client(s3).head_object(Bucket=s3["bucket"], Key=key)["ContentLength"]
        s3_client(s3).delete_object(Bucket=s3["bucket"], Key=key)  # moto keeps it in memory
        return {"seconds": seconds, "output_bytes": output_bytes, "peak_rss_mb": rss, "commands": stages}

    def restore_zstd(self, target):
        # Creating the empty target counts: keel's restore has to create it too.
        stages = [["zstd", "-dc", "-q", os.path.join(self.workdir, "ref.dump.zst")],
                  [self.bin("pg_restore"), "-d", target]]
        started = time.monotonic()
        pgdata.execute(self.pg, "postgres", f'CREATE DATABASE "{target}"')
        _seconds, rss = run_pipeline(stages, self.env)
        return {"seconds": time.monotonic() - started, "peak_rss_mb": rss, "commands": stages}

    def restore_directory(self, target):
        argv = [self.bin("pg_restore"), "-j2", "-d", target, os.path.join(self.workdir, "ref.dir")]
        started = time.monotonic()
        pgdata.execute(self.pg, "postgres", f'CREATE DATABASE "{target}"')
        _seconds, rss = run_pipeline([argv], self.env)
        return {"seconds": time.monotonic() - started, "peak_rss_mb": rss, "commands": [argv]}


# --------------------------------------------------------------------------- #
# keel.ops.pg_backup, run as Ansible runs a module: the file executed with a JSON args file.
# --------------------------------------------------------------------------- #


def ensure_build_link():
    """.build/ansible_collections/keel/ops -> the checkout, so the module's imports resolve (as in tests/)."""
    link = os.path.join(ROOT, ".build", "ansible_collections", "keel", "ops")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(ROOT, os.path.dirname(link)), link)


def new_age_identity(path):
    """A throwaway age key pair for this run: the identity file (0600) and the recipient."""
    try:
        from pyrage import x25519

        identity = x25519.Identity.generate()
        secret, recipient = str(identity), str(identity.to_public())
    except ImportError:  # the age CLI instead (Debian package "age")
        out = subprocess.run(["age-keygen"], capture_output=True, text=True, check=True).stdout
        secret = next(line for line in out.splitlines() if line.startswith("AGE-SECRET-KEY-"))
        recipient = next(line.split(": ", 1)[1] for line in out.splitlines() if "public key:" in line)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return recipient


class Keel:
    def __init__(self, module, pg, s3, workdir):
        self.module, self.workdir = module, workdir
        self.local_repo = os.path.join(workdir, "keel-repo")
        self.s3_repo = f"s3://{s3['bucket']}/bench"
        self.identity_file = os.path.join(workdir, "age-identity.txt")
        self.recipient = new_age_identity(self.identity_file)
        self.login = {"login_host": pg["host"], "login_port": pg["port"], "login_user": pg["user"],
                      "login_password": pg["password"], "bin_dir": pg["bin_dir"]}
        self.s3 = {"s3_endpoint_url": s3["endpoint_url"], "s3_region": s3["region"],
                   "s3_access_key": s3["access_key"], "s3_secret_key": s3["secret_key"]}

    def run(self, args):
        """One module invocation as its own child process: (result, seconds, peak RSS in MB)."""
        args_file = os.path.join(self.workdir, "module-args.json")
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds passwords
        with os.fdopen(fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build"))
        with tempfile.TemporaryFile() as out:
            try:
                seconds, rss = run_pipeline([[sys.executable, self.module, args_file]], env, stdout=out)
                failure = None
            except BenchError as err:
                seconds, rss, failure = None, [None], str(err)
            out.seek(0)
            text = out.read().decode(errors="replace")
        os.unlink(args_file)
        try:
            result = json.loads(text[text.index("{"):]) if "{" in text else {}
        except ValueError:
            result = {}
        if failure or result.get("failed"):
            raise BenchError(f"keel pg_backup failed: {result.get('msg') or failure or text[-2000:]}")
        return result, seconds, rss[0]

    def backup(self, dbname, encrypted):
        args = dict(self.login, state="present", database=dbname, source=dbname)
        if encrypted:
            args.update(self.s3, repository=self.s3_repo, encryption_recipients=[self.recipient])
        else:
            args.update(repository=self.local_repo)
        result, seconds, rss = self.run(args)
        return {"seconds": seconds, "output_bytes": result.get("size"), "peak_rss_mb": [rss],
                "backup_id": result.get("backup_id"), "module_duration": result.get("duration")}

    def restore(self, dbname, backup_id, target, encrypted, replace=False):
        args = dict(self.login, state="restored", database=dbname, source=dbname, backup_id=backup_id or "latest",
                    target_database=target, replace=replace)
        if encrypted:
            args.update(self.s3, repository=self.s3_repo, decryption_identity_file=self.identity_file)
        else:
            args.update(repository=self.local_repo)
        result, seconds, rss = self.run(args)
        return {"seconds": seconds, "peak_rss_mb": [rss], "module_duration": result.get("duration")}


# --------------------------------------------------------------------------- #
# The run.
# --------------------------------------------------------------------------- #


def load_stack_module():
    """tools/keel_stack, the embedded stack the tests use too."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import keel_stack  # pylint: disable=import-outside-toplevel
    return keel_stack


def machine_info(pg):
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        ram_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(ram_kb / 1024 ** 2, 1),
            "kernel": platform.release(), "python": platform.python_version(), "postgresql": pg["version"],
            "pg_dump": tool_version([os.path.join(pg["bin_dir"], "pg_dump"), "--version"]),
            "zstd": zstd_version(), "load_average_at_start": os.getloadavg()}


def zstd_version():
    words = tool_version(["zstd", "--version"]).split()  # "*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***"
    return next((word.strip(",") for word in words if word.startswith("v")), "unknown")


def verify_restore(pg, source, target, expected):
    """A restore that 'worked' but lost rows would make any timing meaningless: count them, then drop it."""
    try:
        counts = pgdata.execute(pg, target, "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM history)")
        if counts[0] != (expected["accounts"], expected["history"]):
            raise BenchError(f"restored {target} has {counts[0]} accounts/history rows, {source} has "
                             f"({expected['accounts']}, {expected['history']})")
    finally:
        drop_database(pg, target)


def drop_database(pg, name):
    pgdata.execute(pg, "postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restore_step(pg, source, restore, target):
    """A restore measurement: into a fresh `target`, checked against the source afterwards, then dropped."""
    def measure():
        drop_database(pg, target)
        result = restore(target)
        verify_restore(pg, source["database"], target, source)
        return result

    return measure


def replace_step(pg, source, restore, target):
    """A restore with replace=true over a live `target` (a copy of the source, made untimed), checked afterwards."""
    def measure():
        drop_database(pg, target)
        pgdata.execute(pg, "postgres", f'CREATE DATABASE "{target}" TEMPLATE "{source["database"]}"')
        pgdata.execute(pg, "postgres", "CHECKPOINT")
        os.sync()  # the copy's 1.5 GB of writeback must not land on the timed restore
        result = restore(target)
        verify_restore(pg, source["database"], target, source)
        return result

    return measure


def run_benchmark(args, facts, workdir):
    pg, s3 = facts["postgres"], facts["s3"]
    passfile = os.path.join(workdir, "pgpass")
    write_passfile(passfile, pg)
    big = pgdata.ensure_database(pg, f"keel_bench_{round(args.size_gb * 1024)}mb", args.size_gb)
    ref = Reference(pg, pg_env(pg, passfile), workdir, big["database"])
    keel = None if args.only_reference else Keel(args.module, pg, s3, workdir)
    runs = {}

    recipient = keel.recipient if keel else new_age_identity(os.path.join(workdir, "ref-age-identity.txt"))
    backups = [("ref_dump_custom", ref.dump_custom), ("ref_dump_zstd", ref.dump_zstd),
               ("ref_dump_directory", ref.dump_directory)]
    if shutil.which("age"):
        backups.append(("ref_dump_age_s3", lambda: ref.dump_age_s3(recipient, s3)))
    restores = [("ref_restore_zstd", restore_step(pg, big, ref.restore_zstd, "bench_restore_ref")),
                ("ref_restore_directory", restore_step(pg, big, ref.restore_directory, "bench_restore_dir"))]
    if keel:
        backups += keel_backup_steps(keel, big, "")
        restores += keel_restore_steps(keel, pg, big, "", runs)
    backups, restores = chosen(backups, args.only), chosen(restores, args.only)
    print(f"timing {len(backups)} backups, then {len(restores)} restores, {args.repeat} round(s)...")
    measure_rounds(backups, args.repeat, runs, warmup="ref_dump_zstd" if dict(backups).get("ref_dump_zstd") else None)
    if not args.only or "s3_upload" in args.only:
        measure_rounds([("s3_upload", lambda: upload_to_s3(s3, os.path.join(workdir, "ref.dump.zst")))], 1, runs)
    if restores:
        measure_rounds(restores, args.repeat, runs,
                       warmup="ref_restore_zstd" if dict(restores).get("ref_restore_zstd") else None)

    small = None
    if keel and not args.only and args.size_gb > SMALL_GB * 1.5:  # a separate 100 MB database for the memory comparison
        small = pgdata.ensure_database(pg, "keel_bench_100mb", SMALL_GB)
        print("keel on the 100 MB database (peak RSS)...")
        measure_rounds(keel_backup_steps(keel, small, "small_"), 1, runs)
        measure_rounds(keel_restore_steps(keel, pg, small, "small_", runs), 1, runs)
    return big, small, runs


def chosen(steps, only):
    """The steps --only names (all of them without it)."""
    return [(key, step) for key, step in steps if not only or key in only]


def keel_backup_steps(keel, info, prefix):
    db = info["database"]
    return [(prefix + "keel_backup", lambda: keel.backup(db, encrypted=False)),
            (prefix + "keel_backup_enc_s3", lambda: keel.backup(db, encrypted=True))]


def keel_restore_steps(keel, pg, info, prefix, runs):
    """Restores of the backups the backup steps made (looked up when the step runs)."""
    def restore(backup_key, encrypted, replace=False):
        def run(target):
            backup = runs.get(prefix + backup_key, {})
            if not backup.get("backup_id"):
                raise BenchError(f"no {prefix + backup_key} to restore: {backup.get('error', 'no backup_id')}")
            return keel.restore(info["database"], backup["backup_id"], target, encrypted, replace=replace)
        return run

    return [(prefix + "keel_restore", restore_step(pg, info, restore("keel_backup", False), "bench_restore_keel")),
            (prefix + "keel_restore_replace",
             replace_step(pg, info, restore("keel_backup", False, replace=True), "bench_restore_keel_replace")),
            (prefix + "keel_restore_enc_s3",
             restore_step(pg, info, restore("keel_backup_enc_s3", True), "bench_restore_keel_s3"))]


S3_UPLOADER = r"""
import os, sys
import boto3
client = boto3.client("s3", endpoint_url=os.environ["KEEL_BENCH_S3_ENDPOINT"])
client.upload_fileobj(sys.stdin.buffer, sys.argv[1], sys.argv[2])
"""


def s3_client(s3):
    import boto3

    return boto3.client("s3", endpoint_url=s3["endpoint_url"], region_name=s3["region"],
                        aws_access_key_id=s3["access_key"], aws_secret_access_key=s3["secret_key"])


def upload_to_s3(s3, path):
    """How fast the S3 endpoint (moto, a Python process) takes bytes on its own: boto3 upload_file of a dump."""
    client = s3_client(s3)
    started = time.monotonic()
    client.upload_file(path, s3["bucket"], "bench-reference/ref.dump.zst")
    seconds = time.monotonic() - started
    client.delete_object(Bucket=s3["bucket"], Key="bench-reference/ref.dump.zst")  # moto keeps it in memory
    return {"seconds": seconds, "output_bytes": os.path.getsize(path)}


# --------------------------------------------------------------------------- #
# Report.
# --------------------------------------------------------------------------- #

LABELS = [  # key, operation, tool
    ("ref_dump_custom", "backup", "pg_dump -Fc (reference)"),
    ("ref_dump_zstd", "backup", "pg_dump -Fc -Z0 | zstd -1 -T0 (reference)"),
    ("ref_dump_directory", "backup", "pg_dump -Fd -j2 (reference)"),
    ("ref_dump_age_s3", "backup", "pg_dump | zstd | age | boto3 to S3 (reference)"),
    ("s3_upload", "upload", "boto3 upload of the zstd dump (S3 endpoint alone)"),
    ("keel_backup", "backup", "keel, defaults, local repository"),
    ("keel_backup_enc_s3", "backup", "keel, age encryption, to S3"),
    ("ref_restore_zstd", "restore", "zstd -dc | pg_restore (reference)"),
    ("ref_restore_directory", "restore", "pg_restore -j2, directory dump (reference)"),
    ("keel_restore", "restore", "keel, from local repository"),
    ("keel_restore_replace", "restore", "keel, replace=true over a live copy (beside+swap)"),
    ("keel_restore_enc_s3", "restore", "keel, age encryption, from S3"),
]
# keel key -> [(check, ratio from (keel seconds, reference seconds), reference key, comparison, target)]
TIME_CHECKS = {
    "keel_backup": [("speed-up vs pg_dump -Fc", lambda k, r: r / k, "ref_dump_custom", ">=", 5.0),
                    ("time vs zstd pipe", lambda k, r: k / r, "ref_dump_zstd", "<=", 1.10)],
    "keel_backup_enc_s3": [("time vs age + S3 pipe", lambda k, r: k / r, "ref_dump_age_s3", "<=", 1.10)],
    "keel_restore": [("time vs zstd | pg_restore", lambda k, r: k / r, "ref_restore_zstd", "<=", 1.10)],
    # Restoring beside a live database and swapping it in must cost next to nothing over a fresh target.
    "keel_restore_replace": [("time vs restore into a fresh db", lambda k, r: k / r, "keel_restore", "<=", 1.05)],
}
RSS_LIMIT_MB = 150
RSS_GROWTH_LIMIT = 1.20  # "flat": peak RSS at full size at most 20 % above the 100 MB database's


def passed(value, op, target):
    return value >= target if op == ">=" else value <= target


def checks_for(runs, key):
    out = []
    for name, ratio, ref_key, op, target in TIME_CHECKS.get(key, []):
        keel, ref = runs.get(key, {}), runs.get(ref_key, {})
        if keel.get("seconds") and ref.get("seconds"):
            value = ratio(keel["seconds"], ref["seconds"])
            out.append({"check": name, "value": round(value, 2), "target": f"{op} {target:.2f}x",
                        "pass": passed(value, op, target)})
        else:
            out.append({"check": name, "value": None, "target": f"{op} {target:.2f}x", "pass": False})
    return out


def rss_checks(runs, small_mb, big_mb):
    rows = []
    for key, label in (("keel_backup", "backup, defaults"), ("keel_backup_enc_s3", "backup, age + S3"),
                       ("keel_restore", "restore, local"), ("keel_restore_enc_s3", "restore, age + S3")):
        big = (runs.get(key, {}).get("peak_rss_mb") or [None])[0]
        small = (runs.get("small_" + key, runs.get(key, {})).get("peak_rss_mb") or [None])[0]
        growth = big / small if big and small else None
        ok = bool(big and small and max(big, small) < RSS_LIMIT_MB and growth <= RSS_GROWTH_LIMIT)
        rows.append({"what": label, "small_db_mb": small_mb, "rss_small_mb": small, "big_db_mb": big_mb,
                     "rss_big_mb": big, "growth": growth, "pass": ok})
    return rows


def fmt(value, pattern):
    return pattern % value if value is not None else "-"


def report(args, machine, big, small, runs):
    size_mb = big["size_bytes"] / MB
    machine["load_average_at_end"] = os.getloadavg()  # other work on the machine skews every figure
    print()
    print(f"pg_backup benchmark: database {big['database']}, {size_mb:.0f} MB (pg_database_size), "
          f"{big['accounts']:,} accounts rows of random hex (~2:1 compressible), best of {args.repeat}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM; "
          f"PostgreSQL {machine['postgresql']}; zstd {machine['zstd']}; "
          f"load average {machine['load_average_at_start'][0]:.1f} at start, {machine['load_average_at_end'][0]:.1f} at end")
    header = f"{'operation':<9} {'tool':<50} {'seconds':>8} {'MB/s':>7} {'out MB':>7}  {'ratio':>6} {'target':<38} result"
    print(header)
    print("-" * len(header))
    rows = []
    for key, operation, tool in LABELS:
        run = runs.get(key)
        if run is None:
            continue
        seconds = run.get("seconds")
        mbps = size_mb / seconds if seconds else None
        out_mb = run["output_bytes"] / MB if run.get("output_bytes") else None
        checks = checks_for(runs, key)
        line = f"{operation:<9} {tool:<50} {fmt(seconds, '%8.1f'):>8} {fmt(mbps, '%7.1f'):>7} {fmt(out_mb, '%7.0f'):>7}"
        if "error" in run:
            line += "  FAILED: " + run["error"].splitlines()[0][:100]
        for index, check in enumerate(checks):
            text = (f"  {fmt(check['value'], '%5.2fx'):>6} {check['target'] + ' ' + check['check']:<38} "
                    f"{'PASS' if check['pass'] else 'FAIL'}")
            print(line + text if index == 0 else " " * len(line) + text)
        if not checks:
            print(line)
        rows.append(dict(run, key=key, operation=operation, tool=tool, mb_per_s=mbps, checks=checks))
    rss = rss_checks(runs, round(small["size_bytes"] / MB) if small else round(size_mb), round(size_mb))
    if not args.only_reference:
        print()
        print(f"peak RSS of the keel module process (MB), target < {RSS_LIMIT_MB} MB and flat "
              f"(growth <= {RSS_GROWTH_LIMIT:.2f}x)")
        print(f"{'':<20} {str(rss[0]['small_db_mb']) + ' MB db':>12} {str(rss[0]['big_db_mb']) + ' MB db':>12} "
              f"{'growth':>7}  result")
        for row in rss:
            print(f"{row['what']:<20} {fmt(row['rss_small_mb'], '%12.1f')} {fmt(row['rss_big_mb'], '%12.1f')} "
                  f"{fmt(row['growth'], '%6.2fx')}  {'PASS' if row['pass'] else 'FAIL'}")
    return rows, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.5, help="database size in GB (2^30 bytes)")
    parser.add_argument("--repeat", type=int, default=2, help="N rounds of every timed step; the fastest is kept")
    parser.add_argument("--only-reference", action="store_true", help="time the reference tools only")
    parser.add_argument("--only", type=lambda text: set(text.split(",")), default=None,
                        help="comma-separated step keys to time (say ref_dump_zstd,keel_backup); default: all")
    parser.add_argument("--module", default=MODULE, help="the pg_backup module file to run (default: this checkout's)")
    parser.add_argument("--state-dir", help="stack state dir to use and keep (reuses generated data); "
                        "default: a fresh temporary dir, removed at the end")
    args = parser.parse_args()
    if not args.only_reference and not os.path.exists(args.module):
        sys.exit(f"keel module not found: {args.module} does not exist (yet); "
                 "run with --only-reference to time the reference tools alone")
    if not shutil.which("zstd"):
        sys.exit("the zstd CLI is needed for the reference pipe: apt-get install zstd")
    ensure_build_link()

    stack_tool = load_stack_module()
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="keel-bench-", dir="/tmp")
    os.makedirs(state_dir, exist_ok=True)
    os.chmod(state_dir, 0o711)  # PostgreSQL runs as an unprivileged user and must traverse it
    workdir = tempfile.mkdtemp(prefix="keel-bench-work-", dir="/tmp")
    stack = stack_tool.Stack(state_dir)
    try:
        facts = stack.start(services=["postgres", "s3"])
        machine = machine_info(facts["postgres"])
        big, small, runs = run_benchmark(args, facts, workdir)
        rows, rss = report(args, machine, big, small, runs)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine, "size_gb": args.size_gb,
                   "repeat": args.repeat, "database": big, "small_database": small, "runs": rows, "peak_rss": rss,
                   "keel_ran": not args.only_reference}, handle, indent=2, default=str)
    print(f"\nwrote {os.path.relpath(RESULTS, ROOT)}")


if __name__ == "__main__":
    main()
