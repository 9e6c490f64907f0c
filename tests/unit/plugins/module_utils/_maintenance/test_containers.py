"""Which stopped containers and dangling images container_prune removes, and which it keeps and why."""

import datetime

from ansible_collections.keel.ops.plugins.module_utils._maintenance.containers import (
    container_plan, image_plan, parse_time, protected, prune)

NOW = datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.timezone.utc)


def container(name, status="exited", hours=48.0, labels=None, image_id="img1"):
    return {"id": name + "-id", "name": name, "image": "app:1", "image_id": image_id, "status": status,
            "finished": NOW - datetime.timedelta(hours=hours) if status != "created" else None,
            "created": NOW - datetime.timedelta(hours=hours + 1), "labels": labels or {}, "bytes": 100}


def test_engine_timestamps_are_read_with_nanoseconds_zones_and_the_zero_time():
    assert parse_time("2026-12-06T02:59:59.123456789Z") == datetime.datetime(2026, 12, 6, 2, 59, 59,
                                                                             tzinfo=datetime.timezone.utc)
    assert parse_time("2026-12-06T04:59:59.5+02:00") == datetime.datetime(2026, 12, 6, 2, 59, 59,
                                                                          tzinfo=datetime.timezone.utc)
    assert parse_time("2026-12-06T02:59:59Z").tzinfo is not None
    assert parse_time("0001-01-01T00:00:00Z") is None and parse_time("") is None
    assert parse_time(0) == datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def test_the_protection_label_counts_unless_its_value_says_no():
    assert protected({"keel.ops.protect": "true"}, "keel.ops.protect")
    assert protected({"keel.ops.protect": "db"}, "keel.ops.protect")
    assert not protected({"keel.ops.protect": "False"}, "keel.ops.protect")
    assert not protected({}, "keel.ops.protect") and not protected(None, "keel.ops.protect")


def test_old_stopped_unprotected_containers_go_and_the_rest_stay_with_a_reason():
    items = [container("old"), container("recent", hours=2), container("never", status="created", hours=30),
             container("guarded", labels={"keel.ops.protect": "1"}), container("up", status="running")]
    remove, kept = container_plan(items, "keel.ops.protect", 24, NOW)
    assert [c["name"] for c in remove] == ["old", "never"]
    reasons = dict((c["name"], c["reason"]) for c in kept)
    assert sorted(reasons) == ["guarded", "recent"] and "2.0 hours ago" in reasons["recent"]


def test_dangling_images_in_use_or_protected_stay():
    images = [{"id": "a", "bytes": 5, "created": None, "labels": {}},
              {"id": "b", "bytes": 5, "created": None, "labels": {"keel.ops.protect": "yes"}},
              {"id": "c", "bytes": 5, "created": None, "labels": {}}]
    remove, kept = image_plan(images, "keel.ops.protect", in_use={"c"})
    assert [i["id"] for i in remove] == ["a"] and [(i["id"], i["reason"]) for i in kept] == [
        ("b", "carries the protection label keel.ops.protect"), ("c", "a container still uses it")]


class FakeEngine:
    """Stands in for the engine API in a unit test of the plan; the integration tests use Podman."""

    def __init__(self, containers, images, refuse=()):
        self._containers, self._images, self.refuse, self.removed = containers, images, refuse, []

    def containers(self, labels=None):
        return self._containers

    def dangling_images(self, labels=None):
        return self._images

    def remove(self, entry):
        if entry["id"] in self.refuse:
            return dict(entry, reason="in use"), False
        self.removed.append(entry["id"])
        return entry, True


def test_an_image_freed_by_a_pruned_container_goes_too_and_refusals_are_skipped():
    engine = FakeEngine([container("old", image_id="i1"), container("up", status="running", image_id="i2")],
                        [{"id": "i1", "bytes": 7, "created": None, "labels": {}},
                         {"id": "i2", "bytes": 9, "created": None, "labels": {}}], refuse=("old-id",))
    options = dict(containers=True, images=True, protect_label="keel.ops.protect", older_than_hours=24)
    planned = prune(engine, options, check_mode=True, now=NOW)
    assert [e["id"] for e in planned["removed"]] == ["old-id", "i1"] and planned["reclaimed"] == 107
    assert engine.removed == []
    done = prune(engine, options, now=NOW)
    assert engine.removed == ["i1"] and [e["id"] for e in done["skipped"]] == ["old-id"] and done["reclaimed"] == 7
