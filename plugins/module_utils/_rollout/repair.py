# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and run a rolling replacement of containers behind a load balancer.

plan_rollout() is pure: it orders the selected instances, skips those already on the target image and cuts
the rest into batches. Rollout.run() applies a plan through two small interfaces - ContainerEngine (Docker
SDK adapter in _engine_docker.py) and LoadBalancer (HAProxy runtime API in _lb_haproxy.py, HTTP hook in
_lb_http.py, NoLoadBalancer below) - so the whole engine runs against in-memory fakes in the unit tests.

Per instance: record what is about to happen (a rollout record in the engine), drain it in the load
balancer, stop the old container (grace period), rename it aside, create and start the new one with the same
configuration, wait until it is healthy (the container's own healthcheck and/or keel.ops.health_probe checks,
through _probe/runner.py), and put it back in the load balancer state it had before. Any failure puts the old
container back under its name and running; whatever happened, the instance is put back in the load balancer
before the rollout moves on or stops. Each step is flagged before its call, since a call that fails (a
timeout, say) may still have taken effect, and every undo step is safe to repeat.

A run killed outright (kill -9) leaves its record, and maybe a <name>-keel-old container or a server out of
rotation: Rollout.repair() finds them for the selection before anything is planned and puts those instances
back on their old container and in their load balancer state, or refuses with the exact commands to clean
up. Rollout.verify() checks at the end that every selected instance serves.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import socket
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._probe.runner import build_checks, probe

OLD_SUFFIX = "-keel-old"
"""The old container is renamed <name>-keel-old while its replacement starts (host networking binds the same
port, so the two cannot run side by side) and removed once the new one is healthy and back in rotation."""

UPDATED = "updated"
SKIPPED = "skipped"
PLANNED = "planned"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
NOT_STARTED = "not_started"

READY = "ready"
"""The load balancer admin state of a server in rotation (HAProxy also reports 'drain' and 'maint')."""

REENABLE_DELAYS = (0.5, 1.0, 2.0)  # pauses between the attempts to put an instance back in rotation
TEMPLATE_FIELDS = "{name}, {server}, {env[VAR]}, {labels[key]}, {ports[8080/tcp]}"


class EngineError(KeelError):
    """The container engine refused or failed an operation."""


class LoadBalancerError(KeelError):
    """The load balancer refused or failed an operation."""


class HealthError(KeelError):
    """A container did not become healthy by its deadline."""


class Interrupted(KeelError):
    """The rollout was asked to stop (a signal): the instance in progress is restored, no other one starts."""


Instance = namedtuple("Instance", "name id image image_id running has_healthcheck auto_remove fields")
"""One selected container. image: the reference it was created from; image_id: what that resolved to;
fields: what templates may use (name, env, labels, ports)."""

ContainerState = namedtuple("ContainerState", "running status health exit_code")
"""health: 'healthy', 'unhealthy', 'starting', or None when the container has no healthcheck."""

TargetImage = namedtuple("TargetImage", "ref id")
"""id is None when the image is not on the engine yet (check mode with pull allowed)."""

Plan = namedtuple("Plan", "batches skipped batch_size fleet")


# --------------------------------------------------------------------------------------------------------
# Interfaces
# --------------------------------------------------------------------------------------------------------

