"""Benchmark: keel.ops.file_backup against a tar | zstd pipe, side by side in one run.

Generates an application's data tree (--size-mb, 1 GB by default) under --state-dir: 20,000 small files of
1-64 KiB (log-uniform; half random bytes like uploaded images, half text like documents), 40 medium files of
2-8 MiB, three large files of 100+ MB, nested directories, four symbolic links and a SQLite database of ~50 MB in
WAL mode; every count and size scales with --size-mb, so a small run has the same shape.  It then times, best of
--repeat rounds:

  backup    tar -cf - | zstd -1 -T0, output fsynced (reference)
            keel, state=present, defaults (zstd -1, sqlite_patterns), local repository  target: <= 1.15x
  restore   zstd -dc | tar -xf - into an empty directory, then sync (reference)
            keel, state=restored into an empty target                                    target: <= 1.25x
            keel, the same restore again over the restored tree (changed=false; for information)

and the peak RSS of the keel module process at 100 MB and at full size (flat: growth <= 1.20x, under 150 MB).
Keel's times are the wall-clock time of the module process as Ansible runs it (start-up included).  Every
restore is checked against the source before its time counts.  Figures go to stdout and to
bench/results/file_backup.json.  MB = 2^20 bytes; MB/s = bytes of the data set's files / seconds.

    .venv/bin/python bench/file_backup.py [--size-mb 1024] [--repeat 2] [--state-dir DIR] [--only-reference]

--state-dir keeps the generated trees there, and a later run with the same dir and size reuses them.  One
untimed run of each reference goes first, so that every timed run finds the same page cache.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

from harness import LAUNCHER, BenchError, measure_rounds  # bench/, beside this script


BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
MODULE = os.path.join(ROOT, "plugins", "modules", "file_backup.py")
RESULTS = os.path.join(BENCH_DIR, "results", "file_backup.json")
KIB, MB = 1024, 1024 ** 2
SMALL_MB = 100  # the data set of the memory comparison
MIN_MB = 50  # below this the fixed part of the shape (medium files) no longer fits
DATASET_VERSION = 1  # bump when the generator changes: trees kept in a state dir are then generated again
SEED = 20261201


# --------------------------------------------------------------------------- #
# The data set.
# --------------------------------------------------------------------------- #

SMALL_FILES, MEDIUM_FILES, SQLITE_MB = 20000, 40, 50  # at 1024 MB; scaled with the size
SECTIONS = ("guides", "api", "billing", "support", "blog", "legal", "internal", "releases")
LARGE = (("exports/export-2026-11.tar", False), ("logs/app-2026-11.log", True), ("media/archive/raw-footage.mov", False))
SYMLINKS = (("current", "uploads/2026"), ("logs/latest.log", "app-2026-11.log"), ("static", "content"),
            ("content/start", "guides/topic-0"))
WORDS = ("order", "invoice", "customer", "shipment", "payment", "refund", "session", "cache", "upload", "report",
         "account", "worker", "queue", "retry", "timeout", "search", "export", "profile", "settings", "webhook")


class TextPool:
    """16 MB of log lines, CSV rows and JSON records.  Text files are cut from it at random offsets: generating
    every byte in Python would take minutes, and slices of a pool far larger than zstd -1's window compress like
    the real thing (about 3-4x) rather than like repeats."""

    def __init__(self, rng, size=16 * MB):
        lines, total, clock = [], 0, 1764547200.0
        while total < size:
            clock += rng.expovariate(20)
            user, word, number = rng.choice(WORDS) + str(rng.randrange(500)), rng.choice(WORDS), rng.randrange(10 ** 6)
            pick = rng.random()
            if pick < 0.6:
                line = "%s.%03dZ %-5s [worker-%d] %s /api/v1/%ss/%d status=%d ms=%.1f req=%016x user=%s\n" % (
                    time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(clock)), rng.randrange(1000),
                    rng.choice(("INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR")), rng.randrange(8),
                    rng.choice(("GET", "GET", "POST", "PUT", "DELETE")), word, number,
                    rng.choice((200, 200, 200, 201, 204, 304, 404, 500)), rng.expovariate(0.05),
                    rng.getrandbits(64), user)
            elif pick < 0.8:
                line = "%d,%s,%s,%.2f,%s\n" % (number, user, word, rng.uniform(1, 5000), rng.choice(WORDS))
            else:
                line = '{"id": %d, "event": "%s.%s", "user": "%s", "note": "%s"}\n' % (
                    number, word, rng.choice(("created", "updated", "deleted")), user,
                    " ".join(rng.choice(WORDS) for _word in range(rng.randrange(3, 12))))
            lines.append(line)
            total += len(line)
        self.data = "".join(lines).encode("ascii")

    def take(self, rng, size):
        start = rng.randrange(len(self.data))
        out = self.data[start:start + size]
        while len(out) < size:
            out += self.data[:size - len(out)]
        return out


def plan_tree(size_mb, rng):
    """(path below the root, bytes, text?) of every plain file, and the SQLite database's size in bytes."""
    scale = size_mb / 1024
    plan = []
    for n in range(max(200, round(SMALL_FILES * scale))):
        size = round(math.exp(rng.uniform(math.log(KIB), math.log(64 * KIB))))  # most files are the smallest
        if n % 2:
            extension = rng.choice((".md", ".json", ".html", ".txt"))
            name = "content/%s/topic-%d/doc-%05d%s" % (rng.choice(SECTIONS), rng.randrange(6), n, extension)
            plan.append((name, size, True))
        else:
            name = "uploads/%d/%02d/%02x/IMG_%05d.jpg" % (rng.randint(2023, 2026), rng.randint(1, 12),
                                                          rng.randrange(4), n)
            plan.append((name, size, False))
    for n in range(max(2, round(MEDIUM_FILES * scale))):
        size = rng.randint(2 * MB, 8 * MB)
        plan.append(("media/clips/clip-%03d.mp4" % n, size, False) if n % 2 == 0
                    else ("reports/2026/report-%03d.csv" % n, size, True))
    sqlite_bytes = max(2 * MB, round(SQLITE_MB * MB * scale))
    left = size_mb * MB - sum(size for _path, size, _text in plan) - sqlite_bytes  # the large files take the rest
    if left < 3 * MB:
        raise BenchError("--size-mb %d leaves no room for the large files" % size_mb)
    for n, (path, text) in enumerate(LARGE):
        plan.append((path, left // len(LARGE) + (left % len(LARGE) if n == 0 else 0), text))
    return plan, sqlite_bytes


def write_content(path, size, text, rng, pool):
    with open(path, "wb") as out:
        while size:
            chunk = min(size, 4 * MB)  # a large file is never held whole
            out.write(pool.take(rng, chunk) if text else rng.randbytes(chunk))
            size -= chunk


def make_sqlite(path, size, rng, pool):
    """A WAL-mode database of about `size` bytes: rows of text with a random blob, and an index.  Closed at the
    end, which checkpoints and removes its WAL, so that tar and keel store the same set of files."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, created REAL, user TEXT, kind TEXT, body TEXT, "
               "attachment BLOB)")
    db.execute("CREATE INDEX events_created ON events (created)")
    rows, clock = 0, 1764547200.0
    page = db.execute("PRAGMA page_size").fetchone()[0]
    while db.execute("PRAGMA page_count").fetchone()[0] * page < size:
        batch = []
        for _row in range(5000):
            clock += rng.expovariate(1)
            batch.append((clock, rng.choice(WORDS) + str(rng.randrange(500)), rng.choice(WORDS),
                          pool.take(rng, rng.randint(80, 400)).decode("ascii"), rng.randbytes(rng.randint(0, 600))))
        db.executemany("INSERT INTO events (created, user, kind, body, attachment) VALUES (?, ?, ?, ?, ?)", batch)
        db.commit()
        rows += len(batch)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    if os.path.exists(path + "-wal"):
        raise BenchError("SQLite left %s-wal behind after the last connection closed" % path)
    return rows


def generate(root, size_mb, seed):
    rng = random.Random(seed)
    pool = TextPool(rng)
    plan, sqlite_bytes = plan_tree(size_mb, rng)
    made = set()
    for rel, size, text in plan:
        path = os.path.join(root, rel)
        if os.path.dirname(path) not in made:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            made.add(os.path.dirname(path))
        write_content(path, size, text, rng, pool)
        stamp = 1764547200 - rng.randrange(365 * 86400)  # a year of history, whole seconds as tar keeps them
        os.utime(path, (stamp, stamp))
    for rel, target in SYMLINKS:
        os.symlink(target, os.path.join(root, rel))
    os.makedirs(os.path.join(root, "var"), exist_ok=True)
    return make_sqlite(os.path.join(root, "var", "app.db"), sqlite_bytes, rng, pool)


def describe_tree(root):
    """{path below root: (type, mode, size, mtime, link target)} of everything under root, links not followed.
    A directory's mtime and a link's mode and mtime are left out: neither tool is asked to keep them exact."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("symlink", None, None, None, os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = ("directory", st.st_mode, None, None, None)
            else:
                found[rel] = ("file", st.st_mode, st.st_size, int(st.st_mtime), None)
    return found


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MB), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_dataset(state_dir, size_mb):
    """The tree of `size_mb` under state_dir, generated unless the one there was made with the same parameters
    (its dataset.json is written last, so a generation cut short is never reused)."""
    home = os.path.join(state_dir, "files-%dmb" % size_mb)
    root, stamp = os.path.join(home, "app"), os.path.join(home, "dataset.json")
    params = {"version": DATASET_VERSION, "size_mb": size_mb, "seed": SEED}
    try:
        with open(stamp) as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        saved = {}
    started = time.monotonic()
    generated = saved.get("params") != params
    if generated:
        print("generating a %d MB data tree in %s..." % (size_mb, root))
        shutil.rmtree(home, ignore_errors=True)
        os.makedirs(root)
        saved = {"params": params, "sqlite_rows": generate(root, size_mb, SEED)}
        os.sync()  # its writeback must not land on the first timed run
        with open(stamp, "w") as handle:
            json.dump(saved, handle)
    remove_sidecars(root)  # what a run killed after a keel backup may have left
    listing = describe_tree(root)
    files = sorted(rel for rel, entry in listing.items() if entry[0] == "file")
    sample = [rel for rel in files[::50] if not rel.endswith(".db")]  # the database is checked by its rows
    return {"path": root, "size_mb": size_mb, "listing": listing, "sqlite_rows": saved["sqlite_rows"],
            "bytes": sum(listing[rel][2] for rel in files), "files": len(files),
            "directories": sum(1 for entry in listing.values() if entry[0] == "directory"),
            "symlinks": sum(1 for entry in listing.values() if entry[0] == "symlink"),
            "sample": {rel: sha256_file(os.path.join(root, rel)) for rel in sample},
            "generated": generated, "seconds": round(time.monotonic() - started, 1)}


def verify_restore(dataset, target):
    """A restore that lost or mangled files would make its time meaningless: the restored tree must match the
    source entry by entry, a sample of files by sha256, and the database by its rows."""
    copy = target + dataset["path"]
    found, expected = describe_tree(copy), dataset["listing"]
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        differ = sorted(rel for rel in set(found) & set(expected) if found[rel] != expected[rel])
        raise BenchError("the restored tree under %s differs from the source: %d missing (%s), %d extra (%s), %d "
                         "differing (%s)" % (copy, len(missing), missing[:3], len(extra), extra[:3], len(differ),
                                             ["%s: %s != %s" % (r, found[r], expected[r]) for r in differ[:3]]))
    for rel, digest in dataset["sample"].items():
        if sha256_file(os.path.join(copy, rel)) != digest:
            raise BenchError("the restored %s does not hold the source's content" % os.path.join(copy, rel))
    db = sqlite3.connect("file:%s?immutable=1" % os.path.join(copy, "var", "app.db"), uri=True)  # no -wal, -shm
    try:
        rows = db.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        db.close()
    if rows != dataset["sqlite_rows"]:
        raise BenchError("the restored database has %d rows, the source %d" % (rows, dataset["sqlite_rows"]))


# --------------------------------------------------------------------------- #
# Running children: argv lists joined by pipes, peak RSS from the kernel.
# --------------------------------------------------------------------------- #


def run_pipeline(stages, env=None, stdout=None):
    """Run argv lists joined stdout -> stdin, without a shell: (seconds, [peak RSS in MB of each stage])."""
    children, upstream = [], subprocess.DEVNULL
    started = time.monotonic()
    for index, argv in enumerate(stages):
        last = index == len(stages) - 1
        errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child never blocks on it
        rss = tempfile.NamedTemporaryFile(prefix="rss-")
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, rss.name] + argv, stdin=upstream,
                                stdout=stdout if last else subprocess.PIPE, stderr=errors, env=env)
        if index:
            upstream.close()  # the next stage holds the only read end, so a writer learns when its reader died
        upstream = proc.stdout
        children.append((argv, proc, errors, rss))
    peaks, failures = [], []
    for argv, proc, errors, rss in children:
        proc.wait()
        text = rss.read().decode()
        peaks.append(int(text) / 1024 if text else None)
        if proc.returncode:
            errors.seek(0)
            failures.append("%s exited %d: %s" % (os.path.basename(argv[0]), proc.returncode,
                                                  errors.read().decode(errors="replace").strip()[-2000:]))
        errors.close()
        rss.close()
    seconds = time.monotonic() - started
    if failures:
        raise BenchError("\n".join(failures))
    return seconds, peaks


