# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an interrupted rollout left, found and put right before anything is planned: rollout records and
<name>-keel-old containers of the selection, whose instances go back on their old container and in their load
balancer state, or a refusal with the exact commands to clean up; and whether the run that wrote a record is
still alive.
"""

import os
import socket

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import (
    FAILED,
    OLD_SUFFIX,
    ROLLED_BACK,
    InstanceRun,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import natural_key, render


class Repairs:
    """What Rollout does about what an interrupted rollout left, before it plans anything: find the instances
    of the selection a killed run left mid-replacement (from their rollout records and <name>-keel-old
    containers), put them back on their old container and in their load balancer state, or refuse with the
    exact commands to clean up. Mixed into Rollout, whose engine, load balancer and undo steps it uses."""

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
