"""The drill history kept in the repository: one object per host, appended, cleaned, never outside drills/."""

import json

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.storage.local import LocalStorage
from ansible_collections.keel.ops.plugins.module_utils._dr.history import history_key, record
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError


@pytest.fixture
def storage(tmp_path):
    return LocalStorage(str(tmp_path))


def entry(drill_id, result="passed"):
    return {"id": drill_id, "started": "2026-12-02T05:00:00Z", "result": result, "rto_seconds": 1.0,
            "rpo_seconds": 60.0}


def test_entries_are_appended_per_host_and_kept_to_the_limit(storage, tmp_path):
    for number in range(4):
        history, changed = record(storage, "db1", entry("d%d" % number), keep=3)
        assert changed is True
    assert [item["id"] for item in history] == ["d1", "d2", "d3"]
    assert record(storage, "db1") == (history, False)
    assert record(storage, "cache1") == ([], False), "another host has its own history"
    assert json.loads((tmp_path / "drills" / "db1.json").read_text()) == history


def test_check_mode_writes_nothing_and_host_names_are_data(storage, tmp_path):
    history, changed = record(storage, "../../etc/passwd", entry("d1"), check_mode=True)
    assert changed is True and history == [entry("d1")] and not (tmp_path / "drills").exists()
    assert history_key("../../etc/passwd") == "drills/.._.._etc_passwd.json"
    with pytest.raises(ConfigError, match="host must name"):
        history_key("..")
    with pytest.raises(ConfigError, match="entry must be"):
        record(storage, "db1", {"result": "passed"})


def test_a_damaged_history_is_reported_and_started_afresh(storage, tmp_path):
    (tmp_path / "drills").mkdir()
    (tmp_path / "drills" / "db1.json").write_text("{not json")
    warnings = []
    history, _changed = record(storage, "db1", entry("d9"), warn=warnings.append)
    assert history == [entry("d9")] and "is not JSON" in warnings[0]
    (tmp_path / "drills" / "db1.json").write_text(json.dumps([entry("d1"), "junk", {"id": 3}]))
    assert record(storage, "db1")[0] == [entry("d1")]