class ContainerEngine:
    """What the rollout needs from a container engine. Ids are the engine's container ids."""

    def select(self, names, labels):
        """The instances named, or carrying all the labels, excluding <name>-keel-old leftovers."""
        raise NotImplementedError

    def find(self, name):
        """The Instance of the container named `name`, or None."""
        raise NotImplementedError

    def exists(self, name):
        return self.find(name) is not None

    def leftovers(self, names, labels):
        """The <name>-keel-old containers (as Instances under that name) the selector covers: <name> is one of
        names, or the container carries all the labels."""
        raise NotImplementedError

    def records(self):
        """Every rollout record on the engine (dicts, see Rollout._record)."""
        raise NotImplementedError

    def write_record(self, name, record):
        """Keep `record` for instance `name` until remove_record(name); replaces an older one."""
        raise NotImplementedError

    def remove_record(self, name):
        """Drop the record of instance `name`; nothing to do when there is none."""
        raise NotImplementedError

    def cli(self, *argv):
        """The command line that does the same by hand, for messages."""
        return " ".join(("docker",) + argv)

    def record_commands(self, name):
        """The command lines that remove the record of instance `name` by hand."""
        return []

    def stop(self, container_id, timeout):
        raise NotImplementedError

    def rename(self, container_id, name):
        """Safe to repeat: a container that already has the name is left as it is."""
        raise NotImplementedError

    def clone(self, instance, image_ref):
        """Create (not start) a container named instance.name with instance's configuration and image_ref."""
        raise NotImplementedError

    def start(self, container_id):
        raise NotImplementedError

    def remove(self, container_id):
        """Safe to repeat: a container that is already gone is not an error."""
        raise NotImplementedError

    def state(self, container_id):
        """A ContainerState."""
        raise NotImplementedError

    def fields(self, container_id):
        """What templates may use for this container now: env, labels, ports (see Instance.fields)."""
        raise NotImplementedError

    def logs(self, container_id):
        """The last lines of the container's output, for error messages ('' when unavailable)."""
        raise NotImplementedError


class LoadBalancer:
    """Takes a server out of rotation and puts it back. Servers are named by load_balancer.server."""

    kind = "none"

    def preflight(self, servers):
        """Refuse servers the load balancer does not know, before anything changes."""

    def admin_states(self, servers):
        """server -> its admin state (READY, 'drain', 'maint'...; a list for a group), None when the load
        balancer cannot tell."""
        return dict((server, None) for server in servers)

    def drain(self, server):
        """Stop sending new requests to server and wait for its current ones; return the sessions still open
        when it moved on (None when the load balancer cannot tell)."""

    def enable(self, server, state=None):
        """Put server back in the admin state it had before (`state`, from admin_states): in rotation when
        that is READY or unknown (None)."""

    def wait_serving(self, server, state=None):
        """Return once the load balancer sends requests to server again (when `state` puts it in rotation)."""

    def hint(self, server, state=None):
        """How to put server back by hand, for messages about a failed enable."""
        return ""


class NoLoadBalancer(LoadBalancer):
    """No load balancer in front of the containers: nothing to drain or enable."""


class LoadBalancerGroup(LoadBalancer):
    """Several load balancers in front of the same servers (an HAProxy pair): each call goes to every one.
    Putting a server back is tried on all of them even when one fails, so one broken member cannot keep the
    server out of the others."""

    def __init__(self, members):
        self.members = list(members)
        self.kind = "+".join(member.kind for member in self.members)

    def preflight(self, servers):
        for member in self.members:
            member.preflight(servers)

    def admin_states(self, servers):
        known = [member.admin_states(servers) for member in self.members]
        return dict((server, None if all(states.get(server) is None for states in known)
                     else [states.get(server) for states in known]) for server in servers)

    def _each(self, state):
        """(member, its own state) pairs: a group's state is a list, one per member."""
        states = state if isinstance(state, list) else [state] * len(self.members)
        return zip(self.members, states)

    def drain(self, server):
        left = [member.drain(server) for member in self.members]
        return None if None in left else sum(left)

    def enable(self, server, state=None):
        errors = []
        for member, own in self._each(state):
            try:
                member.enable(server, own)
            except LoadBalancerError as error:
                errors.append(str(error))
        if errors:
            raise LoadBalancerError("; ".join(errors))

    def wait_serving(self, server, state=None):
        for member, own in self._each(state):
            member.wait_serving(server, own)

    def hint(self, server, state=None):
        return "; ".join(hint for hint in (member.hint(server, own) for member, own in self._each(state)) if hint)


def in_rotation(state):
    """Whether an admin state (from LoadBalancer.admin_states) puts the server in rotation; unknown counts."""
    if isinstance(state, list):
        return all(in_rotation(item) for item in state)
    return state in (None, READY)


# --------------------------------------------------------------------------------------------------------
# Options and templates
# --------------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------------
# Health gate
# --------------------------------------------------------------------------------------------------------

