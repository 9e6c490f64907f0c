"""What a killed rollout left, repaired by the next run (or refused with the exact cleanup), at every kill point."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._rollout.repair import process_owner

from .fakes import NEW, Killed, World


KILL_POINTS = ["write_record:app-1", "drain:app-1", "stop:app-1", "rename:app-1", "clone:app-1-keel-old",
               "start:app-1", "enable:app-1", "remove:app-1-keel-old"]


def killed(kill, image=NEW, **options):
    """A world whose rollout was killed right after `kill` did its work, and a new process to run it again."""
    world = World(image=image, **options)
    target = world.lb if kill.split(":")[0] in ("drain", "enable") else world.engine
    target.kill = kill
    try:
        world.run()
    except Killed:
        pass
    assert world.engine.process.dead, "the kill happened"
    target.kill = None
    world.restart()
    return world


@pytest.mark.parametrize("kill", KILL_POINTS)
@pytest.mark.parametrize("names", [None, ["app-1", "app-2", "app-3", "app-4"]], ids=["labels", "names"])
def test_the_next_run_repairs_whatever_a_kill_left_and_then_rolls_out(kill, names):
    world = killed(kill)
    result, failure = world.run(names)
    assert failure == ""
    assert result["repaired"] == ["app-1"] and result["not_serving"] == []
    assert result["updated"] == ["app-1", "app-2", "app-3", "app-4"][1 if kill.startswith("remove") else 0:]
    assert world.engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 5))
    assert world.lb.states == dict(("app-%d" % i, "ready") for i in range(1, 5))
    assert world.engine.kept == {}
    assert any(text.startswith("app-1 was left mid-replacement by an interrupted rollout") and "repaired" in text
               for text in world.warnings), world.warnings


def test_a_server_in_maintenance_before_the_killed_run_stays_in_maintenance_after_the_repair():
    world = World()
    world.lb.states["app-1"] = "maint"
    world.engine.kill = "rename:app-1"
    with pytest.raises(Killed):
        world.run()
    world.engine.kill = None
    world.restart()
    result, failure = world.run()
    assert failure == "" and result["repaired"] == ["app-1"]
    assert world.lb.states["app-1"] == "maint"


def test_check_mode_reports_the_repair_and_changes_nothing():
    world = killed("rename:app-1")
    before = dict(world.engine.containers)
    assert world.rollout.repair(None, None, check_mode=True) == ["app-1"]
    assert world.engine.containers == before and world.lb.states["app-1"] == "maint"
    assert world.warnings == ["app-1 was left mid-replacement by an interrupted rollout; the run repairs it first"]


def test_a_leftover_without_its_record_is_renamed_back_when_nothing_holds_the_name():
    """A record removed by hand (docker volume prune), or a leftover of a version without records."""
    world = killed("rename:app-1")
    world.engine.kept.clear()
    result, failure = world.run()
    assert failure == "" and result["repaired"] == ["app-1"]
    assert world.engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 5))
    assert set(world.lb.states.values()) == {"ready"}


def test_a_leftover_next_to_its_name_without_a_record_is_refused_with_the_commands():
    world = killed("start:app-1")
    world.engine.kept.clear()
    before = dict(world.engine.containers)
    with pytest.raises(ConfigError) as refused:
        world.run()
    assert str(refused.value) == (
        "an interrupted rollout left containers that cannot be repaired safely: app-1: app-1-keel-old exists next "
        "to app-1 and no rollout record tells what was being replaced; if app-1 serves correctly, run docker rm -f "
        "app-1-keel-old; otherwise run docker rm -f app-1 && docker rename app-1-keel-old app-1 && docker start "
        "app-1. Put its server back in the load balancer if it is out (enable app-1 by hand), then run again")
    assert world.engine.containers == before


def test_a_record_whose_containers_are_both_gone_is_refused():
    world = killed("rename:app-1")
    del world.engine.containers[world.engine.by_name("app-1-keel-old")]
    with pytest.raises(ConfigError, match="app-1: the rollout record of an interrupted run names it, but neither "
                                          "app-1 nor app-1-keel-old exists; recreate app-1"):
        world.run()


def test_a_record_of_a_rollout_still_running_is_refused():
    world = killed("rename:app-1")
    world.engine.kept["app-1"]["owner"] = process_owner()  # this very process: alive
    with pytest.raises(ConfigError, match="app-1 is being replaced right now by another rolling_update"):
        world.run()


def test_a_record_outside_the_selection_is_left_alone():
    world = killed("rename:app-1")
    result, failure = world.run(names=["app-2"])
    assert failure == "" and result["repaired"] == [] and result["updated"] == ["app-2"]
    assert "app-1" in world.engine.kept and world.engine.by_name("app-1-keel-old")


def test_an_instance_left_out_of_the_load_balancer_keeps_its_record_and_the_next_run_repairs_it():
    world = World()
    world.lb.fail = {"enable:app-1": 99}
    result, failure = world.run()
    assert result["failed_instances"] == ["app-1"] and "the next run repairs it" in failure
    assert world.engine.kept["app-1"]["lb_before"] == "ready"
    world.lb.fail = {}
    world.restart()
    result, failure = world.run()
    assert failure == "" and result["repaired"] == ["app-1"]
    assert result["updated"] == ["app-1", "app-2", "app-3", "app-4"] and set(world.lb.states.values()) == {"ready"}
