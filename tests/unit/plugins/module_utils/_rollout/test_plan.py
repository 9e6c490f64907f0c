"""Planning a rollout: amounts, batch sizes, natural order, tolerance, templates, selectors and options."""

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import (
    HealthConfig,
    RolloutConfig,
    batch_size_for,
    check_selector,
    exceeds_tolerance,
    natural_key,
    parse_amount,
    plan_rollout,
    render,
    render_checks,
)

from .fakes import FIELDS, NEW, instance


@pytest.mark.parametrize("value, expected", [("2", (2, False)), (3, (3, False)), ("25%", (25, True)),
                                             (" 100% ", (100, True)), ("12.5%", (12.5, True))])
def test_parse_amount(value, expected):
    assert parse_amount(value, "batch_size") == expected


@pytest.mark.parametrize("value", ["0", "-1", "0%", "101%", "abc", "2.5", ""])
def test_parse_amount_refuses(value):
    with pytest.raises(ConfigError, match="batch_size must be"):
        parse_amount(value, "batch_size")


@pytest.mark.parametrize("pending, fleet, options, expected", [
    (4, 4, {}, 1),
    (4, 4, {"batch_size": 10}, 4),           # capped at what there is to update
    (4, 4, {"batch_size": "25%"}, 1),        # exactly one instance
    (4, 4, {"batch_size": "26%"}, 2),        # 1.04 rounds up
    (3, 3, {"batch_size": "50%"}, 2),        # 1.5 rounds up
    (4, 4, {"batch_size": "1%"}, 1),
    (4, 4, {"max_unavailable": "25%"}, 1),
    (4, 4, {"max_unavailable": "49%"}, 1),   # 1.96 rounds down
    (4, 4, {"max_unavailable": "50%"}, 2),
    (4, 4, {"max_unavailable": "10%"}, 1),   # 0.4 rounds down to 0, but a batch holds at least one
    (2, 8, {"max_unavailable": "50%"}, 2),   # the percentage counts the whole fleet, capped by what is pending
    (4, 4, {"max_unavailable": 3}, 3),
    (0, 4, {"batch_size": 2}, 0),
])
def test_batch_size_boundaries(pending, fleet, options, expected):
    assert batch_size_for(pending, fleet, **options) == expected


def test_batch_size_and_max_unavailable_exclude_each_other():
    with pytest.raises(ConfigError, match="mutually exclusive"):
        batch_size_for(4, 4, batch_size=1, max_unavailable=1)


def test_plan_orders_naturally_skips_updated_and_batches_the_rest():
    instances = [instance("app-10"), instance("app-2", "new"), instance("app-1"), instance("app-3")]
    plan = plan_rollout(instances, "new", batch_size=2)
    assert [[i.name for i in batch] for batch in plan.batches] == [["app-1", "app-3"], ["app-10"]]
    assert [i.name for i in plan.skipped] == ["app-2"]
    assert (plan.batch_size, plan.fleet) == (2, 4)


def test_plan_with_everything_on_target_is_empty():
    plan = plan_rollout([instance("a", "new"), instance("b", "new")], "new")
    assert plan.batches == [] and plan.batch_size == 0 and len(plan.skipped) == 2


def test_plan_for_an_image_not_pulled_yet_updates_everything():
    plan = plan_rollout([instance("a", "new")], None)
    assert len(plan.batches) == 1 and plan.skipped == []


def test_natural_key():
    assert sorted(["web-10", "web-9", "api", "web-1"], key=natural_key) == ["api", "web-1", "web-9", "web-10"]


@pytest.mark.parametrize("failed, total, percentage, stops", [
    (0, 4, 0, False),
    (1, 4, 0, True),        # 0: the first failure stops
    (1, 4, 25, False),      # reaching the percentage is tolerated...
    (2, 4, 25, True),       # ...exceeding it stops
    (1, 4, 24.9, True),
    (1, 3, 33.3, True),     # 33.33...% > 33.3
    (1, 3, 33.34, False),
    (4, 4, 100, False),     # 100: never stops
])
def test_tolerance_boundaries(failed, total, percentage, stops):
    assert exceeds_tolerance(failed, total, percentage) is stops


def test_render_fills_env_labels_and_ports():
    assert render("http://h:{env[PORT]}/{labels[tier]}/{name}", FIELDS, "x") == "http://h:8001/web/app-1"
    assert render("{ports[8080/tcp]}-{ports[8080]}", FIELDS, "x") == "32768-32768"
    assert render("literal {{braces}}", FIELDS, "x") == "literal {braces}"


def test_render_names_what_is_missing():
    with pytest.raises(ConfigError, match=r"health_checks\[0\]: 'http://h:\{env\[APP_PORT\]\}/' refers to "
                                          r"'APP_PORT', which container app-1 does not have; templates may use"):
        render("http://h:{env[APP_PORT]}/", FIELDS, "health_checks[0]")
    with pytest.raises(ConfigError, match="is not a valid template"):
        render("{name", FIELDS, "load_balancer.server")


def test_render_checks_makes_tcp_ports_numbers_and_validates():
    checks = render_checks([{"kind": "tcp", "host": "127.0.0.1", "port": "{env[PORT]}", "url": None}], FIELDS, 5)
    assert checks[0].options["port"] == 8001 and checks[0].target == "127.0.0.1:8001"
    with pytest.raises(ConfigError, match=r"health_checks\[0\]: port must be a number, got 'web'"):
        render_checks([{"kind": "tcp", "host": "h", "port": "{labels[tier]}"}], FIELDS, 5)
    with pytest.raises(ConfigError, match="tcp checks need host"):
        render_checks([{"kind": "tcp", "port": "1"}], FIELDS, 5)


@pytest.mark.parametrize("options, message", [
    (dict(max_fail_percentage=101), "max_fail_percentage must be between 0 and 100"),
    (dict(stop_timeout=-1), "stop_timeout must be 0 or more"),
])
def test_config_validation(options, message):
    with pytest.raises(ConfigError, match=message):
        RolloutConfig(NEW, HealthConfig(), **options)


def test_health_config_validation():
    with pytest.raises(ConfigError, match="health_timeout must be more than 0"):
        HealthConfig(timeout=0)
    with pytest.raises(ConfigError, match="health_retries must be 0 or more"):
        HealthConfig(retries=-1)


@pytest.mark.parametrize("names, labels, message", [
    ([], None, "names must list at least one container name"),
    ([""], None, "no empty one"),
    (None, {}, "labels must give at least one label"),
    (["app-1-keel-old"], None, "names must not name app-1-keel-old"),
    (None, None, "give names or labels"),
])
def test_a_selector_that_would_select_every_container_is_refused(names, labels, message):
    with pytest.raises(ConfigError, match=message):
        check_selector(names, labels)


def test_a_real_selector_is_accepted():
    check_selector(["app-1"], None)
    check_selector(None, {"app": "shop"})
