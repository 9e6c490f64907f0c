"""Compression in the pipeline: zstd and gzip shrink, truncation is caught, levels are checked."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup import compression
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, IntegrityError

from .helpers import DATA, load, store


def test_compression_shrinks_compressible_data():
    stored, _raw, _size, _digest = store(b"x" * 10 ** 6, "zstd")
    assert len(stored) < 1000


@pytest.mark.parametrize("algorithm", ["zstd", "gzip"])
def test_truncated_compressed_stream_is_detected(algorithm):
    stored, _raw, _size, _digest = store(DATA, algorithm)
    with pytest.raises(IntegrityError, match="truncated|does not decompress"):
        load(stored[:-100], algorithm)


@pytest.mark.parametrize("algorithm, level, message", [
    ("lz4", None, "compression must be one of zstd, gzip, none"),
    ("zstd", 23, "compression_level for zstd must be 1 to 22"),
    ("gzip", 0, "compression_level for gzip must be 1 to 9"),
    ("none", 3, "compression_level needs a compression"),
])
def test_compression_validation(algorithm, level, message):
    with pytest.raises(ConfigError, match=message):
        compression.validate_compression(algorithm, level)


def test_default_levels():
    assert compression.validate_compression("zstd", None) == 1 and compression.validate_compression("gzip", None) == 6
