"""Rollouts run against in-memory fakes of the container engine and the load balancer: batches, pauses,
failures at every step, tolerance, interrupts, and the final check that every instance serves."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import (
    OLD_SUFFIX,
    LoadBalancerError,
    LoadBalancerGroup,
    TargetImage,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.run import plan_results

from .fakes import BROKEN, NEW, OLD, FakeLoadBalancer, World, by_name, run_all


def test_happy_rollout_updates_everyone_in_order_and_cleans_up():
    engine, lb, result, failure, warnings = run_all()
    assert failure == "" and warnings == []
    assert engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 5))
    assert set(lb.states.values()) == {"ready"}
    assert result["updated"] == ["app-1", "app-2", "app-3", "app-4"] and result["changed"] is True
    first = by_name(result)["app-1"]
    assert first["old_image"] == OLD and first["new_image"] == NEW and first["result"] == "updated"
    assert set(first["timings"]) == {"drain", "stop", "start", "healthy", "enable", "total"}
    # Drained before it stops, back in rotation only after it is healthy, one instance at a time.
    assert lb.calls[:3] == [("drain", "app-1"), ("enable", "app-1"), ("wait_serving", "app-1")]
    first_calls = [call for call in engine.calls if call[1].startswith("app-1")][:3]
    assert first_calls == [("write_record", "app-1"), ("stop", "app-1"), ("rename", "app-1")]
    assert engine.kept == {} and result["repaired"] == [] and result["not_serving"] == []


def test_batches_run_in_parallel_and_pause_between_them():
    engine, lb, result, failure, _warnings = run_all(count=5, batch_size=2, pause=7)
    assert failure == ""
    assert result["plan"]["batches"] == [["app-1", "app-2"], ["app-3", "app-4"], ["app-5"]]
    assert [item["batch"] for item in result["instances"]] == [1, 1, 2, 2, 3]
    assert engine.serving() == dict(("app-%d" % i, NEW) for i in range(1, 6))


def test_pause_is_not_taken_after_the_last_batch():
    world = World(count=2, pause=7)
    world.run()
    assert world.clock.sleeps.count(7) == 1


def test_broken_image_stops_after_the_first_batch_and_restores_it():
    engine, lb, result, failure, _warnings = run_all(image=BROKEN)
    assert engine.serving() == dict(("app-%d" % i, OLD) for i in range(1, 5))
    assert engine.by_name("app-1") == "c1", "the old container itself serves again"
    assert set(lb.states.values()) == {"ready"}
    assert result["rolled_back"] == ["app-1"] and result["not_started"] == ["app-2", "app-3", "app-4"]
    assert result["updated"] == [] and result["changed"] is False
    assert failure.startswith("rolling update to app:broken stopped after batch 1 of 4 (1 of 4 instances failed, "
                              "more than max_fail_percentage=0 allows): app-1: not healthy after")
    assert "health (http) critical: HTTP 500, expected 200" in failure
    assert "it is back on its old container (app:v1)" in failure
    assert failure.endswith("0 of 4 instances updated, 3 not started.")
    assert "rollback" in by_name(result)["app-1"]["timings"]


def test_tolerated_failure_continues_until_the_percentage_is_exceeded():
    world = World(max_fail_percentage=25)
    world.engine.fail = {"start:app-2": 1, "start:app-3": 1}
    result, failure = world.run()
    assert result["updated"] == ["app-1"] and result["rolled_back"] == ["app-2", "app-3"]
    assert result["not_started"] == ["app-4"]
    assert "stopped after batch 3 of 4 (2 of 4 instances failed, more than max_fail_percentage=25 allows)" in failure
    assert len(world.warnings) == 1 and "app-2" in world.warnings[0] and "tolerated" in world.warnings[0]
    assert world.engine.serving() == {"app-1": NEW, "app-2": OLD, "app-3": OLD, "app-4": OLD}


def test_failure_within_tolerance_finishes_the_rollout():
    world = World(max_fail_percentage=25)
    world.engine.fail = {"clone:app-3-keel-old": 1}
    result, failure = world.run()
    assert failure == ""
    assert result["updated"] == ["app-1", "app-2", "app-4"] and result["rolled_back"] == ["app-3"]


# Every step that can fail, and what must hold afterwards: the instance runs its old container under its
# name, it is back in rotation, and the failure names the instance and the cause.
FAILURES = [
    ("lb", "drain", "load balancer socket broke during drain of app-1"),
    ("engine", "stop", "engine refused stop of app-1"),
    ("engine", "rename", "engine refused rename of app-1"),
    ("engine", "clone", "engine refused clone of app-1-keel-old"),
    ("engine", "start", "engine refused start of app-1"),
    ("lb", "enable", "load balancer socket broke during enable of app-1"),
    ("lb", "wait_serving", "load balancer socket broke during wait_serving of app-1"),
]


@pytest.mark.parametrize("where, method, cause", FAILURES, ids=[f[1] for f in FAILURES])
def test_any_failing_step_leaves_the_instance_serving_and_in_rotation(where, method, cause):
    world = World()
    fake = world.lb if where == "lb" else world.engine
    fake.fail = {"%s:%s" % (method, "app-1-keel-old" if method == "clone" else "app-1"): 1}
    result, failure = world.run()
    assert world.engine.serving()["app-1"] == OLD
    assert set(world.lb.states.values()) == {"ready"}
    assert by_name(result)["app-1"]["result"] == "rolled_back"
    assert "app-1: " in failure and cause in failure


def test_a_load_balancer_that_stays_broken_fails_loudly_with_a_hint():
    world = World()
    world.lb.fail = {"drain:app-1": 1, "enable:app-1": 99}
    result, failure = world.run()
    assert by_name(result)["app-1"]["result"] == "failed" and result["failed_instances"] == ["app-1"]
    assert "failed" not in result, "Ansible's own failure flag would overwrite it"
    assert "it is still out of the load balancer, putting it back failed 4 times" in failure
    assert "put it back by hand: enable app-1 by hand" in failure
    assert "an instance could not be restored or put back in the load balancer" in failure
    assert world.engine.serving()["app-1"] == OLD, "the container itself still serves"
    assert world.clock.sleeps[:3] == [0.5, 1.0, 2.0]


def test_a_restore_that_fails_stops_the_rollout_even_when_tolerated():
    world = World(max_fail_percentage=100)
    world.engine.fail = {"start:app-1": 2}  # the new container's start, then the old one's after the rename back
    result, failure = world.run()
    assert by_name(result)["app-1"]["result"] == "failed"
    assert "restoring the old container failed: could not start the old container" in failure
    assert result["not_started"] == ["app-2", "app-3", "app-4"]
    assert world.lb.states["app-1"] == "ready", "even then it goes back in rotation"


def test_an_old_container_that_cannot_be_removed_is_a_warning():
    world = World(count=1)
    world.engine.fail = {"remove:app-1-keel-old": 1}
    result, failure = world.run()
    assert failure == "" and result["updated"] == ["app-1"]
    assert world.warnings == ["app-1 is updated but its old container app-1-keel-old could not be removed "
                              "(engine refused remove of app-1-keel-old); remove it before the next rollout"]


def test_container_healthcheck_alone_is_a_health_gate():
    engine, lb, result, failure, _warnings = run_all(count=2, checks=[], healthcheck=True)
    assert failure == "" and result["updated"] == ["app-1", "app-2"]


def test_prepare_refuses_an_instance_without_any_health_gate():
    with pytest.raises(ConfigError, match="container app-1 has no healthcheck and health_checks is empty"):
        World(checks=[]).prepare()


@pytest.mark.parametrize("change, message", [
    (dict(running=False), "container app-2 is not running"),
    (dict(auto_remove=True), "container app-2 was started with auto-remove"),
])
def test_prepare_refuses_unsafe_instances(change, message):
    world = World()
    world.engine.containers["c2"].update(change)
    with pytest.raises(ConfigError, match=message):
        world.prepare()
    assert world.engine.calls == [] and world.lb.calls == []


def test_prepare_refuses_a_leftover_of_an_interrupted_rollout():
    world = World()
    world.engine._add("app-3" + OLD_SUFFIX, OLD, running=False)
    with pytest.raises(ConfigError, match="container app-3-keel-old is left over from an interrupted rollout"):
        world.prepare()


def test_prepare_only_warns_about_a_leftover_of_an_updated_instance():
    world = World(count=1)
    world.engine.containers["c1"]["image"] = NEW
    world.engine._add("app-1" + OLD_SUFFIX, OLD, running=False)
    plan = world.plan
    runs = world.rollout.prepare(plan)
    assert "app-1-keel-old, its previous container, is left over" in world.warnings[0]
    result = plan_results(runs, plan, world.target)
    assert result["changed"] is False and result["instances"][0]["result"] == "skipped"


def test_prepare_asks_the_load_balancer_about_the_rendered_server_names():
    with pytest.raises(LoadBalancerError, match="unknown servers"):
        World(server="web-{env[PORT]}").prepare()


def test_check_mode_result_is_the_plan():
    world = World(count=3, batch_size="50%")
    plan = world.plan
    result = plan_results(world.rollout.prepare(plan), plan, world.target)
    assert result["changed"] is True and result["plan"]["batches"] == [["app-1", "app-2"], ["app-3"]]
    assert [item["result"] for item in result["instances"]] == ["planned"] * 3
    assert result["diff"] == {"before": {"app-1": OLD, "app-2": OLD, "app-3": OLD},
                              "after": {"app-1": NEW, "app-2": NEW, "app-3": NEW}}
    assert world.engine.calls == [] and world.lb.calls == []


def test_a_rollout_behind_a_pair_survives_one_broken_enable():
    world = World(count=2)
    pair = LoadBalancerGroup([world.lb, FakeLoadBalancer(["app-1", "app-2"])])
    world.rollout.lb = pair
    world.lb.fail = {"enable:app-1": 1}
    result, failure = world.run()
    assert result["rolled_back"] == ["app-1"] and "broke during enable of app-1" in failure
    assert all(set(member.states.values()) == {"ready"} for member in pair.members)


def test_a_failure_after_the_instance_is_back_in_rotation_takes_it_out_before_restoring():
    world = World(count=1)
    world.lb.fail = {"wait_serving:app-1": 1}
    result, failure = world.run()
    assert result["rolled_back"] == ["app-1"]
    steps = [call[0] for call in world.lb.calls]
    assert steps == ["drain", "enable", "wait_serving", "drain", "enable", "wait_serving"]
    assert world.engine.calls.index(("remove", "app-1")) > 0, "the new container went only after the drain"
    assert world.lb.states == {"app-1": "ready"}


def test_checks_are_rendered_for_the_container_that_runs_now():
    world = World(count=1)
    seen = []
    prober = world.rollout.gate.prober
    world.rollout.gate.prober = lambda checks, **options: seen.append(checks[0].target) or prober(checks, **options)
    clone = world.engine.clone

    def clone_on_a_new_port(instance, image_ref):
        new_id = clone(instance, image_ref)
        world.engine.containers[new_id]["env"]["PORT"] = "9999"  # a new random host port, say
        return new_id

    world.engine.clone = clone_on_a_new_port
    result, failure = world.run()
    assert failure == "" and seen == ["http://127.0.0.1:9999/app-1"]


def test_an_interrupt_restores_the_instance_in_progress_and_starts_no_other():
    world = World()
    stop = world.engine.stop

    def stop_then_signal(container_id, timeout):
        stop(container_id, timeout)
        world.rollout.interrupt("SIGTERM")  # what the module's signal handler does

    world.engine.stop = stop_then_signal
    result, failure = world.run()
    assert result["rolled_back"] == ["app-1"] and result["not_started"] == ["app-2", "app-3", "app-4"]
    assert failure.startswith("rolling update to app:v2 stopped after batch 1 of 4 (interrupted by SIGTERM): "
                              "app-1: interrupted by SIGTERM; it is back on its old container (app:v1)")
    assert world.engine.serving()["app-1"] == OLD and world.lb.states["app-1"] == "ready"


def test_an_interrupt_during_the_health_wait_ends_it():
    world = World(count=1, image=BROKEN)
    world.rollout.gate.sleep = lambda seconds: world.rollout.interrupt("SIGINT")
    result, failure = world.run()
    assert "app-1: interrupted by SIGINT while waiting for it to become healthy (critical:" in failure
    assert result["rolled_back"] == ["app-1"] and world.lb.states["app-1"] == "ready"


@pytest.mark.parametrize("late", ["rename:app-1", "clone:app-1-keel-old", "start:app-1", "stop:app-1"])
def test_a_call_that_takes_effect_then_fails_is_undone_and_leaves_nothing_behind(late):
    """A rename that times out after renaming, a create whose network connect fails (the container exists but
    its id never came back): the restore must still rename back and remove the orphan."""
    world = World()
    world.engine.late = {late: 1}
    result, failure = world.run()
    assert by_name(result)["app-1"]["result"] == "rolled_back", failure
    assert "it is back on its old container (app:v1)" in failure
    assert world.engine.serving()["app-1"] == OLD and world.engine.by_name("app-1") == "c1"
    assert set(world.lb.states.values()) == {"ready"}
    assert world.engine.kept == {}, "nothing is left to repair"


@pytest.mark.parametrize("state", ["maint", "drain"])
def test_a_server_taken_out_before_the_rollout_goes_back_to_that_state(state):
    world = World()
    world.lb.states["app-2"] = state
    result, failure = world.run()
    assert failure == "" and result["updated"] == ["app-1", "app-2", "app-3", "app-4"]
    assert world.lb.states == {"app-1": "ready", "app-2": state, "app-3": "ready", "app-4": "ready"}
    assert world.warnings == ["app-2: its load balancer server app-2 is in %s, set before this rollout and not by an "
                              "interrupted one; it is updated and left in that state" % state]


def test_the_admin_state_is_read_when_the_instance_is_taken_out_not_at_planning_time():
    world = World(count=2)
    drain = world.lb.drain

    def drain_then_operator_takes_app_2_out(server):
        if server == "app-1":
            world.lb.states["app-2"] = "maint"
        return drain(server)

    world.lb.drain = drain_then_operator_takes_app_2_out
    _result, failure = world.run()
    assert failure == "" and world.lb.states == {"app-1": "ready", "app-2": "maint"}


def test_success_is_never_reported_while_a_selected_instance_is_down():
    world = World()
    world.engine.containers["c2"].update(image=NEW, running=False)  # on the target image, but exited
    result, failure = world.run()
    assert result["updated"] == ["app-1", "app-3", "app-4"] and result["not_serving"] == ["app-2"]
    assert failure == "rolling update to app:v2: 1 of 4 selected instances do not serve: app-2: container app-2 is " \
                      "not running"


def test_nothing_to_do_still_checks_that_every_instance_serves():
    world = World(count=2, image=OLD)
    world.target = TargetImage(OLD, "id-" + OLD)
    world.lb.states["app-2"] = "maint"
    world.engine.containers["c1"]["running"] = False
    result, failure = world.run()
    assert result["changed"] is False and result["not_serving"] == ["app-1"]
    assert "app-1: container app-1 is not running" in failure and "app-2" not in failure