def remove_sidecars(root):
    """Remove the -wal and -shm files a backup left beside the source database; returns their names.  A
    read-only connection to a WAL database creates them and cannot delete them, and tar would then archive
    files the source never had (a WAL with no connection open holds nothing, so removing it loses nothing)."""
    left = []
    for suffix in ("-wal", "-shm"):
        path = os.path.join(root, "var", "app.db" + suffix)
        if os.path.exists(path):
            os.unlink(path)
            left.append(os.path.relpath(path, root))
    return left


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def empty_dir(path):
    """A fresh empty directory, with the removal of the old one written back before anything is timed."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.sync()


class Reference:
    """tar and zstd, the way an administrator would script it."""

    def __init__(self, workdir):
        self.output = os.path.join(workdir, "ref.tar.zst")

    def backup(self, dataset):
        # Names relative to / as keel stores them, so that both restores produce the same tree.
        stages = [["tar", "-cf", "-", "-C", "/", dataset["path"].lstrip("/")],
                  ["zstd", "-1", "-T0", "-q", "-f", "-o", self.output]]
        if os.path.exists(self.output):
            os.unlink(self.output)
        started = time.monotonic()
        _seconds, rss = run_pipeline(stages)
        fsync_path(self.output)  # keel fsyncs what it stores; a copy left in the page cache would be cheaper
        fsync_path(os.path.dirname(self.output))
        return {"seconds": time.monotonic() - started, "output_bytes": os.path.getsize(self.output),
                "peak_rss_mb": rss, "commands": stages}

    def restore(self, target):
        stages = [["zstd", "-dc", "-q", self.output], ["tar", "-xf", "-", "-C", target]]
        started = time.monotonic()
        _seconds, rss = run_pipeline(stages)
        os.sync()  # tar leaves its writes in the page cache; keel's restore has them on disk when it ends
        return {"seconds": time.monotonic() - started, "peak_rss_mb": rss, "commands": stages}


class Keel:
    """keel.ops.file_backup run as Ansible runs a module: the file executed with its arguments in a JSON file."""

    def __init__(self, module, workdir, journal_dir):
        self.module, self.workdir, self.journal_dir = module, workdir, journal_dir
        self.repository = os.path.join(workdir, "keel-repo")

    def run(self, args):
        """One module invocation as its own process: (result, seconds, peak RSS in MB)."""
        args_file = os.path.join(self.workdir, "module-args.json")
        fd = os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # as Ansible does: never on argv
        with os.fdopen(fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build"))
        with tempfile.TemporaryFile() as out:
            try:
                seconds, rss = run_pipeline([[sys.executable, self.module, args_file]], env=env, stdout=out)
                failure = None
            except BenchError as error:
                seconds, rss, failure = None, [None], str(error)
            out.seek(0)
            text = out.read().decode(errors="replace")
        os.unlink(args_file)
        try:
            result = json.loads(text[text.index("{"):]) if "{" in text else {}
        except ValueError:
            result = {}
        if failure or result.get("failed") or not result:
            raise BenchError("keel file_backup failed: %s" % (result.get("msg") or failure or text[-2000:]))
        return result, seconds, rss[0]

    def backup(self, dataset):
        result, seconds, rss = self.run({"state": "present", "paths": [dataset["path"]],
                                         "source": self.source(dataset), "repository": self.repository})
        left = remove_sidecars(dataset["path"])
        if result["statistics"]["files"] != dataset["files"]:
            raise BenchError("keel stored %d files of the %d in the data set: %s"
                             % (result["statistics"]["files"], dataset["files"], result.get("warnings")))
        return {"seconds": seconds, "output_bytes": result["size"], "raw_bytes": result["raw_size"],
                "peak_rss_mb": [rss], "backup_id": result["backup_id"], "module_duration": result["duration"],
                "statistics": result["statistics"], "left_beside_source": left}

    def restore(self, dataset, backup_id, target):
        result, seconds, rss = self.run({"state": "restored", "source": self.source(dataset),
                                         "repository": self.repository, "backup_id": backup_id, "target": target,
                                         "journal_dir": self.journal_dir})
        return {"seconds": seconds, "peak_rss_mb": [rss], "module_duration": result.get("duration"),
                "changed": result["changed"], "counts": result.get("counts")}

    @staticmethod
    def source(dataset):
        return "bench-files-%dmb" % dataset["size_mb"]


# --------------------------------------------------------------------------- #
# The run.
# --------------------------------------------------------------------------- #


def restore_step(dataset, target, restore):
    def measure():
        empty_dir(target)
        result = restore(target)
        verify_restore(dataset, target)
        return result
    return measure


def unchanged_step(dataset, target, restore):
    """The restore again over the tree the previous keel restore left: nothing may change."""
    def measure():
        if not os.path.isdir(target + dataset["path"]):
            raise BenchError("no restored tree under %s to restore over" % target)
        result = restore(target)
        if result["changed"] or (result["counts"] or {}).get("created") or (result["counts"] or {}).get("replaced"):
            raise BenchError("the restore over an identical tree reported changes: %s" % result["counts"])
        return result
    return measure


def keel_steps(keel, dataset, workdir, runs, prefix):
    """keel's backup and its two restores of `dataset`; a restore uses the backup that step took."""
    target = os.path.join(workdir, prefix + "keel-target")

    def restore(into):
        backup_id = runs.get(prefix + "keel_backup", {}).get("backup_id")
        if not backup_id:
            raise BenchError("no keel backup to restore")
        return keel.restore(dataset, backup_id, into)

    return ([(prefix + "keel_backup", lambda: keel.backup(dataset))],
            [(prefix + "keel_restore", restore_step(dataset, target, restore)),
             (prefix + "keel_restore_unchanged", unchanged_step(dataset, target, restore))])


