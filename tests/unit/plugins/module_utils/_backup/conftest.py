"""Fixtures of the _backup unit tests."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.repository import Repository
from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage


@pytest.fixture
def repo(tmp_path):
    return Repository(LocalStorage(str(tmp_path / "repo")), "postgres", "db1")
