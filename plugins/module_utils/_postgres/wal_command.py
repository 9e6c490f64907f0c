# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command PostgreSQL runs as archive_command and restore_command (keel-wal), its configuration file, and its
installation on the database host.

    keel-wal push  --config FILE %p %f      archive_command: 0 once the file is durable in the repository
    keel-wal fetch --config FILE %f %p      restore_command: 0 fetched, 1 not archived, 126 cannot be trusted
    keel-wal selftest --config FILE         what pg_wal_archive runs as the server's user before enabling it
    keel-wal drain / prefetch               the detached workers of async push and of prefetching fetch

The configuration file (0600, owned by the server's user) holds the repository, its credentials and the public
keys to encrypt to; nothing secret is ever on the command line or in the server log. Exit status 126 makes
PostgreSQL stop recovery instead of taking a damaged or unreachable archive for its end, which would promote the
server early and silently lose the transactions after that point.

In async mode the first push starts a detached worker (keel-wal drain) that archives every segment PostgreSQL has
marked ready (pg_wal/archive_status), `workers` at a time, and leaves a mark for each in the spool directory;
PostgreSQL's call for a segment then finds its mark and returns at once, before importing anything heavy. A mark
is written only after the segment is durable, so it never acknowledges WAL that is not in the repository; a
segment the worker could not archive is archived by PostgreSQL's own call, whose error reaches the server log.
"""

import os
import sys

EXIT_OK, EXIT_MISSING, EXIT_FATAL = 0, 1, 126
USAGE = ("usage: keel-wal push --config FILE PATH NAME | keel-wal fetch --config FILE NAME PATH | "
         "keel-wal selftest --config FILE | keel-wal drain --config FILE PG_WAL")
WORKER_WAIT = 60  # seconds an async push waits for the worker before archiving its segment itself
IDLE_EXIT = 2  # seconds the worker waits for more ready segments before it exits
PREFETCH = "keel-prefetch"  # beside the restore_command's %p, inside pg_wal
MARK = ".ok"


class CommandError(Exception):
    """A wrong invocation or configuration of keel-wal."""


def parse_args(argv):
    """(action, config path, operands) from keel-wal's argv."""
    if len(argv) < 3 or argv[1] != "--config" or argv[0] not in ("push", "fetch", "selftest", "drain", "prefetch"):
        raise CommandError(USAGE)
    action, path, operands = argv[0], argv[2], argv[3:]
    if len(operands) != {"selftest": 0, "drain": 1}.get(action, 2):
        raise CommandError(USAGE)
    return action, path, operands


def load_config(path):
    import json  # not at the top: an async push that finds its mark returns before it needs any of this

    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise CommandError("cannot read the keel-wal configuration %s: %s" % (path, error))
    for name in ("repository", "source"):
        if not isinstance(config.get(name), str) or not config[name]:
            raise CommandError("the keel-wal configuration %s has no %s" % (path, name))
    return config


def open_archive(config, for_fetch=False):
    """The WalArchive the configuration names (imports the storage and codecs only when needed)."""
    from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
    from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_archive import WalArchive

    recipients, identities = [], []
    if config.get("encryption_recipients") or (for_fetch and config.get("decryption_identity_file")):
        from ansible_collections.keel.ops.plugins.module_utils._backup import encryption  # pyrage: only when used
    for index, text in enumerate(config.get("encryption_recipients") or []):
        recipients.append(encryption.parse_recipient(text, "encryption_recipients[%d]" % index))
    if for_fetch and config.get("decryption_identity_file"):
        with open(config["decryption_identity_file"], encoding="utf-8") as handle:
            identities = encryption.parse_identities(handle.read(), config["decryption_identity_file"])
    return WalArchive(open_storage(config["repository"], config.get("s3")), config["source"],
                      algorithm=config.get("compression") or "zstd", level=config.get("compression_level") or 1,
                      recipients=recipients, identities=identities, threads=config.get("threads", 0))


def spool_of(config, path):
    return config.get("spool_directory") or os.path.join(os.path.dirname(os.path.abspath(path)), "keel-spool")


def take_mark(spool, name):
    """True (and the mark removed) when an earlier async push archived `name` ahead of PostgreSQL's call."""
    mark = os.path.join(spool, name + MARK)
    try:
        os.unlink(mark)
    except FileNotFoundError:
        return False
    return True


def leave_mark(spool, name):
    os.makedirs(spool, mode=0o700, exist_ok=True)
    descriptor = os.open(os.path.join(spool, name + MARK), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def ready_segments(folder):
    """The segments PostgreSQL has marked ready to archive in pg_wal, oldest first."""
    try:
        entries = os.listdir(os.path.join(folder, "archive_status"))
    except OSError:
        return []
    return sorted(entry[:24] for entry in entries if entry.endswith(".ready") and len(entry) == 24 + len(".ready"))


def _worker_lock(spool):
    """The worker's lock file, flocked while it runs: None when a worker holds it, else the open file (locked)."""
    import fcntl

    os.makedirs(spool, mode=0o700, exist_ok=True)
    handle = open(os.path.join(spool, "worker.lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def worker_running(spool):
    handle = _worker_lock(spool)
    if handle is None:
        return True
    handle.close()
    return False


def start_worker(launcher, config_path, folder, spool):
    """A detached keel-wal drain, which PostgreSQL does not wait for."""
    _spawn([sys.executable, launcher, "drain", "--config", config_path, folder], spool)


def _spawn(argv, folder):
    """A detached keel-wal worker (its output in <folder>/worker.log); returns once it holds its lock."""
    import subprocess
    import time

    with open(os.path.join(folder, "worker.log"), "ab") as log:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                         close_fds=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not worker_running(folder):
        time.sleep(0.005)


def push(config, path, name, config_path=None, launcher=None):
    """archive_command. Sync: archive the file, then return. Async: return at once when the worker archived it
    ahead; otherwise start the worker if none runs and wait for its mark, and archive the file here when the
    worker is gone or takes longer than WORKER_WAIT (so an error always reaches the server log)."""
    if not config.get("async"):
        return open_archive(config).push(path, name)
    import time

    spool = spool_of(config, path)
    if take_mark(spool, name):
        return "archived ahead"
    if len(name) == 24 and config_path and launcher:
        if not worker_running(spool):
            start_worker(launcher, config_path, os.path.dirname(os.path.abspath(path)), spool)
        deadline = time.monotonic() + WORKER_WAIT
        while time.monotonic() < deadline and worker_running(spool):
            if take_mark(spool, name):
                return "archived by the worker"
            time.sleep(0.005)
        if take_mark(spool, name):
            return "archived by the worker"
    return open_archive(config).push(path, name)


def drain(config, folder):
    """keel-wal drain: archive every segment PostgreSQL has marked ready, oldest first, `workers` at a time, and
    leave a mark for each once it is durable; exit after IDLE_EXIT seconds with nothing to do. One worker at a
    time (its lock); a segment that fails is left to PostgreSQL's own call, which archives it and reports why."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    spool = spool_of(config, os.path.join(folder, "x"))
    lock = _worker_lock(spool)
    if lock is None:
        return "another worker runs"
    archive = open_archive(config)
    seen, idle_since = set(), time.monotonic()  # archived (or failed) by this worker: never taken up again
    limit = int(config.get("batch") or 8)
    with lock, ThreadPoolExecutor(max_workers=int(config.get("workers") or 2)) as pool:
        while time.monotonic() - idle_since < IDLE_EXIT:
            ready = ready_segments(folder)
            forget_marks(spool, set(ready))
            todo = [name for name in ready if name not in seen][:limit]
            if not todo:
                time.sleep(0.02)
                continue
            seen.update(todo)
            futures = [(name, pool.submit(archive.push, os.path.join(folder, name), name)) for name in todo]
            for name, future in futures:
                try:
                    future.result()
                except Exception:  # pylint: disable=broad-except  # PostgreSQL's own call archives and reports it
                    continue
                leave_mark(spool, name)
            idle_since = time.monotonic()
    return "drained"


def forget_marks(spool, ready):
    """Remove the marks of segments PostgreSQL no longer waits to archive (archived meanwhile by its own call)."""
    for entry in os.listdir(spool):
        if entry.endswith(MARK) and entry[:-len(MARK)] not in ready:
            try:
                os.unlink(os.path.join(spool, entry))
            except FileNotFoundError:
                pass


def _prefetch_folder(path):
    return os.path.join(os.path.dirname(os.path.abspath(path)), PREFETCH)


def take_prefetched(name, path):
    """True when the prefetch worker already fetched (and proved) `name`: it is renamed into place."""
    try:
        os.rename(os.path.join(_prefetch_folder(path), name), path)
    except FileNotFoundError:
        return False
    return True


def fetch(config, name, path, config_path=None, launcher=None):
    """restore_command: the file from the archive, proven against its digest. With prefetch, a segment fetch
    also starts a detached worker that fetches the next segments of the timeline ahead, while replay runs."""
    ahead = int(config.get("prefetch") or 0)
    if ahead and len(name) == 24 and config_path and launcher:
        folder = _prefetch_folder(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not worker_running(folder):
            _spawn([sys.executable, launcher, "prefetch", "--config", config_path, name, folder], folder)
    return open_archive(config, for_fetch=True).fetch(name, path)


def prefetch(config, first, folder):
    """keel-wal prefetch: fetch the segments after `first` on its timeline into `folder`, keeping at most
    `prefetch` there; stop at the first one the archive does not have, or once replay stops taking them."""
    import time

    from ansible_collections.keel.ops.plugins.module_utils._postgres import wal

    lock = _worker_lock(folder)
    if lock is None:
        return "another worker runs"
    archive = open_archive(config, for_fetch=True)
    size = (archive.info() or {}).get("segment_size") or wal.DEFAULT_SEGMENT_SIZE
    timeline, segno = wal.parse_segment(first, size)
    ahead, idle_since = int(config.get("prefetch") or 8), time.monotonic()
    with lock:
        while time.monotonic() - idle_since < IDLE_EXIT * 5 and os.path.isdir(folder):
            waiting = [entry for entry in os.listdir(folder) if len(entry) == 24]
            if len(waiting) >= ahead:
                time.sleep(0.01)
                continue
            segno += 1
            name = wal.segment_name(timeline, segno, size)
            if not archive.fetch(name, os.path.join(folder, name)):
                return "end of the archive"
            idle_since = time.monotonic()
    return "stopped"


def selftest(config):
    """Everything a push needs, proven as the user that will run it: the libraries, the configuration, and a
    write and a delete in the repository."""
    archive = open_archive(config, for_fetch=True)
    probe = archive.key("selftest", "%s-%d" % (os.uname()[1], os.getpid()))
    archive.storage.put(probe, b"keel-wal selftest\n")
    archive.storage.delete([probe])
    return "ok"


def main(argv, stderr=None, launcher=None):
    """The whole command: an exit status, and one line on stderr (the server log) when something is wrong."""
    stderr = stderr or sys.stderr
    try:
        action, config_path, operands = parse_args(argv)
        if action == "push" and take_mark(os.path.join(os.path.dirname(os.path.abspath(operands[0])), "keel-spool"),
                                          operands[1]):
            return EXIT_OK  # archived ahead by the async worker (a mark is only left once the segment is durable)
        if action == "fetch" and len(operands[0]) == 24 and take_prefetched(*operands):
            return EXIT_OK  # fetched and proven ahead by the prefetch worker
        config = load_config(config_path)
        if action == "push":
            push(config, operands[0], operands[1], config_path, launcher or os.path.abspath(sys.argv[0]))
            return EXIT_OK
        if action == "drain":
            drain(config, operands[0])
            return EXIT_OK
        if action == "fetch":
            found = fetch(config, operands[0], operands[1], config_path, launcher or os.path.abspath(sys.argv[0]))
            return EXIT_OK if found else EXIT_MISSING
        if action == "prefetch":
            prefetch(config, operands[0], operands[1])
            return EXIT_OK
        stderr.write("keel-wal selftest: %s\n" % selftest(config))
        return EXIT_OK
    except CommandError as error:
        stderr.write("keel-wal: %s\n" % error)
        return EXIT_FATAL
    except Exception as error:  # pylint: disable=broad-except  # the server log gets one line, never a traceback
        stderr.write("keel-wal %s: %s: %s\n" % (argv[0] if argv else "", type(error).__name__, error))
        return EXIT_FATAL if argv and argv[0] == "fetch" else EXIT_MISSING