def run_benchmark(args, state_dir, workdir):
    big = ensure_dataset(state_dir, args.size_mb)
    ref = Reference(workdir)
    keel = None if args.only_reference else Keel(args.module, workdir, os.path.join(state_dir, "journal"))
    if keel:
        os.makedirs(keel.journal_dir, exist_ok=True)
    runs = {}
    backups = [("ref_backup", lambda: ref.backup(big))]
    restores = [("ref_restore", restore_step(big, os.path.join(workdir, "ref-target"), ref.restore))]
    if keel:
        keel_backups, keel_restores = keel_steps(keel, big, workdir, runs, "")
        backups += keel_backups
        restores += keel_restores
    print("timing %d backups, then %d restores, %d round(s)..." % (len(backups), len(restores), args.repeat))
    measure_rounds(backups, args.repeat, runs, warmup="ref_backup")
    measure_rounds(restores, args.repeat, runs, warmup="ref_restore")

    small = None
    if keel and args.size_mb > SMALL_MB * 1.5:  # a separate small tree for the memory comparison
        small = ensure_dataset(state_dir, SMALL_MB)
        print("keel on the %d MB tree (peak RSS)..." % SMALL_MB)
        keel_backups, keel_restores = keel_steps(keel, small, workdir, runs, "small_")
        measure_rounds(keel_backups, 1, runs)
        measure_rounds(keel_restores, 1, runs)
    return big, small, runs


