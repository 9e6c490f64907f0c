"""What the info modules list from a local repository: every source newest first, the filters, the age of the
newest backup and whether it is stale."""

import datetime
import os

import pytest

from ansible_collections.keel.ops.plugins.module_utils._backup.config import Reporter
from ansible_collections.keel.ops.plugins.module_utils._backup.listing import describe_repository
from ansible_collections.keel.ops.plugins.module_utils._backup.manifest import new_backup_id, utcnow
from ansible_collections.keel.ops.plugins.module_utils._backup.repository import Repository
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

from .helpers import make_backup


def hours_ago(hours):
    return new_backup_id(utcnow() - datetime.timedelta(hours=hours))


@pytest.fixture
def backups(repo):
    """db1: 5 and 30 hours old (the older one verified and labelled); db2: 10 hours old."""
    other = Repository(repo.storage, "postgres", "db2")
    ids = dict(recent=make_backup(repo, backup_id=hours_ago(5), labels={"env": "prod"}),
               old=make_backup(repo, backup_id=hours_ago(30), labels={"env": "prod", "kind": "weekly"}),
               other=make_backup(other, backup_id=hours_ago(10), labels={"env": "test"}))
    repo.record_verification(ids["old"], {"time": "2026-01-01T00:00:00Z", "ok": True})
    return ids


def describe(repo, reporter=None, **params):
    return describe_repository(dict(params, repository=repo.storage.root), "postgres", reporter or Reporter())


def test_every_source_is_listed_newest_first_with_the_age_of_the_newest(repo, backups):
    found, age, stale = describe(repo, max_age=24)
    assert [backup.id for backup in found] == [backups["recent"], backups["other"], backups["old"]]
    assert abs(age - 5) < 0.1 and stale is False


def test_a_newest_backup_older_than_max_age_is_stale_and_warned_about(repo, backups):
    reporter = Reporter()
    found, age, stale = describe(repo, reporter, source="db2", max_age=2)
    assert [backup.id for backup in found] == [backups["other"]] and abs(age - 10) < 0.1 and stale is True
    assert reporter.warnings == ["the newest backup (%s) is %.1f hours old, more than max_age 2"
                                 % (backups["other"], age)]


def test_an_empty_repository_is_stale_only_when_a_max_age_is_asked_for(repo):
    reporter = Reporter()
    assert describe(repo, reporter) == ([], None, False) and reporter.warnings == []
    assert describe(repo, reporter, max_age=24) == ([], None, True)
    assert reporter.warnings == ["no backup in %s matches" % repo.storage.root]


@pytest.mark.parametrize("filters, expected", [
    (dict(labels={"env": "prod"}), ["recent", "old"]),
    (dict(labels={"env": "prod", "kind": "weekly"}), ["old"]),
    (dict(verified=True), ["old"]),
    (dict(verified=False), ["recent", "other"]),
    (dict(since=(utcnow() - datetime.timedelta(hours=12)).isoformat()), ["recent", "other"]),
    (dict(limit=2), ["recent", "other"]),
])
def test_filters_select_backups_and_the_age_is_that_of_the_newest_selected(repo, backups, filters, expected):
    found, age, _stale = describe(repo, **filters)
    assert [backup.id for backup in found] == [backups[name] for name in expected]
    assert (age is None) == (expected == [])


def test_limit_0_lists_none_but_still_tells_the_age_of_the_newest(repo, backups):
    found, age, stale = describe(repo, limit=0, max_age=24)
    assert found == [] and abs(age - 5) < 0.1 and stale is False


def test_a_negative_limit_is_refused(repo, backups):
    with pytest.raises(ConfigError, match="^limit: -1 is negative; give the number of backups to list"):
        describe(repo, limit=-1)


def test_a_wanted_predicate_narrows_the_listing_further(repo, backups):
    found, age, _stale = describe_repository(dict(repository=repo.storage.root), "postgres", Reporter(),
                                             wanted=lambda backup: backup.id == backups["old"])
    assert [backup.id for backup in found] == [backups["old"]] and abs(age - 30) < 0.1


def test_a_folder_that_is_not_a_source_name_is_skipped_with_a_warning(repo, backups):
    stray = os.path.join(repo.storage.root, "postgres", "not a source")
    os.makedirs(stray)
    with open(os.path.join(stray, "notes.txt"), "w") as handle:
        handle.write("left here by hand")
    reporter = Reporter()
    found, _age, _stale = describe(repo, reporter)
    assert len(found) == 3
    assert reporter.warnings == ["skipped 'not a source' in %s: not a source folder keel.ops writes"
                                 % os.path.join(repo.storage.root, "postgres")]