class HealthGate:
    """Wait until a container is healthy: running, its own healthcheck (when it has one and
    container_health is on) healthy, and every health check passing - all at the same attempt."""

    def __init__(self, engine, config, clock=time.monotonic, sleep=time.sleep, prober=probe, interrupted=None):
        self.engine = engine
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.prober = prober
        self.interrupted = interrupted or (lambda: None)

    def _problem(self, container_id, checks, uses_healthcheck, remaining):
        """What is not healthy yet ('' when all is); raises HealthError when waiting longer cannot help."""
        state = self.engine.state(container_id)
        if not state.running:
            output = self.engine.logs(container_id)
            raise HealthError("the container is %s (exit code %s)%s" % (
                state.status, state.exit_code, "; its last output:\n" + output if output else ""))
        if uses_healthcheck:
            if state.health == "unhealthy":
                raise HealthError("its container healthcheck reports unhealthy")
            if state.health != "healthy":
                return "its container healthcheck is %s" % (state.health or "starting")
        if checks:
            result = self.prober(checks, fail_on="critical", retries=0, deadline=max(remaining, 0.001))
            if not result["healthy"]:
                return result["summary"]
        return ""

    def wait(self, container_id, checks, has_healthcheck):
        """Return the number of attempts it took; raise HealthError naming the failing check otherwise."""
        config = self.config
        uses_healthcheck = has_healthcheck and config.container_health
        started = self.clock()
        attempts = 0
        while True:
            attempts += 1
            remaining = config.timeout - (self.clock() - started)
            problem = self._problem(container_id, checks, uses_healthcheck, remaining)
            if not problem:
                return attempts
            out_of_retries = config.retries is not None and attempts > config.retries
            if self.interrupted():
                raise Interrupted("%s while waiting for it to become healthy (%s)" % (self.interrupted(), problem))
            if out_of_retries or self.clock() - started + config.interval >= config.timeout:
                raise HealthError("not healthy after %d attempt%s in %.1fs: %s" % (
                    attempts, "" if attempts == 1 else "s", self.clock() - started, problem))
            self.sleep(config.interval)


# --------------------------------------------------------------------------------------------------------
# Running the plan
# --------------------------------------------------------------------------------------------------------

class InstanceRun:
    """What happens to one instance. The flags say what must be undone if a later step fails; each is set
    before its call, since a call that fails (a timeout, a lost socket) may still have done its work."""

    def __init__(self, instance, server, batch):
        self.instance = instance
        self.server = server
        self.batch = batch
        self.result = NOT_STARTED
        self.message = ""
        self.new_id = None
        self.sessions_left = None
        self.timings = {}
        self.lb_before = None  # the admin state the server goes back to (LoadBalancer.admin_states)
        self.recorded = False
        self.out_of_rotation = False
        self.stopped = False
        self.renamed = False
        self.created = False

    def as_dict(self, target_ref):
        return {
            "name": self.instance.name,
            "server": self.server,
            "batch": self.batch,
            "result": self.result,
            "old_image": self.instance.image,
            "old_image_id": self.instance.image_id,
            "new_image": target_ref if self.result in (UPDATED, SKIPPED, PLANNED) else self.instance.image,
            "container_id": self.new_id if self.result == UPDATED else self.instance.id,
            "sessions_left": self.sessions_left,
            "timings": dict((key, round(value, 3)) for key, value in self.timings.items()),
            "message": self.message,
        }