# --------------------------------------------------------------------------- #
# Report.
# --------------------------------------------------------------------------- #

LABELS = [  # key, operation, tool
    ("ref_backup", "backup", "tar -cf - | zstd -1 -T0, fsync (reference)"),
    ("keel_backup", "backup", "keel, defaults (zstd -1), local repository"),
    ("ref_restore", "restore", "zstd -dc | tar -xf -, sync (reference)"),
    ("keel_restore", "restore", "keel, into an empty target"),
    ("keel_restore_unchanged", "restore", "keel, again over the restored tree"),
]
TIME_TARGETS = {"keel_backup": ("ref_backup", 1.15), "keel_restore": ("ref_restore", 1.25),
                "keel_restore_unchanged": ("ref_restore", None)}  # None: for information
RSS_LIMIT_MB = 150
RSS_GROWTH_LIMIT = 1.20  # flat: peak RSS at full size at most 20 % above the small tree's
ROW = "%-8s %-44s %8s %7s %7s  %6s  %-24s %s"


def fmt(value, pattern):
    return pattern % value if value is not None else "-"


def time_check(runs, key):
    if key not in TIME_TARGETS:
        return None
    ref_key, limit = TIME_TARGETS[key]
    mine, ref = runs.get(key, {}).get("seconds"), runs.get(ref_key, {}).get("seconds")
    ratio = mine / ref if mine and ref else None
    if limit is None:
        return {"of": ref_key, "value": ratio, "limit": None, "pass": None}
    return {"of": ref_key, "value": ratio, "limit": limit, "pass": ratio is not None and ratio <= limit}


