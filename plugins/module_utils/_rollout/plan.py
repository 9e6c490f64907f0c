# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning a rollout, before anything is touched: selectors, batch sizes from batch_size or max_unavailable, the
tolerance for failures, the pure plan over the selected instances, the templates that render per-instance
server names and checks, and the validated options.
"""

import re
from fractions import Fraction

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._probe.runner import build_checks
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import OLD_SUFFIX, Plan


TEMPLATE_FIELDS = "{name}, {server}, {env[VAR]}, {labels[key]}, {ports[8080/tcp]}"


def parse_amount(value, option):
    """'3' or 3 -> (3, False); '25%' -> (Fraction(25), True). Refuses zero, negatives and more than 100%."""
    text = str(value).strip()
    percent = text.endswith("%")
    number = text[:-1].strip() if percent else text
    try:
        amount = Fraction(number) if percent else int(number)
    except (ValueError, ZeroDivisionError):
        raise ConfigError("%s must be a whole number or a percentage such as '25%%', got %r" % (option, value))
    if amount <= 0 or (percent and amount > 100):
        limit = " and at most 100%" if percent else ""
        raise ConfigError("%s must be more than 0%s, got %r" % (option, limit, value))
    return amount, percent


def batch_size_for(pending, fleet, batch_size=None, max_unavailable=None):
    """How many instances are replaced at once.

    batch_size counts instances to update: a percentage of them rounds up (25% of 6 -> 2).
    max_unavailable counts the whole selected fleet, already-updated instances included: a percentage of it
    rounds down (25% of 6 -> 1), so at least that share of the fleet keeps serving. Either is at least 1,
    so the rollout always progresses, and at most the number of instances to update.
    """
    if batch_size is not None and max_unavailable is not None:
        raise ConfigError("batch_size and max_unavailable are mutually exclusive; give one of them")
    if not pending:
        return 0
    if max_unavailable is not None:
        amount, percent = parse_amount(max_unavailable, "max_unavailable")
        size = int(amount * fleet / 100) if percent else amount
    else:
        amount, percent = parse_amount(1 if batch_size is None else batch_size, "batch_size")
        size = -(-amount * pending // 100) if percent else amount  # ceiling division on exact fractions
    return max(1, min(int(size), pending))


def check_selector(names, labels):
    """Refuse a selector that selects nothing in particular: an empty list of names or an empty label dict
    would otherwise mean every container on the engine."""
    if names is not None:
        if not names or not all(isinstance(name, str) and name.strip() for name in names):
            raise ConfigError("names must list at least one container name, and no empty one (got %s); an "
                              "empty selector would select every container on the engine" % (names,))
        wrong = [name for name in names if name.endswith(OLD_SUFFIX)]
        if wrong:
            raise ConfigError("names must not name %s: containers ending in %s are the previous containers "
                              "an interrupted rollout left; name the instance itself" % (", ".join(wrong), OLD_SUFFIX))
    elif labels is not None and not labels:
        raise ConfigError("labels must give at least one label (name: value); an empty selector would select "
                          "every container on the engine")
    elif labels is None:
        raise ConfigError("give names or labels: the containers to update")


def natural_key(name):
    """app-2 before app-10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def plan_rollout(instances, target_id, batch_size=None, max_unavailable=None):
    """Order instances by name, skip those already on target_id, and cut the others into batches."""
    ordered = sorted(instances, key=lambda item: natural_key(item.name))
    skipped = [item for item in ordered if target_id is not None and item.image_id == target_id]
    pending = [item for item in ordered if item not in skipped]
    size = batch_size_for(len(pending), len(ordered), batch_size, max_unavailable)
    batches = [pending[start:start + size] for start in range(0, len(pending), size)] if size else []
    return Plan(batches, skipped, size, len(ordered))


def exceeds_tolerance(failed, total, max_fail_percentage):
    """Whether `failed` of `total` instances to update is more than max_fail_percentage percent of them.

    As with Ansible's max_fail_percentage, reaching the percentage is tolerated and exceeding it stops:
    with 4 instances and 25, one failure (25%) continues and a second (50%) stops; with 0, any failure stops.
    The comparison is exact (failed * 100 > percentage * total), so there are no rounding surprises.
    """
    return failed * 100 > Fraction(str(max_fail_percentage)) * total


def render(template, fields, where):
    """Fill a template such as 'http://127.0.0.1:{env[APP_PORT]}/health' with one instance's fields."""
    try:
        return template.format(**fields)
    except (KeyError, IndexError) as error:
        raise ConfigError("%s: '%s' refers to %s, which container %s does not have; templates may use %s"
                          % (where, template, error, fields.get("name"), TEMPLATE_FIELDS))
    except (ValueError, AttributeError) as error:
        raise ConfigError("%s: '%s' is not a valid template (%s); write literal braces as {{ and }}"
                          % (where, template, error))


def _render_value(value, fields, where):
    if isinstance(value, str):
        return render(value, fields, where)
    if isinstance(value, list):
        return [_render_value(item, fields, where) for item in value]
    if isinstance(value, dict):
        return dict((key, _render_value(item, fields, where)) for key, item in value.items())
    return value


BODY_CONDITIONS = ("body_regex", "jmespath", "expect")


def liveness_checks(raw_checks):
    """The checks an old container must pass when it is put back: the same requests without body conditions,
    which usually name the new version (jmespath 'version' expecting '2.4.1')."""
    return [dict((key, value) for key, value in raw.items() if key not in BODY_CONDITIONS) for raw in raw_checks or []]


def render_checks(raw_checks, fields, default_timeout):
    """The health checks of one instance: templates filled, tcp ports made numbers, validated."""
    rendered = []
    for index, raw in enumerate(raw_checks or []):
        where = "health_checks[%d]" % index
        check = dict((key, _render_value(value, fields, where)) for key, value in raw.items() if value is not None)
        if check.get("port") is not None:
            try:
                check["port"] = int(check["port"])
            except ValueError:
                raise ConfigError("%s: port must be a number, got '%s'" % (where, check["port"]))
        rendered.append(check)
    return build_checks(rendered, default_timeout) if rendered else []


class HealthConfig:
    """How a new container proves it is healthy."""

    def __init__(self, checks=None, timeout=60.0, interval=1.0, retries=None, container_health=True,
                 check_timeout=5.0):
        self.checks = checks or []
        self.timeout = float(timeout)
        self.interval = float(interval)
        self.retries = retries
        self.container_health = container_health
        self.check_timeout = float(check_timeout)
        if self.timeout <= 0:
            raise ConfigError("health_timeout must be more than 0 seconds, got %s" % timeout)
        if self.interval < 0:
            raise ConfigError("health_interval must be 0 or more seconds, got %s" % interval)
        if retries is not None and retries < 0:
            raise ConfigError("health_retries must be 0 or more, got %s" % retries)


class RolloutConfig:
    """Everything Rollout.run() needs besides the engine and the load balancer."""

    def __init__(self, image, health, server="{name}", stop_timeout=10, pause=0.0, max_fail_percentage=0.0,
                 drain_delay=0.0):
        self.image = image
        self.health = health
        self.server = server
        self.stop_timeout = stop_timeout
        self.pause = float(pause)
        self.max_fail_percentage = max_fail_percentage
        self.drain_delay = float(drain_delay)
        if not 0 <= max_fail_percentage <= 100:
            raise ConfigError("max_fail_percentage must be between 0 and 100, got %s" % max_fail_percentage)
        for name in ("stop_timeout", "pause", "drain_delay"):
            if getattr(self, name) < 0:
                raise ConfigError("%s must be 0 or more, got %s" % (name, getattr(self, name)))