class Rollout:
    """Applies a Plan: batch after batch, each instance drained, replaced, health-gated and put back."""

    def __init__(self, engine, load_balancer, config, clock=time.monotonic, sleep=time.sleep, prober=probe,
                 warn=None):
        self.engine = engine
        self.lb = load_balancer
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.gate = HealthGate(engine, config.health, clock, sleep, prober, lambda: self.interrupted)
        self.warn = warn or (lambda text: None)
        self.interrupted = None
        self.owner = process_owner()  # goes into each record, so a later run can tell this run alive from killed
        self._cleanup = None  # removes old containers off the critical path, during run()

    def interrupt(self, reason):
        """Ask the rollout to stop (from a signal handler): the instance in progress is restored at its next
        step, and no further instance starts. Nothing is raised here, so no restore is ever cut short."""
        self.interrupted = "interrupted by %s" % reason

    def _go_on(self):
        if self.interrupted:
            raise Interrupted(self.interrupted)

    # -- what an interrupted run left (before planning) -----------------------------------------------------

    def repair(self, names, labels, check_mode=False):
        """Put the instances of this selection that an interrupted rollout left mid-replacement back on their
        old container and in their load balancer state; refuse, with the exact cleanup, when that cannot be
        told safely. Nothing changes in check mode. Returns the names of those instances."""
        records = dict((record["instance"], record) for record in self.engine.records()
                       if record.get("instance") and selects(record, names, labels))
        old = dict((item.name[:-len(OLD_SUFFIX)], item) for item in self.engine.leftovers(names, labels))
        runs, refusals = [], []
        for name in sorted(set(records) | set(old), key=natural_key):
            try:
                runs.append(self._repair_run(name, records.get(name), old.get(name)))
            except ConfigError as error:
                refusals.append(str(error))
        if refusals:
            raise ConfigError("an interrupted rollout left containers that cannot be repaired safely: %s"
                              % " | ".join(refusals))
        for run in runs:
            if check_mode:
                self.warn("%s was left mid-replacement by an interrupted rollout; the run repairs it first"
                          % run.instance.name)
            else:
                self._repair(run)
        return [run.instance.name for run in runs]

    def _repair_run(self, name, record, old):
        """An InstanceRun whose flags say what to undo to put `name` back on its old container, from what is
        found: the record (written before the first step) and the containers named name and name-keel-old."""
        if record and owner_alive(record.get("owner")):
            raise ConfigError("%s is being replaced right now by another rolling_update (pid %s); wait until it "
                              "ends" % (name, record["owner"].get("pid")))
        current = self.engine.find(name)
        old_id = record.get("old_id") if record else None
        found = current or old
        server = record.get("server") if record else \
            render(self.config.server, dict(found.fields, name=name), "load_balancer.server")
        original, replacement = None, None
        if current is not None and current.id == old_id and old is None:
            original = current  # killed before the rename: the old container is still under its name
        elif old is not None and old_id in (None, old.id) and (record or current is None):
            original, replacement = old._replace(name=name), current
        elif not (record and current is not None and old is None):
            raise ConfigError(self._cleanup_advice(name, server, record, current, old))
        run = InstanceRun(original or current, server, 0)  # no original: the replacement was back in rotation
        run.lb_before = record.get("lb_before") if record else None  # no record: it was in rotation
        run.recorded = bool(record)
        run.stopped = original is not None
        run.renamed = old is not None and original is not None and original.id == old.id
        run.created = replacement is not None
        run.new_id = replacement.id if replacement is not None else None
        run.out_of_rotation = replacement is None  # a replacement may be in rotation: the restore drains it first
        return run

    def _cleanup_advice(self, name, server, record, current, old):
        """The commands that clean up by hand what the repair cannot tell apart."""
        drop = ("; then " + " && ".join(self.engine.record_commands(name))) if record else ""
        leftover = name + OLD_SUFFIX
        if current is None and old is None:
            return ("%s: the rollout record of an interrupted run names it, but neither %s nor %s exists; recreate "
                    "%s%s" % (name, name, leftover, name, drop))
        keep_old = ([self.engine.cli("rm", "-f", name)] if current is not None else []) + [
            self.engine.cli("rename", leftover, name), self.engine.cli("start", name)]
        choice = ("if %s serves correctly, run %s; otherwise run %s" % (
            name, self.engine.cli("rm", "-f", leftover), " && ".join(keep_old)) if current is not None
            else "run %s" % " && ".join(keep_old))
        hint = self.lb.hint(server)
        return ("%s: %s exists%s and no rollout record tells what was being replaced; %s. Put its server back in "
                "the load balancer if it is out%s, then run again%s"
                % (name, leftover, " next to " + name if current is not None else "", choice,
                   " (%s)" % hint if hint else "", drop))

    def _repair(self, run):
        run.message = "%s was left mid-replacement by an interrupted rollout" % run.instance.name
        if run.stopped:
            self._restore(run)
        else:
            run.result = ROLLED_BACK
            run.message += "; its replacement had replaced it already"
        if run.out_of_rotation:
            self._reenable(run)
        if run.result == FAILED:
            raise KeelError("cannot repair what an interrupted rollout left: %s" % run.message)
        self._drop_record(run)
        self.warn("%s; repaired, it serves again" % run.message)

    # -- preparation (no change yet) ----------------------------------------------------------------------

    def prepare(self, plan):
        """Render every instance's server name and checks and ask the load balancer about them, so a typo
        fails before the first instance is touched. Returns InstanceRuns for every selected instance."""
        runs = []
        numbered = [(index + 1, item) for index, batch in enumerate(plan.batches) for item in batch]
        for batch, instance in numbered + [(0, item) for item in plan.skipped]:
            self._check_instance(instance, batch)
            fields = dict(instance.fields, name=instance.name)
            server = render(self.config.server, fields, "load_balancer.server")
            fields["server"] = server
            checks = render_checks(self.config.health.checks, fields, self.config.health.check_timeout)
            if batch and not checks and not (instance.has_healthcheck and self.config.health.container_health):
                raise ConfigError(
                    "container %s has no healthcheck and health_checks is empty, so nothing would prove its "
                    "replacement healthy; give health_checks (for example an http check of its health URL)"
                    % instance.name)
            runs.append(InstanceRun(instance, server, batch))
        self.lb.preflight([run.server for run in runs if run.batch])
        self._note_admin_states(runs)
        return runs

    def _note_admin_states(self, runs):
        """Remember each server's admin state, to put it back in that state; report those out of rotation."""
        states = self.lb.admin_states([run.server for run in runs])
        for run in runs:
            run.lb_before = states.get(run.server)
            if not in_rotation(run.lb_before):
                self.warn("%s: its load balancer server %s is in %s, set before this rollout and not by an "
                          "interrupted one; %s" % (run.instance.name, run.server, state_text(run.lb_before),
                                                   "it is updated and left in that state" if run.batch
                                                   else "it is left as it is"))

    def _check_instance(self, instance, batch):
        leftover = instance.name + OLD_SUFFIX
        if not batch:
            if self.engine.exists(leftover):
                self.warn("%s is already on the target image but %s, its previous container, is left over from an "
                          "interrupted rollout; remove it" % (instance.name, leftover))
            return
        if not instance.running:
            raise ConfigError("container %s is not running; a rolling update replaces serving instances only - "
                              "start it or leave it out of the selection" % instance.name)
        if instance.auto_remove:
            raise ConfigError("container %s was started with auto-remove (--rm): stopping it would delete it, "
                              "so it could not be restored if its replacement fails; recreate it without --rm"
                              % instance.name)
        if self.engine.exists(leftover):
            raise ConfigError(
                "container %s is left over from an interrupted rollout (the previous container of %s). If %s "
                "serves correctly, remove %s; otherwise remove %s and rename %s back to %s. Then run again."
                % (leftover, instance.name, instance.name, leftover, instance.name, leftover, instance.name))

    # -- one instance ---------------------------------------------------------------------------------------

    def _timed(self, run, name, function, *args):
        started = self.clock()
        try:
            return function(*args)
        finally:
            run.timings[name] = run.timings.get(name, 0.0) + self.clock() - started

    def _record(self, run):
        """What the next run needs to repair this instance should this one be killed."""
        instance = run.instance
        return {"instance": instance.name, "old_id": instance.id, "server": run.server, "lb_before": run.lb_before,
                "labels": dict(instance.fields.get("labels") or {}), "image": self.config.image, "owner": self.owner}

    def _take_out(self, run):
        run.lb_before = self.lb.admin_states([run.server]).get(run.server)  # now: it may have changed since the plan
        run.recorded = True
        self.engine.write_record(run.instance.name, self._record(run))
        run.out_of_rotation = True
        run.sessions_left = self._timed(run, "drain", self.lb.drain, run.server)
        if self.config.drain_delay:
            self._timed(run, "drain", self.sleep, self.config.drain_delay)

    def _stop_old(self, run):
        instance = run.instance
        run.stopped = True
        self._timed(run, "stop", self.engine.stop, instance.id, self.config.stop_timeout)
        run.renamed = True
        self.engine.rename(instance.id, instance.name + OLD_SUFFIX)

    def _start_new(self, run):
        run.created = True  # a create that times out, or whose network connect fails, still leaves a container
        run.new_id = self._timed(run, "start", self.engine.clone, run.instance, self.config.image)
        self._timed(run, "start", self.engine.start, run.new_id)

    def _checks_for(self, run, container_id, raw_checks):
        """Checks rendered for the container running now: a new container may have other host ports."""
        fields = dict(self.engine.fields(container_id), name=run.instance.name, server=run.server)
        return render_checks(raw_checks, fields, self.config.health.check_timeout)

    def _wait_healthy(self, run):
        checks = self._checks_for(run, run.new_id, self.config.health.checks)
        self._timed(run, "healthy", self.gate.wait, run.new_id, checks, run.instance.has_healthcheck)

    def _put_back(self, run):
        self._timed(run, "enable", self.lb.enable, run.server, run.lb_before)
        run.out_of_rotation = False
        self._timed(run, "enable", self.lb.wait_serving, run.server, run.lb_before)

    def replace(self, run):
        """Replace one instance; on any failure put its old container back. Never raises."""
        if self.interrupted:
            return  # stays not_started
        started = self.clock()
        try:
            try:
                for step in (self._take_out, self._stop_old, self._start_new, self._wait_healthy, self._put_back):
                    self._go_on()
                    step(run)
                run.result = UPDATED
            except Exception as error:  # pylint: disable=broad-except
                # Whatever failed, the old container goes back.
                run.message = "%s: %s" % (run.instance.name, describe(error))
                self._timed(run, "rollback", self._restore, run)
        finally:
            if run.out_of_rotation:
                self._reenable(run)
            run.timings["total"] = self.clock() - started
        if run.result == UPDATED and self._cleanup:
            self._cleanup.submit(self._finish, run)
        else:
            self._finish(run)

    def _restore(self, run):
        """Put the old container back under its name, running; record what could not be done. Every step is
        safe to repeat, so a step flagged but never done costs nothing."""
        instance = run.instance
        problems = []
        steps = []
        if run.stopped and not run.out_of_rotation:  # it failed after being put back: out again first
            run.out_of_rotation = True
            steps.append(("take %s out of the load balancer" % run.server, self.lb.drain, run.server))
        if run.created:
            steps.append(("remove the new container", self._remove_replacement, run))
        if run.renamed:
            steps.append(("rename %s back" % (instance.name + OLD_SUFFIX), self.engine.rename, instance.id,
                          instance.name))
        if run.stopped:
            steps.append(("start the old container", self.engine.start, instance.id))
        for step in steps:
            try:
                step[1](*step[2:])
            except Exception as error:  # pylint: disable=broad-except
                # Try every step, and report all that failed.
                problems.append("could not %s: %s" % (step[0], describe(error)))
        if run.stopped and not problems:
            try:
                liveness = self._checks_for(run, instance.id, liveness_checks(self.config.health.checks))
                self.gate.wait(instance.id, liveness, instance.has_healthcheck)
            except Exception as error:  # pylint: disable=broad-except
                self.warn("%s is back on %s but not healthy: %s" % (instance.name, instance.image, describe(error)))
        if problems:
            run.result = FAILED
            run.message += "; restoring the old container failed: %s" % "; ".join(problems)
        else:
            run.result = ROLLED_BACK
            run.message += "; it is back on its old container (%s)" % instance.image

    def _remove_replacement(self, run):
        """Remove whatever now holds the instance's name but is not its old container: the new container, also
        when its create failed after taking effect (so its id was never returned)."""
        new_id = run.new_id
        if new_id is None:
            found = self.engine.find(run.instance.name)
            new_id = found.id if found is not None and found.id != run.instance.id else None
        if new_id is not None:
            self.engine.remove(new_id)

    def _reenable(self, run):
        """Put the instance back in the load balancer state it had, retrying a few times: a load balancer that
        failed once mid-rollout must not leave it out."""
        error = None
        for delay in (0.0,) + REENABLE_DELAYS:
            if delay:
                self.sleep(delay)
            try:
                self._put_back(run)
                return
            except Exception as caught:  # pylint: disable=broad-except
                error = caught
        run.result = FAILED
        run.message = ("%s; " % run.message if run.message else "%s: " % run.instance.name) + (
            "it is still out of the load balancer, putting it back failed %d times: %s%s"
            % (len(REENABLE_DELAYS) + 1, describe(error), self._hint(run.server, run.lb_before)))

    def _hint(self, server, state=None):
        hint = self.lb.hint(server, state)
        return "; put it back by hand: %s" % hint if hint else ""

    def _finish(self, run):
        """After an instance: its old container goes once the new one serves; its record goes unless the
        instance is left broken, so that the next run repairs it."""
        if run.result == UPDATED:
            self._discard_old(run)
        if run.result == FAILED:
            if run.recorded:
                run.message += "; the next run repairs it"
            return
        self._drop_record(run)

    def _discard_old(self, run):
        try:
            self.engine.remove(run.instance.id)
        except Exception as error:  # pylint: disable=broad-except
            # The instance serves; only a leftover remains.
            run.message = ("%s is updated but its old container %s could not be removed (%s); remove it before the "
                           "next rollout" % (run.instance.name, run.instance.name + OLD_SUFFIX, describe(error)))
            self.warn(run.message)

    def _drop_record(self, run):
        if not run.recorded:
            return
        try:
            self.engine.remove_record(run.instance.name)
            run.recorded = False
        except Exception as error:  # pylint: disable=broad-except
            # The instance serves; a stale record only makes the next run check it again.
            self.warn("%s: its rollout record could not be removed (%s); remove it: %s"
                      % (run.instance.name, describe(error), " && ".join(self.engine.record_commands(
                          run.instance.name))))

    # -- the whole plan ---------------------------------------------------------------------------------------

    def _run_batch(self, runs):
        if len(runs) == 1:
            self.replace(runs[0])
            return
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            for future in [pool.submit(self.replace, run) for run in runs]:
                future.result()

    def run(self, plan, target, runs, repaired=()):
        """Apply the plan, then check that every selected instance serves; returns (result dict, failure
        message or '')."""
        started = self.clock()
        # The old container of an updated instance goes while the next instance is being replaced.
        self._cleanup = ThreadPoolExecutor(max_workers=1)
        try:
            stop_reason = self._run_batches(plan, runs)
        finally:
            self._cleanup.shutdown(wait=True)
            self._cleanup = None
        for run in runs:
            if run.batch == 0:
                run.result = SKIPPED
        not_serving = self.verify(runs)
        result = summarize(runs, plan, target, self.clock() - started, repaired, not_serving)
        if not_serving:
            stop_reason = "%s%d of %d selected instances do not serve: %s" % (
                stop_reason + " Moreover, " if stop_reason else "rolling update to %s: " % self.config.image,
                len(set(name for name, _problem in not_serving)), len(runs),
                "; ".join("%s: %s" % item for item in not_serving))
        return result, stop_reason

    def verify(self, runs):
        """(name, problem) for each selected instance that does not serve now: its container missing or not
        running, or its load balancer server not in the admin state it had before the rollout."""
        problems = []
        try:
            states = self.lb.admin_states([run.server for run in runs])
        except Exception as error:  # pylint: disable=broad-except
            states = dict((run.server, "unknown (%s)" % describe(error)) for run in runs)
        for run in runs:
            name = run.instance.name
            try:
                found = self.engine.find(name)
            except Exception as error:  # pylint: disable=broad-except
                problems.append((name, describe(error)))
                continue
            if found is None or not found.running:
                problems.append((name, "container %s is %s" % (name, "missing" if found is None else "not running")))
            now = states.get(run.server)
            if now is not None and now != run.lb_before:
                problems.append((name, "its load balancer server %s is in %s, it was in %s before the rollout"
                                 % (run.server, state_text(now), state_text(run.lb_before))))
        return problems

    def _run_batches(self, plan, runs):
        """Run the batches in order until one fails beyond the tolerance; return why it stopped ('' if not)."""
        total = sum(len(batch) for batch in plan.batches)
        for number in range(1, len(plan.batches) + 1):
            batch_runs = [run for run in runs if run.batch == number]
            self._run_batch(batch_runs)
            failed = [run for run in runs if run.result in (ROLLED_BACK, FAILED)]
            unsafe = [run for run in batch_runs if run.result == FAILED]
            if unsafe or self.interrupted or exceeds_tolerance(len(failed), total, self.config.max_fail_percentage):
                return self._stop_message(number, plan, failed, total, unsafe)
            for run in failed:
                if run.batch == number:
                    self.warn("%s (tolerated by max_fail_percentage=%g)"
                              % (run.message, self.config.max_fail_percentage))
            if number < len(plan.batches) and self.config.pause:
                self.sleep(self.config.pause)
        return ""

    def _stop_message(self, number, plan, failed, total, unsafe):
        updated = sum(1 for batch in plan.batches[:number] for item in batch) - len(failed)
        if unsafe:
            why = "an instance could not be restored or put back in the load balancer"
        elif self.interrupted:
            why = self.interrupted
        else:
            why = "%d of %d instances failed, more than max_fail_percentage=%g allows" % (
                len(failed), total, self.config.max_fail_percentage)
        return ("rolling update to %s stopped after batch %d of %d (%s)%s. %d of %d instances updated, "
                "%d not started." % (self.config.image, number, len(plan.batches), why,
                                     "".join(": " + run.message for run in failed[:1]) +
                                     "".join(" | " + run.message for run in failed[1:]), updated, total,
                                     sum(len(batch) for batch in plan.batches[number:])))


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------

