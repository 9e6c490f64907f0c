import datetime

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import Backup
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import BackupNotFound
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._postgres import physical_restore


def _backup(backup_id, finished, end_lsn, tablespaces=()):
    return Backup({"id": backup_id, "finished": finished, "artifacts": [],
                   "statistics": {"end_lsn": end_lsn, "tablespaces": list(tablespaces)}})


BACKUPS = [_backup("20261202T020000000Z-bbbbbb", "2026-12-02T02:00:40Z", "0/9000100"),
           _backup("20261201T020000000Z-aaaaaa", "2026-12-01T02:00:30Z", "0/5000100")]


def test_a_time_target_picks_the_newest_backup_consistent_before_it():
    target = physical_restore.target_of({"target": "time", "target_time": "2026-12-02T02:00:35Z"})
    assert target["value"] == "2026-12-02 02:00:35.000000+00"
    assert physical_restore.choose_backup(BACKUPS, target).id == "20261201T020000000Z-aaaaaa"
    later = physical_restore.target_of({"target": "time", "target_time": "2026-12-02 03:00:00+01:00"})
    assert later["moment"] == datetime.datetime(2026, 12, 2, 2, 0, tzinfo=datetime.timezone.utc)


def test_an_lsn_target_picks_the_newest_backup_ending_at_or_before_it():
    target = physical_restore.target_of({"target": "lsn", "target_lsn": "0/8FFFFFF"})
    assert physical_restore.choose_backup(BACKUPS, target).id == "20261201T020000000Z-aaaaaa"
    assert physical_restore.choose_backup(BACKUPS, physical_restore.target_of({"target": "latest"})) is BACKUPS[0]


def test_a_target_before_every_backup_says_how_far_back_a_restore_can_go():
    target = physical_restore.target_of({"target": "time", "target_time": "2026-11-30T00:00:00Z"})
    with pytest.raises(BackupNotFound, match="earliest point a restore can reach is 2026-12-01T02:00:30Z"):
        physical_restore.choose_backup(BACKUPS, target)


@pytest.mark.parametrize("params,message", [
    ({"target": "time"}, "needs target_time"),
    ({"target": "latest", "target_lsn": "0/1"}, "only applies with target: lsn"),
    ({"target": "lsn", "target_lsn": "bad"}, "0/3000028"),
    ({"target": "name", "target_name": "x" * 64}, "at most 63"),
])
def test_bad_targets_are_refused_with_what_to_give(params, message):
    with pytest.raises(ConfigError, match=message):
        physical_restore.target_of(params)


def test_tablespaces_go_where_the_mapping_says_and_never_into_a_full_directory(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "PG_18_x").mkdir()
    backup = _backup("20261202T020000000Z-bbbbbb", "2026-12-02T02:00:40Z", "0/9000100",
                     tablespaces=[{"oid": "16400", "name": "fast", "location": str(busy)}])
    with pytest.raises(ConfigError, match="tablespace_mapping"):
        physical_restore.tablespace_locations(backup, None)
    assert physical_restore.tablespace_locations(backup, {"fast": str(tmp_path / "new")}) == \
        {"16400": str(tmp_path / "new")}
    with pytest.raises(ConfigError, match="absolute path"):
        physical_restore.tablespace_locations(backup, {str(busy): "relative"})
