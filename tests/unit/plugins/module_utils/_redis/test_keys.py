"""DUMP/RESTORE in bulk keeps TTLs."""

from ansible_collections.keel.ops.plugins.module_utils._redis import keys as redis_keys
from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp


def test_restore_commands_keep_ttls():
    copier = redis_keys.KeyCopier(None, None, replace=True, absolute_ttl=True)
    assert copier.restore_command(b"k", -1, b"p", 1000) == redis_resp.encode("RESTORE", b"k", 0, b"p", "REPLACE")
    assert copier.restore_command(b"k", 500, b"p", 1000) == redis_resp.encode("RESTORE", b"k", 1500, b"p", "REPLACE",
                                                                              "ABSTTL")
    relative = redis_keys.KeyCopier(None, None, replace=False, absolute_ttl=False)
    assert relative.restore_command(b"k", 500, b"p\r\n", 1000) == redis_resp.encode("RESTORE", b"k", 500, b"p\r\n")
