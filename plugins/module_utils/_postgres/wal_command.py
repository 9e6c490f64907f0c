# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command PostgreSQL runs as archive_command and restore_command (keel-wal), its configuration file, and its
installation on the database host.

    keel-wal push  --config FILE %p %f      archive_command: 0 once the file is durable in the repository
    keel-wal fetch --config FILE %f %p      restore_command: 0 fetched, 1 not archived, 126 cannot be trusted
    keel-wal selftest --config FILE         what pg_wal_archive runs as the server's user before enabling it

The configuration file (0600, owned by the server's user) holds the repository, its credentials and the public
keys to encrypt to; nothing secret is ever on the command line or in the server log. Exit status 126 makes
PostgreSQL stop recovery instead of taking a damaged or unreachable archive for its end, which would promote the
server early and silently lose the transactions after that point.

In async mode a push also archives the next segments PostgreSQL has marked ready (pg_wal/archive_status), on
worker threads, and leaves a mark for each in the spool directory; PostgreSQL's later call for one of them finds
its mark and returns at once, before importing anything heavy. The mark is written only after the segment is
durable, so it never acknowledges WAL that is not in the repository.
"""

import json
import os
import sys

EXIT_OK, EXIT_MISSING, EXIT_FATAL = 0, 1, 126
USAGE = ("usage: keel-wal push --config FILE PATH NAME | keel-wal fetch --config FILE NAME PATH | "
         "keel-wal selftest --config FILE")
MARK = ".ok"


class CommandError(Exception):
    """A wrong invocation or configuration of keel-wal."""


def parse_args(argv):
    """(action, config path, operands) from keel-wal's argv."""
    if len(argv) < 3 or argv[1] != "--config" or argv[0] not in ("push", "fetch", "selftest"):
        raise CommandError(USAGE)
    action, path, operands = argv[0], argv[2], argv[3:]
    if len(operands) != (0 if action == "selftest" else 2):
        raise CommandError(USAGE)
    return action, path, operands


def load_config(path):
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
    from ansible_collections.keel.ops.plugins.module_utils._backup import encryption
    from ansible_collections.keel.ops.plugins.module_utils._backup.storage.url import open_storage
    from ansible_collections.keel.ops.plugins.module_utils._postgres.wal_archive import WalArchive

    recipients = [encryption.parse_recipient(text, "encryption_recipients[%d]" % index)
                  for index, text in enumerate(config.get("encryption_recipients") or [])]
    identities = []
    if for_fetch and config.get("decryption_identity_file"):
        with open(config["decryption_identity_file"], encoding="utf-8") as handle:
            identities = encryption.parse_identities(handle.read(), config["decryption_identity_file"])
    return WalArchive(open_storage(config["repository"], config.get("s3")), config["source"],
                      algorithm=config.get("compression") or "zstd", level=config.get("compression_level") or 1,
                      recipients=recipients, identities=identities, threads=config.get("threads", -1))


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


def ready_after(path, name, limit):
    """The segments PostgreSQL has marked ready to archive after `name`, oldest first, at most `limit`."""
    status = os.path.join(os.path.dirname(os.path.abspath(path)), "archive_status")
    try:
        entries = os.listdir(status)
    except OSError:
        return []
    ready = sorted(entry[:-len(".ready")] for entry in entries
                   if entry.endswith(".ready") and len(entry) == 24 + len(".ready") and entry[:24] > name)
    return ready[:limit]


def push(config, path, name):
    """archive_command: sync, or async with a batch archived ahead on worker threads."""
    batch = int(config.get("batch") or 1) if config.get("async") else 1
    spool = spool_of(config, path)
    if batch > 1 and take_mark(spool, name):
        return "archived ahead"
    archive = open_archive(config)
    if batch <= 1:
        return archive.push(path, name)
    from concurrent.futures import ThreadPoolExecutor

    ahead = ready_after(path, name, batch - 1)
    folder = os.path.dirname(os.path.abspath(path))
    with ThreadPoolExecutor(max_workers=int(config.get("workers") or 2)) as pool:
        first = pool.submit(archive.push, path, name)
        others = [(other, pool.submit(archive.push, os.path.join(folder, other), other)) for other in ahead]
        outcome = first.result()
        for other, future in others:
            try:
                future.result()
            except Exception:  # pylint: disable=broad-except  # PostgreSQL's own call for it retries and reports
                continue
            leave_mark(spool, other)
    return outcome


def fetch(config, name, path):
    return open_archive(config, for_fetch=True).fetch(name, path)


def selftest(config):
    """Everything a push needs, proven as the user that will run it: the libraries, the configuration, and a
    write and a delete in the repository."""
    archive = open_archive(config, for_fetch=True)
    probe = archive.key("selftest", "%s-%d" % (os.uname()[1], os.getpid()))
    archive.storage.put(probe, b"keel-wal selftest\n")
    archive.storage.delete([probe])
    return "ok"


def main(argv, stderr=None):
    """The whole command: an exit status, and one line on stderr (the server log) when something is wrong."""
    stderr = stderr or sys.stderr
    try:
        action, config_path, operands = parse_args(argv)
        config = load_config(config_path)
        if action == "push":
            push(config, *operands)
            return EXIT_OK
        if action == "fetch":
            return EXIT_OK if fetch(config, *operands) else EXIT_MISSING
        stderr.write("keel-wal selftest: %s\n" % selftest(config))
        return EXIT_OK
    except CommandError as error:
        stderr.write("keel-wal: %s\n" % error)
        return EXIT_FATAL
    except Exception as error:  # pylint: disable=broad-except  # the server log gets one line, never a traceback
        stderr.write("keel-wal %s: %s: %s\n" % (argv[0] if argv else "", type(error).__name__, error))
        return EXIT_FATAL if argv and argv[0] == "fetch" else EXIT_MISSING
