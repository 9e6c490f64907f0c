"""The storage interface's helpers.
"""

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import base


def test_human_size():
    assert base.human_size(12) == "12 bytes"
    assert base.human_size(3 * 1024 * 1024) == "3.0 MiB"
    assert base.human_size(5 * 1024 ** 4) == "5120.0 GiB"
