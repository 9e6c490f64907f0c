"""Directory artifacts as tar streams: extracted as plain data, never outside their directory."""

import io
import os
import stat
import tarfile

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup import dirstream
from ansible_collections.keel.ops.plugins.module_utils._errors import IntegrityError


def _tar_with(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, mode, data in members:
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.uid, info.gid, info.uname = mode, len(data), 0, 0, "root"
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_directory_artifacts_are_extracted_as_plain_data(tmp_path):
    """A repository is data: a directory artifact cannot plant a setuid binary or files owned by someone else."""
    writer = dirstream.DirectoryWriter(str(tmp_path / "out"))
    writer.write(_tar_with(("toc.dat", 0o4755, b"#!/bin/sh\n"), ("1.dat", 0o600, b"rows")))
    writer.close()
    info = os.stat(tmp_path / "out" / "toc.dat")
    assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID) and info.st_uid == os.getuid()
    assert (tmp_path / "out" / "1.dat").read_bytes() == b"rows"


@pytest.mark.parametrize("name", ["../escape.dat", "a/../../escape.dat", "/etc/escape.dat"])
def test_directory_artifacts_cannot_reach_outside(tmp_path, name):
    writer = dirstream.DirectoryWriter(str(tmp_path / "out"))
    with pytest.raises(IntegrityError, match="unexpected entry"):
        writer.write(_tar_with((name, 0o644, b"x")))
        writer.close()
    assert not (tmp_path / "escape.dat").exists()