def rss_rows(runs, small_mb, big_mb):
    rows = []
    for key, what in (("keel_backup", "backup"), ("keel_restore", "restore, empty target"),
                      ("keel_restore_unchanged", "restore, unchanged tree")):
        big = (runs.get(key, {}).get("peak_rss_mb") or [None])[0]
        small = (runs.get("small_" + key, runs.get(key, {})).get("peak_rss_mb") or [None])[0]
        growth = big / small if big and small else None
        rows.append({"what": what, "small_mb": small_mb, "rss_small_mb": small, "big_mb": big_mb, "rss_big_mb": big,
                     "growth": growth, "pass": bool(growth and max(big, small) < RSS_LIMIT_MB
                                                    and growth <= RSS_GROWTH_LIMIT)})
    return rows


def report(args, machine, big, small, runs):
    machine["load_average_at_end"] = os.getloadavg()  # other work on the machine skews every figure
    size_mb = big["bytes"] / MB
    scale = args.size_mb / 1024
    print()
    print("file_backup benchmark: %s, %.0f MB in %s files (%s small of 1-64 KiB, %d medium of 2-8 MiB, %d large, "
          "SQLite %d MB WAL of %s rows), %s directories, %d symlinks; best of %d"
          % (big["path"], size_mb, "{:,}".format(big["files"]), "{:,}".format(max(200, round(SMALL_FILES * scale))),
             max(2, round(MEDIUM_FILES * scale)), len(LARGE), max(2, round(SQLITE_MB * scale)),
             "{:,}".format(big["sqlite_rows"]), "{:,}".format(big["directories"]), big["symlinks"], args.repeat))
    print("machine: %s, %d cores, %s GB RAM, %s; zstd %s, %s, python-zstandard %s; load average %.2f at start, "
          "%.2f at end" % (machine["cpu"], machine["cores"], machine["ram_gb"], machine["filesystem"],
                           machine["zstd"], machine["tar"], machine["python_zstandard"],
                           machine["load_average_at_start"][0], machine["load_average_at_end"][0]))
    header = ROW % ("op", "tool", "seconds", "MB/s", "out MB", "ratio", "target", "result")
    print(header + "\n" + "-" * len(header))
    rows = []
    for key, operation, tool in LABELS:
        run = runs.get(key)
        if run is None:
            continue
        seconds, check = run.get("seconds"), time_check(runs, key)
        speed = size_mb / seconds if seconds else None
        out_mb = run["output_bytes"] / MB if run.get("output_bytes") else None
        if "error" in run:
            line = ROW % (operation, tool, "-", "-", "-", "", "", "FAILED: " + run["error"].splitlines()[0][:120])
        elif check is None:
            line = ROW % (operation, tool, fmt(seconds, "%8.2f"), fmt(speed, "%7.1f"), fmt(out_mb, "%7.0f"), "", "", "")
        elif check["limit"] is None:
            line = ROW % (operation, tool, fmt(seconds, "%8.2f"), fmt(speed, "%7.1f"), fmt(out_mb, "%7.0f"),
                          fmt(check["value"], "%5.2fx"), "(information)",
                          "changed=%s" % str(run.get("changed")).lower())
        else:
            line = ROW % (operation, tool, fmt(seconds, "%8.2f"), fmt(speed, "%7.1f"), fmt(out_mb, "%7.0f"),
                          fmt(check["value"], "%5.2fx"), "<= %.2fx the reference" % check["limit"],
                          "PASS" if check["pass"] else "FAIL")
        print(line.rstrip())
        rows.append(dict(run, key=key, operation=operation, tool=tool, mb_per_s=speed, check=check))
    inside = ["%s %.2f s" % (key, runs[key]["module_duration"]) for key, _op, _tool in LABELS
              if runs.get(key, {}).get("module_duration") is not None]
    if inside:
        print("duration the module reports (a restore's covers placing the files only; the rest of the time is "
              "interpreter and Ansible start-up, and for a restore checksums and planning): "
              + ", ".join(inside))
    left = sorted({name for key in ("keel_backup", "small_keel_backup")
                   for name in runs.get(key, {}).get("left_beside_source") or []})
    if left:
        print("note: keel's backup left %s beside the source database (removed by this benchmark after each "
              "backup, untimed, so that tar always reads the tree as generated)" % ", ".join(left))
    rss = rss_rows(runs, round(small["bytes"] / MB) if small else round(size_mb), round(size_mb))
    if not args.only_reference:
        print()
        print("peak RSS of the keel module process (MB), target < %d MB and flat (growth <= %.2fx)"
              % (RSS_LIMIT_MB, RSS_GROWTH_LIMIT))
        print("%-24s %12s %12s %7s  result"
              % ("", "%d MB tree" % rss[0]["small_mb"], "%d MB tree" % rss[0]["big_mb"], "growth"))
        for row in rss:
            print("%-24s %12s %12s %7s  %s"
                  % (row["what"], fmt(row["rss_small_mb"], "%12.1f"), fmt(row["rss_big_mb"], "%12.1f"),
                     fmt(row["growth"], "%6.2fx"), "PASS" if row["pass"] else "FAIL"))
    return rows, rss


