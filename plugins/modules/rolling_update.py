#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: rolling_update
short_description: Replace containers behind a load balancer one batch at a time, with health gates and rollback
version_added: 0.1.0
description:
  - Moves the selected containers (by O(names) or O(labels)) of a Docker Engine API endpoint - Docker, or
    Podman's Docker-compatible service - to O(image), a tag or a digest, without dropping requests.
  - "Plan: the containers are sorted by name (C(app-2) before C(app-10)); those already on the target image
    are skipped; the others are cut into batches of O(batch_size) or O(max_unavailable). When every container
    is on the target image nothing happens and the task reports C(changed=false). Check mode returns the plan."
  - "Per container: write a rollout record (an empty volume C(<name>-keel-rollout) in the engine, see the notes);
    take it out of the load balancer (O(load_balancer)) and wait until its sessions end; stop it with a grace
    period of O(stop_timeout) seconds; rename it C(<name>-keel-old); create its replacement under its name with
    the same configuration (environment, ports, mounts and volumes, networks or network mode, labels, restart
    policy, command, entrypoint, healthcheck, user, working directory, resources...) and the new image; start
    it; wait until it is healthy (its own healthcheck when it has one, and O(health_checks)); put it back in
    the load balancer in the admin state it had before; then remove the old container and the record."
  - What the old image supplied (its environment entries, labels, command, entrypoint, working directory,
    user, stop signal, healthcheck) is not copied, so the new image's own defaults apply; anything set on the
    container itself is.
  - "On failure - a replacement that is not healthy by O(health_timeout), or any engine or load balancer
    error - the new container is removed, the old one renamed back and started, and the container is put
    back in the load balancer. Whatever fails, no container is left stopped or out of the load balancer:
    putting it back is retried and, should the load balancer stay unreachable, the message says how to do it
    by hand. The rollout then stops and the task fails with a message naming the container and the failing
    check, unless O(max_fail_percentage) tolerates the failure."
  - "At the end every selected container is checked: it must run under its name, and its load balancer server
    must be in the admin state it had before. The task fails, listing them in RV(not_serving), when one is not -
    also when there was nothing to update."
  - Instances of one batch are replaced in parallel; batches run one after the other, O(pause) seconds apart.
  - A SIGTERM, SIGINT or SIGHUP during the rollout (a cancelled or timed-out task) stops it the same way -
    the container in progress is restored and put back, no other one starts - and the task fails.
  - "A rollout killed outright (kill -9, a lost host) is repaired by the next run of the same selection, before
    it plans: each instance it was replacing is put back on its old container (its replacement removed,
    C(<name>-keel-old) renamed back and started) and its server back in the admin state it had, as the
    record says; then the rollout proceeds and reports them in RV(repaired). When what is left cannot be told
    apart safely (a C(<name>-keel-old) next to a C(<name>) and no record), the task refuses and gives the exact
    commands that clean up."
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.audit
  - keel.ops.attributes
  - keel.ops.docker
attributes:
  check_mode:
    support: full
    details: Connects to the engine and the load balancer, validates every template and server name, and returns
      the plan (batches, skipped containers) and what an interrupted rollout left that the run would repair
      first (RV(repaired), with a warning each), without changing anything.
  diff_mode:
    support: full
    details: Returns the image of each container to update, before and after.
requirements:
  - docker (the Docker SDK for Python) 7 or later
