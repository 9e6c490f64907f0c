"""The slow log resumed from the last report's id, including after a server restart."""

from ansible_collections.keel.ops.plugins.module_utils._maintenance.redis import slowlog_since


class SlowLog:
    """Answers SLOWLOG GET as a server does, newest first."""

    def __init__(self, ids):
        self.ids = ids

    def call(self, _action, *_args):
        return [[i, 1700000000 + i, 10, [b"GET", b"k%d" % i]] for i in sorted(self.ids, reverse=True)]


def test_only_entries_after_the_last_id_come_back_oldest_first():
    found = slowlog_since(SlowLog([3, 4, 5, 6]), after_id=4)
    assert [e["id"] for e in found["entries"]] == [5, 6] and found["last_id"] == 6 and not found["restarted"]


def test_without_an_id_everything_is_new_and_an_empty_log_keeps_the_id():
    assert [e["id"] for e in slowlog_since(SlowLog([1, 2]))["entries"]] == [1, 2]
    quiet = slowlog_since(SlowLog([]), after_id=9)
    assert quiet["entries"] == [] and quiet["last_id"] == 9 and not quiet["restarted"]


def test_ids_below_the_last_one_mean_a_restart_and_all_entries_are_new():
    found = slowlog_since(SlowLog([0, 1]), after_id=40)
    assert found["restarted"] and [e["id"] for e in found["entries"]] == [0, 1] and found["last_id"] == 1
