"""Load balancers in a group: drained on each, enabled on all despite one failing."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import LoadBalancerError, LoadBalancerGroup

from .fakes import FakeLoadBalancer


def test_a_group_of_load_balancers_drains_on_each_and_enables_on_all_despite_one_failing():
    first, second = FakeLoadBalancer(["app-1"]), FakeLoadBalancer(["app-1"])
    group = LoadBalancerGroup([first, second])
    group.preflight(["app-1"])
    assert group.drain("app-1") == 0
    assert first.states == second.states == {"app-1": "maint"}
    first.fail = {"enable": 1}
    with pytest.raises(LoadBalancerError, match="broke during enable of app-1"):
        group.enable("app-1")
    assert second.states["app-1"] == "ready", "the second one is enabled anyway"
    assert group.hint("app-1") == "enable app-1 by hand; enable app-1 by hand"
