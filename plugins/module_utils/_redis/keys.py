# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DUMP/RESTORE in bulk, for restores into a running server: keys scanned in batches, pipelined PTTL/DUMP on one
side and RESTORE (with absolute TTLs where the target supports them) on the other, conflicts found first.
"""

import time

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import ReplyError


PIPELINE_BYTES = 8 * 1024 * 1024  # RESTORE commands sent at once


def _keyed(name, keys):
    """NAME key, once per key, in RESP."""
    head = b"*2\r\n$%d\r\n%s\r\n" % (len(name), name)
    return b"".join(b"%s$%d\r\n%s\r\n" % (head, len(key), key) for key in keys)


def scan_keys(resp, count=1000):
    """Batches of the keys of the connection's current database (SCAN: the temporary server is static, and was
    loaded with its final table sizes, so no key comes twice)."""
    cursor = b"0"
    while True:
        cursor, keys = resp.call("SCAN", cursor, "COUNT", count)
        if keys:
            yield keys
        if cursor == b"0":
            return


def printable_key(key):
    text = key.decode("utf-8", "backslashreplace")
    return text if len(text) <= 80 else text[:77] + "..."


def find_conflicts(batches, target, limit=10):
    """(count, first `limit` keys) of the keys in `batches` that already exist in the target database."""
    count, names = 0, []
    for keys in batches:
        for key, exists in zip(keys, target.pipeline_raw(_keyed(b"EXISTS", keys), len(keys))):
            if isinstance(exists, ReplyError):
                raise RedisError("%s refused EXISTS: %s" % (target.where, exists))
            if exists:
                count += 1
                if len(names) < limit:
                    names.append(printable_key(key))
    return count, names


class KeyCopier:
    """DUMP + PTTL from the temporary server, RESTORE into the target, pipelined, one database at a time."""

    def __init__(self, source, target, replace, absolute_ttl):
        self.source = source
        self.target = target
        self.absolute_ttl = absolute_ttl
        self.suffix = b"$7\r\nREPLACE\r\n" if replace else b""
        self.restored = 0
        self.expired = 0
        self.busy = []

    def copy(self, keys):
        """Copy a batch of keys. DUMP replies are read one key at a time and RESTOREs go out every PIPELINE_BYTES,
        so memory holds a few MB or the largest key, never the whole batch."""
        self.source.send(b"".join(b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n*2\r\n$4\r\nDUMP\r\n$%d\r\n%s\r\n"
                                  % (len(key), key, len(key), key) for key in keys))
        now_ms = int(time.time() * 1000)
        sent, commands, size = [], [], 0
        for key in keys:
            ttl, payload = self.source.replies(2)
            if payload is None or ttl == -2 or isinstance(payload, ReplyError):
                self.expired += 1  # gone since the scan: it expired
                continue
            sent.append(key)
            commands.append(self.restore_command(key, ttl, payload, now_ms))
            size += len(commands[-1])
            if size > PIPELINE_BYTES:
                self._restore(sent, commands)
                sent, commands, size = [], [], 0
        self._restore(sent, commands)

    def _restore(self, keys, commands):
        for key, reply in zip(keys, self.target.pipeline_raw(b"".join(commands), len(commands))):
            if not isinstance(reply, ReplyError):
                self.restored += 1
            elif reply.startswith("BUSYKEY"):
                self.busy.append(printable_key(key))
            else:
                raise RedisError("%s refused RESTORE of %s after %d keys were restored: %s"
                                 % (self.target.where, printable_key(key), self.restored, reply))

    def restore_command(self, key, ttl, payload, now_ms):
        """RESTORE key ttl payload [REPLACE] [ABSTTL]: the TTL absolute where the target knows ABSTTL (5.0+),
        so the time the restore takes does not stretch it."""
        suffix, words = self.suffix, 4 + bool(self.suffix)
        if ttl <= 0:
            ttl = 0
        elif self.absolute_ttl:
            ttl += now_ms
            suffix += b"$6\r\nABSTTL\r\n"
            words += 1
        ttl = b"%d" % ttl
        return (b"*%d\r\n$7\r\nRESTORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s"
                % (words, len(key), key, len(ttl), ttl, len(payload), payload, suffix))
