# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate of a rollout: a new container passes once its own healthcheck says healthy and the
keel.ops.health_probe checks rendered for it pass, or fails at its deadline (or when the rollout is
interrupted) with what was seen.
"""

import time

from ansible_collections.keel.ops.plugins.module_utils._probe.runner import probe
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import HealthError, Interrupted

# An attempt that starts just before the deadline still gets this long (or the checks' own, shorter
# timeouts): cut to a few milliseconds it could only report the deadline, hiding what is really wrong.
ATTEMPT_FLOOR = 1.0


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
            result = self.prober(checks, fail_on="critical", retries=0, deadline=max(remaining, ATTEMPT_FLOOR))
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
