#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health_probe
short_description: Run many health checks concurrently and report one overall status
version_added: 0.1.0
description:
  - Runs a list of checks (HTTP endpoints, TCP ports, PostgreSQL, Redis, the local system, TLS certificates)
    concurrently and returns a result per check plus an overall status of C(healthy), C(warning), C(unknown)
    or C(critical).
  - Each check measures metrics (response time, connections used, memory used, disk used, days until a
    certificate expires, ...) and judges them against warning and critical thresholds. Statuses combine
    worst-first in the order C(healthy) < C(warning) < C(unknown) < C(critical).
  - A check that cannot be evaluated at all (for example it did not finish before O(deadline)) is C(unknown).
  - The module only reads and never reports a change.
  - Checks run where the module runs. Use C(delegate_to) to probe from the control node or a bastion.
author:
  - keel.ops maintainers (@keel-ops)
extends_documentation_fragment:
  - keel.ops.health_check
  - keel.ops.attributes
  - keel.ops.attributes.read_only
requirements:
  - psycopg2 (for C(postgres) checks)
  - redis (redis-py, for C(redis) checks)
  - psutil (for C(system) checks)
  - cryptography (for C(tls_cert) checks)
  - jmespath (for O(checks[].jmespath))
options:
  fail_on:
    description:
      - When the task fails. V(critical) fails on C(critical) or C(unknown); V(warning) also fails on
        C(warning); V(never) always returns the results.
      - A failing task still returns every result, and its message names each failing check and why.
    type: str
    choices: [critical, warning, never]
    default: critical
  retries:
    description:
      - How many more times to run the checks that would fail the task, waiting O(delay) seconds in between,
        until they pass. Checks that already passed are not run again.
    type: int
    default: 0
  delay:
    description: Seconds between retries.
    type: float
    default: 2
  timeout:
    description: Seconds each check may take, unless the check sets its own O(checks[].timeout).
    type: float
    default: 5
  deadline:
    description:
      - Seconds the whole task may take, retries included. Checks still running or not yet started then are
        reported C(unknown), and the module answers without waiting for them.
    type: float
  concurrency:
    description: How many checks run at the same time.
    type: int
    default: 32
notes:
  - Statuses rank C(healthy) < C(warning) < C(unknown) < C(critical); the overall status is the worst one.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Probe the service and its dependencies
  keel.ops.health_probe:
    checks:
      - name: api
        kind: http
        url: http://127.0.0.1:8080/health
        jmespath: status
        expect: ok
        thresholds:
          response_time: {warning: 300, critical: 1000}
      - name: db
        kind: postgres
        host: db1.example.internal
        user: monitor
        password: "{{ vault_monitor_password }}"
        database: app
      - name: cache
        kind: redis
        host: cache1.example.internal
        password: "{{ vault_redis_password }}"
        thresholds:
          hit_rate: {warning: 90, critical: 70}
      - name: disks
        kind: system
        mounts: [/, /var/lib/postgresql]
      - name: certificate
        kind: tls_cert
        host: www.example.com
  register: health

- name: Wait until the new release answers, up to 10 times 3 seconds
  keel.ops.health_probe:
    checks:
      - {kind: http, url: "http://{{ inventory_hostname }}:8080/health", status_code: [200, 204]}
    retries: 10
    delay: 3

- name: Collect without failing, then decide
  keel.ops.health_probe:
    checks: "{{ my_checks }}"
    fail_on: never
  register: health

- name: Page someone only for the database
  ansible.builtin.debug:
    msg: "{{ health.by_name.db.message }}"
  when: health.by_name.db.status == 'critical'
"""

RETURN = r"""
status:
  description: The overall status, the worst of all checks.
  returned: always
  type: str
  sample: critical
healthy:
  description: Whether every check is healthy.
  returned: always
  type: bool
summary:
  description: One line naming each check that is not healthy and why, worst first.
  returned: always
  type: str
  sample: "critical: 1 of 3 checks not healthy: cache (redis) critical: cannot reach redis: Connection refused"
counts:
  description: How many checks ended in each status.
  returned: always
  type: dict
  sample: {healthy: 2, warning: 0, unknown: 0, critical: 1}
failing:
  description: Names of the checks that are not healthy.
  returned: always
  type: list
  elements: str
  sample: [cache]
checks:
  description: One result per check, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check's name.
      type: str
    kind:
      description: The check's kind.
      type: str
    target:
      description: What was probed (URL, host:port, file), with a URL's credentials shown as C(***).
      type: str
    status:
      description: C(healthy), C(warning), C(unknown) or C(critical).
      type: str
    healthy:
      description: Whether the status is C(healthy).
      type: bool
    message:
      description: What is wrong, or a short note when nothing is.
      type: str
    metrics:
      description:
        - Measured values keyed by metric name, each with C(value), C(unit), C(status), C(warning) and
          C(critical). A value of null means the metric does not apply (for example replication lag on a primary).
      type: dict
      sample: {response_time: {value: 12.5, unit: ms, status: healthy, warning: 300, critical: 1000}}
    details:
      description:
        - Facts found along the way (status code, server version, certificate subject, ...).
        - For C(http), C(redirected_to) is the URL that answered after redirects and C(redirect_not_followed)
          says which redirect was not followed and why; URLs are shown with their credentials masked.
      type: dict
    duration_ms:
      description: How long the last attempt of this check took.
      type: float
    attempts:
      description: How many times this check ran.
      type: int
by_name:
  description: The same results as RV(checks), keyed by check name, for use in C(when) and C(assert).
  returned: always
  type: dict
attempts:
  description: How many rounds ran (1 plus the retries used).
  returned: always
  type: int
duration_ms:
  description: Wall-clock time of the whole task in milliseconds.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.keel.ops.plugins.module_utils import _argspecs as specs
from ansible_collections.keel.ops.plugins.module_utils._errors import module_failures
from ansible_collections.keel.ops.plugins.module_utils._probe.runner import (
    build_checks,
    check_secrets,
    probe,
    validate_run_options,
)
from ansible_collections.keel.ops.plugins.module_utils._probe.status import FAIL_ON_CHOICES, is_failing

ARGUMENT_SPEC = dict(
    checks=dict(type="list", elements="dict", required=True, options=specs.HEALTH_CHECK),
    fail_on=dict(type="str", choices=list(FAIL_ON_CHOICES), default="critical"),
    retries=dict(type="int", default=0),
    delay=dict(type="float", default=2),
    timeout=dict(type="float", default=5),
    deadline=dict(type="float"),
    concurrency=dict(type="int", default=32),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    module.no_log_values.update(check_secrets(params["checks"]))
    with module_failures(module, "health_probe"):
        validate_run_options(params)
        checks = build_checks(params["checks"], params["timeout"])
        result = probe(checks, fail_on=params["fail_on"], retries=params["retries"], delay=params["delay"],
                       deadline=params["deadline"], concurrency=params["concurrency"])
        if is_failing(result["status"], params["fail_on"]):
            module.fail_json(msg=result["summary"], changed=False, **result)
        module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