options:
  names:
    description:
      - The containers to update, by name. At least one; an empty list is refused, since it would select every
        container on the engine.
    type: list
    elements: str
    aliases: [containers]
  labels:
    description:
      - The containers to update are those carrying all these labels (name to value), running or not. At least
        one label; an empty dict is refused, since it would select every container on the engine.
      - Containers named C(<name>-keel-old) (kept by an interrupted rollout) are never selected; they are
        repaired first (see the description).
    type: dict
  image:
    description: The image to move to, by tag (V(registry/app:2.4.1)) or digest (V(registry/app@sha256:...)).
    type: str
    required: true
  pull:
    description:
      - V(missing) pulls O(image) when the engine does not have it; V(always) pulls it first (a moved tag is
        then picked up); V(never) fails when the engine does not have it. Nothing is pulled in check mode.
    type: str
    choices: [missing, always, never]
    default: missing
  batch_size:
    description:
      - How many containers are replaced at the same time, as a count (V(2)) or a percentage of the
        containers to update (V(25%), rounded up). Defaults to 1.
      - Mutually exclusive with O(max_unavailable).
    type: str
  max_unavailable:
    description:
      - How many containers of the whole selection (including those already on the target image) may be out
        of service at once, as a count or a percentage (rounded down, as Kubernetes does).
      - Either way a batch holds at least one container, so the rollout always progresses.
    type: str
  max_fail_percentage:
    description:
      - How many failed containers the rollout tolerates before it stops, as a percentage of the containers
        it updates. A failed container is always put back on its old image.
      - As with Ansible's play keyword, the rollout stops when the failures are B(more than) this percentage.
        With 4 containers to update and V(25), one failure (25%) is tolerated and a second (50%) stops it.
        V(0) stops at the first failure; V(100) never stops.
      - Tolerated failures are reported as warnings and in RV(rolled_back); the task still succeeds.
      - A container that could not be restored or put back in the load balancer always stops the rollout.
    type: float
    default: 0
  pause:
    description: Seconds to wait after a batch before the next one.
    type: float
    default: 0
  stop_timeout:
    description: Grace period in seconds between the stop signal and a kill when an old container is stopped.
    type: int
    default: 10
  health_checks:
    description:
      - Checks a new container must pass before it is put back, in the format of M(keel.ops.health_probe)
        (C(http) and C(tcp) kinds). All must pass at the same attempt.
      - Every string is a template filled per container - C({name}), C({server}) (its load balancer server
        name), C({env[VAR]}), C({labels[key]}) and C({ports[8080/tcp]}) (the host port published for a
        container port). Write literal braces as C({{) and C(}}).
      - Needed for containers without a healthcheck of their own.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the check, used in messages. Defaults to the kind and target.
        type: str
      kind:
        description: V(http) requests O(health_checks[].url); V(tcp) connects to O(health_checks[].host):O(health_checks[].port).
        type: str
        required: true
        choices: [http, tcp]
      timeout:
        description: Seconds one attempt of this check may take; defaults to 5.
        type: float
      thresholds:
        description: Warning and critical limits of C(response_time) (V(http)) or C(connect_time) (V(tcp)), in ms.
        type: dict
      url:
        description: URL to request (V(http)), a template.
        type: str
      method:
        description: As O(keel.ops.health_probe#module:checks[].method).
        type: str
      headers:
        description: As O(keel.ops.health_probe#module:checks[].headers).
        type: dict
      body:
        description: As O(keel.ops.health_probe#module:checks[].body).
        type: raw
      status_code:
        description: As O(keel.ops.health_probe#module:checks[].status_code).
        type: list
        elements: int
      body_regex:
        description: As O(keel.ops.health_probe#module:checks[].body_regex).
        type: str
      jmespath:
        description: As O(keel.ops.health_probe#module:checks[].jmespath).
        type: str
      expect:
        description: As O(keel.ops.health_probe#module:checks[].expect).
        type: raw
      validate_certs:
        description: As O(keel.ops.health_probe#module:checks[].validate_certs).
        type: bool
      follow_redirects:
        description: As O(keel.ops.health_probe#module:checks[].follow_redirects).
        type: str
        choices: [same_origin, safe, none, "yes", "no"]
      host:
        description: Host to connect to (V(tcp)), a template.
        type: str
        aliases: [login_host]
      port:
        description: Port to connect to (V(tcp)), a template that must give a number, such as C({ports[5432/tcp]}).
        type: str
        aliases: [login_port]
  container_health:
    description:
      - Also wait until a new container's own healthcheck (C(HEALTHCHECK) in its image, or set on the container)
        reports C(healthy). An C(unhealthy) report fails the container at once.
      - On Podman without systemd, which never runs healthchecks by itself, each attempt runs it.
    type: bool
    default: true
  health_timeout:
    description:
      - Seconds from the start of a new container until it must be healthy.
      - An attempt that starts just before this deadline still gets up to one second, so that the failure names
        what the checks saw rather than the deadline.
    type: float
    default: 60
  health_interval:
    description: Seconds between two health attempts.
    type: float
    default: 1
  health_retries:
    description: Give up after this many failed attempts beyond the first, even before O(health_timeout).
    type: int
  load_balancer:
    description: How a container is taken out of rotation and put back.
    type: dict
    default: {}
    suboptions:
      type:
        description:
          - V(haproxy) uses HAProxy's runtime API at O(load_balancer.socket) - C(set server state drain), wait
            until the server's sessions reach 0 or O(load_balancer.drain_timeout), optionally
            C(shutdown sessions server), C(state maint); later C(state ready) and wait until HAProxy marks it up.
          - A server that was in C(maint) or C(drain) before the rollout (someone took it out) is reported, its
            container updated all the same, and put back in that state, not in rotation. A server left out by an
            interrupted rollout is put back in the state it had before that one.
          - V(http) calls O(load_balancer.disable_url) and O(load_balancer.enable_url). Such a hook cannot tell
            a server's state, so every server goes back in rotation.
          - V(none) does nothing (O(load_balancer.drain_delay) still applies).
        type: str
        choices: [haproxy, http, none]
        default: none
      server:
        description:
          - The container's server name in the load balancer, a template (see O(health_checks)).
        type: str
        default: "{name}"
      socket:
        description:
          - HAProxy runtime API address (V(haproxy)) - a unix socket path or V(host:port); the C(stats socket)
            needs C(level admin).
          - Several addresses for several HAProxy nodes in front of the same servers (a pair); every step is done
            on each of them.
        type: list
        elements: str
      backend:
        description: The HAProxy backend holding the servers (V(haproxy)).
        type: str
      drain_timeout:
        description: Seconds to wait for a draining server's sessions to reach 0 (V(haproxy)).
        type: float
        default: 30
      shutdown_sessions:
        description: When sessions remain after O(load_balancer.drain_timeout), close them (V(haproxy)).
        type: bool
        default: false
      serving_timeout:
        description: Seconds to wait for HAProxy to mark a server up again after it is put back (V(haproxy)).
        type: float
        default: 30
      drain_delay:
        description:
          - Seconds to wait after taking a container out, before stopping it - for a load balancer that
            cannot report sessions (V(http)) or needs time to propagate the change.
        type: float
        default: 0
      disable_url:
        description:
          - URL that takes a server out (V(http)); C({server}) is replaced by the server name.
          - It may carry credentials (V(https://user:password@lb/...), V(?token=...)), so it is hidden from the
            task's logged arguments (no_log); messages show it with the password and secret-looking query values
            (token, key, secret, signature, password, auth...) replaced by C(***).
        type: str
      enable_url:
        description:
          - URL that puts a server back (V(http)); C({server}) is replaced by the server name.
          - Hidden and masked as O(load_balancer.disable_url) is.
        type: str
      method:
        description: HTTP method of both URLs (V(http)).
        type: str
        default: POST
      headers:
        description: Headers sent to both URLs, such as C(Authorization) (V(http)); hidden from logs.
        type: dict
      validate_certs:
        description: Verify the hook's TLS certificate (V(http)).
        type: bool
        default: true
      timeout:
        description: Seconds one load balancer call may take.
        type: float
        default: 10
notes:
  - The old container is kept, stopped, as C(<name>-keel-old) until its replacement is healthy and back in the
    load balancer. If the rollout itself is killed halfway, the next run repairs what it left, or refuses with
    the commands that clean up.
  - "The rollout record of an instance is an empty volume C(<name>-keel-rollout) labelled
    C(keel.ops.rolling_update.record) (the instance, its old container, its server and that server's admin
    state, the process running the rollout): it lives in the engine, so the next run finds it from any host.
    C(docker volume prune) removes it; the repair then works from the C(<name>-keel-old) container alone."
  - Two rollouts of the same containers at once are not supported. A record whose process still runs on the
    same host is refused; one written from another host cannot be checked and counts as interrupted.
  - Containers started with auto-remove (C(--rm)) are refused, since stopping them would delete them.
  - Volumes the container got without a name (image C(VOLUME)s) are mounted by name into the replacement, so
    their data carries over.
  - Health checks run where the module runs, so C(http) URLs must be reachable from there.
  - The role C(keel.ops.rolling_update) and C(playbooks/rolling_update.yml) wrap this module with validation, a
    pre-update backup, verification, a rollback record and a notification; C(playbooks/rollback.yml) rolls back.
seealso:
  - module: keel.ops.health_probe
"""

EXAMPLES = r"""
- name: Move the app containers to 2.4.1, one at a time, behind HAProxy
  keel.ops.rolling_update:
    docker_host: unix:///var/run/docker.sock
    labels:
      app: shop-api
    image: registry.example.internal/shop-api:2.4.1
    health_checks:
      - name: health
        kind: http
        url: "http://127.0.0.1:{ports[8000/tcp]}/api/v1/health"
        jmespath: version
        expect: 2.4.1
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      backend: shop_api
      drain_timeout: 60
      shutdown_sessions: true
  register: rollout

- name: A quarter of the fleet at a time on Podman, tolerating one failed container in four
  keel.ops.rolling_update:
    docker_host: unix:///run/podman/podman.sock
    names: [worker-1, worker-2, worker-3, worker-4]
    image: registry.example.internal/worker@sha256:4b6f0c5e9d1a7c2e8f3b5a6d9c0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a
    max_unavailable: 25%
    max_fail_percentage: 25
    pause: 30
    health_checks:
      - {kind: tcp, host: 127.0.0.1, port: "{env[WORKER_PORT]}"}

- name: Behind a load balancer with an HTTP admin API
  keel.ops.rolling_update:
    labels: {app: company-extraction-api}
    image: company-extraction-api:1.9.0
    health_checks:
      - {kind: http, url: "http://{name}:8000/api/v1/health"}
    load_balancer:
      type: http
      disable_url: http://load-balancer/admin/disable/{server}
      enable_url: http://load-balancer/admin/enable/{server}
      headers:
        Authorization: "Bearer {{ vault_lb_token }}"
      drain_delay: 30

- name: Show the plan only
  keel.ops.rolling_update:
    labels: {app: shop-api}
    image: registry.example.internal/shop-api:2.4.1
    health_checks: [{kind: http, url: "http://127.0.0.1:{ports[8000/tcp]}/health"}]
  check_mode: true
  register: plan
"""

RETURN = r"""
image:
  description: The target image, as given.
  returned: always
  type: str
  sample: registry.example.internal/shop-api:2.4.1
image_id:
  description: The id the target image resolved to (null in check mode when it is not pulled yet).
  returned: always
  type: str
  sample: sha256:f48990938f6045dbc3d65a7a64049ac6efcea27a1bbfb8110d4db8f554d70f79
plan:
  description: The batches, in order, and the containers skipped because they already run the target image.
  returned: always
  type: dict
  contains:
    batches:
      description: Container names per batch.
      type: list
      elements: list
      sample: [[app-1], [app-2], [app-3]]
    skipped:
      description: Containers already on the target image.
      type: list
      elements: str
    batch_size:
      description: Containers per batch (0 when none is updated).
      type: int
    fleet:
      description: How many containers were selected.
      type: int
instances:
  description: One entry per selected container, in plan order, skipped ones last.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    server:
      description: Its server name in the load balancer.
      type: str
    batch:
      description: Its batch number (from 1), 0 when skipped.
      type: int
    result:
      description:
        - V(updated), V(skipped), V(planned) (check mode), V(rolled_back) (failed, back on the old image and
          serving), V(failed) (failed and could not be fully restored or put back - see RV(instances[].message)
          and RV(failed_instances)), or V(not_started) (the rollout stopped before it).
      type: str
    old_image:
      description: The image the container ran before.
      type: str
    old_image_id:
      description: The id of that image.
      type: str
    new_image:
      description: The image it runs now (or would run, in check mode).
      type: str
    container_id:
      description: The id of the container now serving under this name.
      type: str
    sessions_left:
      description: Sessions still open when draining ended (null when the load balancer cannot tell).
      type: int
    timings:
      description:
        - Seconds spent per step - V(drain), V(stop), V(start) (create and start), V(healthy) (until every
          health check passed), V(enable) (until the load balancer serves it again), V(rollback) (on failure),
          V(total). Steps that did not run are absent.
      type: dict
      sample: {drain: 0.12, stop: 0.31, start: 0.42, healthy: 0.05, enable: 0.01, total: 1.04}
    message:
      description: What went wrong, when something did.
      type: str
updated:
  description: Containers moved to the target image.
  returned: always
  type: list
  elements: str
rolled_back:
  description: Containers whose replacement failed, back on their old image and serving.
  returned: always
  type: list
  elements: str
failed_instances:
  description:
    - Containers that failed and could not be fully restored or put back in the load balancer. Their rollout
      record is kept, so the next run repairs them.
    - Named so that Ansible's own C(failed) flag does not overwrite it when the task fails.
  returned: always
  type: list
  elements: str
repaired:
  description:
    - Containers an interrupted rollout had left mid-replacement, put back on their old container and in their
      load balancer state before this rollout planned (in check mode - those the run would repair). They are
      then updated like the others.
  returned: always
  type: list
  elements: str
not_serving:
  description:
    - Selected containers that do not serve at the end - missing, not running, or their load balancer server
      not in the admin state it had before. The task fails when there is one; the message says why for each.
  returned: always
  type: list
  elements: str
not_started:
  description: Containers the rollout did not reach because it stopped.
  returned: always
  type: list
  elements: str
duration:
  description: Seconds the whole rollout took.
  returned: always
  type: float
diff:
  description: Image per container to update, before and after.
  returned: when diff mode is on
  type: dict
"""

import signal

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, module_failures
from ansible_collections.keel.ops.plugins.module_utils._probe.runner import check_secrets
from ansible_collections.keel.ops.plugins.module_utils._rollout.docker import PULL_CHOICES, connect_from_params
from ansible_collections.keel.ops.plugins.module_utils._rollout.haproxy import HAProxyLoadBalancer, RuntimeAPI
from ansible_collections.keel.ops.plugins.module_utils._rollout.http_hook import HttpHookLoadBalancer
from ansible_collections.keel.ops.plugins.module_utils._rollout.interfaces import LoadBalancerGroup, NoLoadBalancer
from ansible_collections.keel.ops.plugins.module_utils._rollout.plan import (
    HealthConfig,
    RolloutConfig,
    check_selector,
    plan_rollout,
)
from ansible_collections.keel.ops.plugins.module_utils._rollout.run import Rollout, plan_results

HEALTH_CHECK_OPTIONS = specs.health_check_subset(("http", "tcp"), template_port=True)

LOAD_BALANCER_OPTIONS = dict(
    type=dict(type="str", choices=["haproxy", "http", "none"], default="none"),
    server=dict(type="str", default="{name}"),
    socket=dict(type="list", elements="str"),
    backend=dict(type="str"),
    drain_timeout=dict(type="float", default=30),
    shutdown_sessions=dict(type="bool", default=False),
    serving_timeout=dict(type="float", default=30),
    drain_delay=dict(type="float", default=0),
    # The URLs may carry credentials (user:password@, ?token=): hidden from the logged arguments.
    disable_url=dict(type="str", no_log=True),
    enable_url=dict(type="str", no_log=True),
    method=dict(type="str", default="POST"),
    headers=dict(type="dict", no_log=True),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="float", default=10),
)

ARGUMENT_SPEC = dict(
    specs.DOCKER,
    **specs.AUDIT,
    names=dict(type="list", elements="str", aliases=["containers"]),
    labels=dict(type="dict"),
    image=dict(type="str", required=True),
    pull=dict(type="str", choices=list(PULL_CHOICES), default="missing"),
    batch_size=dict(type="str"),
    max_unavailable=dict(type="str"),
    max_fail_percentage=dict(type="float", default=0),
    pause=dict(type="float", default=0),
    stop_timeout=dict(type="int", default=10),
    health_checks=dict(type="list", elements="dict", default=[], options=HEALTH_CHECK_OPTIONS),
    container_health=dict(type="bool", default=True),
    health_timeout=dict(type="float", default=60),
    health_interval=dict(type="float", default=1),
    health_retries=dict(type="int"),
    load_balancer=dict(type="dict", default={}, options=LOAD_BALANCER_OPTIONS),
)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def load_balancer_from(options):
    if options["type"] == "haproxy":
        if not options["socket"]:
            raise ConfigError("load_balancer.socket is required with type haproxy: the runtime API's unix socket "
                              "path or host:port")
        members = [HAProxyLoadBalancer(RuntimeAPI(address, options["timeout"]), options["backend"],
                                       drain_timeout=options["drain_timeout"],
                                       shutdown_sessions=options["shutdown_sessions"],
                                       serving_timeout=options["serving_timeout"])
                   for address in options["socket"]]
        return members[0] if len(members) == 1 else LoadBalancerGroup(members)
    if options["type"] == "http":
        return HttpHookLoadBalancer(options["disable_url"], options["enable_url"], method=options["method"],
                                    headers=options["headers"], validate_certs=options["validate_certs"],
                                    timeout=options["timeout"])
    return NoLoadBalancer()


def rollout_config(params):
    health = HealthConfig(checks=params["health_checks"], timeout=params["health_timeout"],
                          interval=params["health_interval"], retries=params["health_retries"],
                          container_health=params["container_health"])
    lb = params["load_balancer"]
    return RolloutConfig(params["image"], health, server=lb["server"], stop_timeout=params["stop_timeout"],
                         pause=params["pause"], max_fail_percentage=params["max_fail_percentage"],
                         drain_delay=lb["drain_delay"])


def run(params, check_mode, warn):
    """Returns (result, failure message or '')."""
    check_selector(params["names"], params["labels"])
    config = rollout_config(params)
    load_balancer = load_balancer_from(params["load_balancer"])
    engine = connect_from_params(params)
    target = engine.resolve_image(params["image"], params["pull"], check_mode)
    rollout = Rollout(engine, load_balancer, config, warn=warn)
    if not check_mode:
        for signum in STOP_SIGNALS:
            # A killed task must not leave an instance stopped or out of rotation: finish the restore, then stop.
            signal.signal(signum, lambda number, _frame: rollout.interrupt(signal.Signals(number).name))
    repaired = rollout.repair(params["names"], params["labels"], check_mode)
    instances = engine.select(params["names"], params["labels"])
    if not instances:
        raise ConfigError("no container carries the labels %s on %s; check labels and docker_host"
                          % (params["labels"], engine.docker_host))
    plan = plan_rollout(instances, target.id, params["batch_size"], params["max_unavailable"])
    runs = rollout.prepare(plan)
    if check_mode:
        return plan_results(runs, plan, target, repaired), ""
    return rollout.run(plan, target, runs, repaired)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_one_of=[("names", "labels")],
                           mutually_exclusive=[("names", "labels"), ("batch_size", "max_unavailable")])
    # Credentials in health check URLs and bodies stay out of every result and message, as in health_probe.
    module.no_log_values.update(check_secrets(module.params["health_checks"]))
    with module_failures(module, "rolling_update to %s" % module.params["image"]):
        result, failure = run(module.params, module.check_mode, module.warn)
        if not module._diff:
            result.pop("diff")
        if failure:
            module.fail_json(msg=failure, **result)
        module.exit_json(**result)


if __name__ == "__main__":
    main()
