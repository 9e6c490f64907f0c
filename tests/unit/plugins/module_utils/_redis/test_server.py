"""Which redis-server binary reads and writes which RDB versions."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import DependencyError
from ansible_collections.keel.ops.plugins.module_utils._redis import server as redis_server


def fake_binary(tmp_path, version):
    path = tmp_path / ("redis-%s" % version)
    path.write_text("#!/bin/sh\necho 'Redis server v=%s sha=00000000:0 malloc=libc bits=64'\n" % version)
    path.chmod(0o755)
    return str(path)


def test_find_binary_picks_one_that_reads_and_writes_the_right_rdb_versions(tmp_path):
    old, new = fake_binary(tmp_path, "6.2.14"), fake_binary(tmp_path, "7.0.15")
    assert redis_server.find_binary(None, [old, new], min_rdb=10).version == (7, 0, 15)
    assert redis_server.find_binary(None, [new, old], min_rdb=9, max_rdb=9).version == (6, 2, 14)
    with pytest.raises(DependencyError, match=r"reading RDB version 11 .*redis-6.2.14 \(6.2.14\)"):
        redis_server.find_binary(old, [], min_rdb=11)
