# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a rolling replacement of containers behind a load balancer (the plan is plan.py's).

Rollout.run() applies a plan through two small interfaces (interfaces.py) - ContainerEngine (the Docker SDK
adapter in docker.py) and LoadBalancer (HAProxy's runtime API in haproxy.py, an HTTP hook in http_hook.py) -
so the whole rollout runs against in-memory fakes in the unit tests.

Per instance: record what is about to happen (a rollout record in the engine), drain it in the load
balancer, stop the old container (grace period), rename it aside, create and start the new one with the same
configuration, wait until it is healthy (health.py), and put it back in the load balancer state it had
before. Any failure puts the old container back under its name and running; whatever happened, the instance
is put back in the load balancer before the rollout moves on or stops. Each step is flagged before its call,
since a call that fails (a timeout, say) may still have taken effect, and every undo step is safe to repeat.

A run killed outright (kill -9) leaves its record, and maybe a <name>-keel-old container or a server out of
rotation: repair.py puts those instances back before anything is planned, and Rollout.verify() checks at the
end that every selected instance serves.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._probe.runner import probe
from ansible_collections.keel.ops.plugins.module_utils._rollout.health import HealthGate
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import (
    FAILED,
    NOT_STARTED,
    OLD_SUFFIX,
    PLANNED,
    ROLLED_BACK,
    SKIPPED,
    UPDATED,
    InstanceRun,
    Interrupted,
    in_rotation,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import (
    exceeds_tolerance,
    liveness_checks,
    natural_key,
    render,
    render_checks,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.repair import Repairs, process_owner


REENABLE_DELAYS = (0.5, 1.0, 2.0)  # pauses between the attempts to put an instance back in rotation


class Rollout(Repairs):
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


def describe(error):
    """A one-line account of an exception for messages: KeelErrors speak for themselves."""
    if isinstance(error, KeelError):
        return str(error)
    return "%s: %s" % (error.__class__.__name__, error)


def state_text(state):
    if isinstance(state, list):
        return "/".join(state_text(item) for item in state)
    return state or "unknown"


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
