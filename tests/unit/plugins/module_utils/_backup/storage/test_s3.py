"""The S3 writer's part sizes (the backend itself runs against moto in tests/integration/test_storage.py).
"""

from ansible_collections.keel.ops.plugins.module_utils._backup.storage import s3


def test_s3_parts_grow_so_large_objects_fit_the_part_limit():
    writer = s3._S3Writer.__new__(s3._S3Writer)
    writer._storage = type("S", (), {"part_size": 8 * 1024 * 1024})()
    sizes = []
    for count in (0, 999, 1000, 2000, 4000, 9999):
        writer._parts = [None] * count
        sizes.append(writer._part_size() // (1024 * 1024))
    assert sizes == [8, 8, 16, 32, 128, 128]
    total = sum(min(8 << (n // 1000), 128) for n in range(s3.MAX_PARTS))
    assert total > 860 * 1024  # MiB: about 867 GiB in one object