def describe(error):
    """A one-line account of an exception for messages: KeelErrors speak for themselves."""
    if isinstance(error, KeelError):
        return str(error)
    return "%s: %s" % (error.__class__.__name__, error)


def state_text(state):
    if isinstance(state, list):
        return "/".join(state_text(item) for item in state)
    return state or "unknown"


def selects(record, names, labels):
    """Whether a rollout record is of an instance this selector covers."""
    if names:
        return record.get("instance") in names
    have = record.get("labels") or {}
    return all(have.get(key) == "%s" % value for key, value in (labels or {}).items())


def _process_start(pid):
    """A process's start time in clock ticks since boot (Linux), None when it cannot be read."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, TypeError, ValueError):
        return None


def process_owner():
    """Who runs this rollout, so that a later run tells a live rollout from a killed one."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())}


def owner_alive(owner):
    """Whether the process that wrote a record still runs (same host, same pid, same start time). A process on
    another host cannot be checked and counts as gone."""
    if not owner or owner.get("host") != socket.gethostname() or owner.get("started") is None:
        return False
    return _process_start(owner.get("pid")) == owner["started"]


def plan_results(runs, plan, target, repaired=()):
    """The result of a run that changes nothing (check mode)."""
    for run in runs:
        run.result = SKIPPED if run.batch == 0 else PLANNED
    return summarize(runs, plan, target, 0.0, repaired)