def tool_version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unavailable"


def filesystem_of(path):
    """The type and device of the file system holding `path` (the longest mount point above it)."""
    best = ("", "unknown", "unknown")
    with open("/proc/mounts") as handle:
        for line in handle:
            device, mount, kind = line.split()[:3]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best[0]):
                best = (mount, kind, device)
    return "%s on %s" % (best[1], best[2])


def machine_info(workdir):
    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "unknown")
    try:
        import zstandard  # what keel compresses with (the module runs under this same interpreter)
        zstd_lib = "%s (libzstd %s)" % (zstandard.__version__, ".".join(map(str, zstandard.ZSTD_VERSION)))
    except ImportError:
        zstd_lib = "not installed"
    words = tool_version(["zstd", "--version"]).split()  # "*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***"
    return {"cpu": cpu, "cores": os.cpu_count(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2.0 ** 30, 1),
            "kernel": platform.release(), "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "zstd": next((word.strip(",") for word in words if word.startswith("v")), "unknown"),
            "tar": tool_version(["tar", "--version"]), "python_zstandard": zstd_lib,
            "filesystem": filesystem_of(workdir), "euid": os.geteuid(), "load_average_at_start": os.getloadavg()}


def ensure_build_link():
    """The collection under .build/ansible_collections/keel/ops (what `make collection` links), so that the
    module's ansible_collections imports resolve."""
    link = os.path.join(ROOT, ".build", "ansible_collections", "keel", "ops")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("../../..", link)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024,
                        help="size of the generated data tree in MB (2^20 bytes); 100 for a quick run")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of every timed step; the fastest is kept")
    parser.add_argument("--state-dir", help="where the generated trees are kept and reused by the next run with the "
                        "same size (and the restore journal); default: a temporary dir, removed at the end")
    parser.add_argument("--only-reference", action="store_true", help="time tar and zstd only")
    parser.add_argument("--module", default=MODULE, help="the file_backup module file to run (default: this checkout's)")
    args = parser.parse_args()
    if args.size_mb < MIN_MB:
        parser.error("--size-mb must be at least %d" % MIN_MB)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    missing = [tool for tool in ("tar", "zstd") if not shutil.which(tool)]
    if missing:
        sys.exit("the reference needs %s on PATH: apt-get install %s" % (" and ".join(missing), " ".join(missing)))
    if not args.only_reference and not os.path.exists(args.module):
        sys.exit("keel module not found: %s; run with --only-reference to time tar and zstd alone" % args.module)
    ensure_build_link()

    state_dir = (os.path.abspath(args.state_dir) if args.state_dir
                 else tempfile.mkdtemp(prefix="keel-bench-files-", dir="/tmp"))
    os.makedirs(state_dir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="keel-bench-files-work-", dir="/tmp")
    try:
        machine = machine_info(workdir)
        big, small, runs = run_benchmark(args, state_dir, workdir)
        rows, rss = report(args, machine, big, small, runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    datasets = [{key: value for key, value in tree.items() if key not in ("listing", "sample")}
                for tree in (big, small) if tree]
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as handle:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine, "size_mb": args.size_mb,
                   "repeat": args.repeat, "datasets": datasets, "runs": rows, "peak_rss": rss,
                   "keel_ran": not args.only_reference}, handle, indent=2, default=str)
    print("\nwrote %s" % os.path.relpath(RESULTS, ROOT))


if __name__ == "__main__":
    main()
