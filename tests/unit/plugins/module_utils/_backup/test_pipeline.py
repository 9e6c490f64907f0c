"""The pipeline's streams: a backup and its restore round-trip, hashed and counted, and a failing consumer keeps
its own error."""

import hashlib
import io

import pytest
from pyrage import x25519

from ansible_collections.keel.ops.plugins.module_utils._backup import compression, encryption

from .helpers import DATA, load, store


@pytest.mark.parametrize("algorithm", compression.COMPRESSIONS)
def test_round_trip_with_and_without_encryption(algorithm):
    identity = x25519.Identity.generate()
    for recipients, identities in (((), ()), ((identity.to_public(),), (identity,))):
        stored, raw, size, digest = store(DATA, algorithm, recipients)
        assert raw == len(DATA) and size == len(stored)
        assert digest == hashlib.sha256(stored).hexdigest()
        assert load(stored, algorithm, identities) == DATA


def test_a_failing_consumer_keeps_its_own_error():
    identity = x25519.Identity.generate()
    stored, _raw, _size, _digest = store(DATA, "none", [identity.to_public()])

    class Broken:
        def write(self, data):
            raise BrokenPipeError("consumer went away")

    with pytest.raises(BrokenPipeError, match="consumer went away"):
        encryption.decrypt(io.BytesIO(stored), compression.decompressing_writer(Broken(), "none"), [identity])
