# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vocabulary of a rollout: instance outcomes, the errors, the records of an instance and of one run on it,
and the two interfaces a rollout drives - ContainerEngine and LoadBalancer - with the load balancers that need
no backend of their own (none, and a group of several).
"""

from collections import namedtuple

from ansible_collections.keel.ops.plugins.module_utils._errors import KeelError


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

    def logs(self, container_id, lines=15):
        """The last `lines` lines of the container's output, for messages and incident records ('' when
        unavailable)."""
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


def in_rotation(state):
    """Whether an admin state (from LoadBalancer.admin_states) puts the server in rotation; unknown counts."""
    if isinstance(state, list):
        return all(in_rotation(item) for item in state)
    return state in (None, READY)