def summarize(runs, plan, target, duration, repaired=(), not_serving=()):
    ordered = sorted(runs, key=lambda run: (run.batch == 0, run.batch, natural_key(run.instance.name)))
    instances = [run.as_dict(target.ref) for run in ordered]

    def named(*results):
        return [item["name"] for item in instances if item["result"] in results]

    return {
        "image": target.ref,
        "image_id": target.id,
        "plan": {
            "batches": [[item.name for item in batch] for batch in plan.batches],
            "skipped": [item.name for item in plan.skipped],
            "batch_size": plan.batch_size,
            "fleet": plan.fleet,
        },
        "instances": instances,
        "updated": named(UPDATED),
        "rolled_back": named(ROLLED_BACK),
        "failed_instances": named(FAILED),  # not 'failed', which Ansible's own failure flag overwrites
        "not_started": named(NOT_STARTED),
        "repaired": list(repaired),
        "not_serving": sorted(set(name for name, _problem in not_serving), key=natural_key),
        "duration": round(duration, 3),
        "changed": bool(repaired) or any(item["result"] in (UPDATED, PLANNED) for item in instances),
        "diff": {
            "before": dict((run.instance.name, run.instance.image) for run in ordered if run.batch),
            "after": dict((run.instance.name, target.ref) for run in ordered if run.batch),
        },
    }
