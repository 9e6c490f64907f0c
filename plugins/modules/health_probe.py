#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

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
  - keel.ops.attributes
  - keel.ops.attributes.read_only
requirements:
  - psycopg2 (for C(postgres) checks)
  - redis (redis-py, for C(redis) checks)
  - psutil (for C(system) checks)
  - cryptography (for C(tls_cert) checks)
  - jmespath (for O(checks[].jmespath))
options:
  checks:
    description:
      - The checks to run. Each needs a O(checks[].kind); the other options depend on the kind and an
        option that does not apply to the kind is refused.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Unique name of the check; results are keyed by it in RV(by_name).
          - Defaults to the kind and target, for example C(http http://127.0.0.1:8080/health).
        type: str
      kind:
        description:
          - C(http) requests O(checks[].url) and checks the status code, response time and optionally the body.
          - C(tcp) opens a connection to O(checks[].host):O(checks[].port) and measures the connect time.
          - C(postgres) connects, times C(SELECT 1) and reports connections used (percent of max_connections),
            replication lag on a replica and the database size.
          - C(redis) times PING and reports memory used (percent of maxmemory when one is set), keyspace hit
            rate, connected clients; a failed last background save or a broken replica link is critical.
          - C(system) reports cpu, memory and disk usage (percent, per mount point in O(checks[].mounts)) and
            the 1-minute load per CPU of the host running the module.
          - C(tls_cert) reports the days until a certificate expires, read from a server
            (O(checks[].host):O(checks[].port)) or a PEM file (O(checks[].pem_file)).
        type: str
        required: true
        choices: [http, tcp, postgres, redis, system, tls_cert]
      timeout:
        description:
          - Seconds this check may take in all (connecting, following redirects, reading the whole body);
            defaults to the top-level O(timeout).
          - A check still running a second after its timeout is reported C(unknown) wherever it is stuck (for
            example in a DNS lookup that never answers), and the module does not wait for it.
        type: float
      thresholds:
        description:
          - Warning and critical limits per metric, as a dict from metric name to a dict with C(warning)
            and/or C(critical) numbers. A value at or beyond a limit takes that status.
          - For most metrics higher is worse; for C(hit_rate) and C(days_remaining) lower is worse.
          - Metrics by kind. C(http) - C(response_time) (ms). C(tcp) - C(connect_time) (ms).
            C(postgres) - C(query_time) (ms), C(connections_used) (%, default 80/95), C(replication_lag) (s),
            C(database_size) (bytes). C(redis) - C(ping_time) (ms), C(memory_used) (%, default 80/95),
            C(hit_rate) (%), C(connected_clients). C(system) - C(cpu) (%), C(memory) (%, default 90/95),
            C(disk) (%, default 80/90, applied to every mount), C(load_per_cpu).
            C(tls_cert) - C(days_remaining) (days, default 30/7).
        type: dict
      url:
        description:
          - URL to request (C(http)).
          - A password in it, and the values of query parameters whose names look secret (C(token), C(key),
            C(sig), C(password), C(auth), ...), are shown as C(***) in the check's name, target and messages, and
            hidden from the task's output.
        type: str
      method:
        description: HTTP method (C(http)); defaults to C(GET).
        type: str
      headers:
        description:
          - Request headers (C(http)). Hidden from logs, since they often carry credentials.
          - Those that look like credentials (C(Authorization), C(Cookie), names with C(token), C(key), C(auth),
            ...) are not sent on when a redirect leaves the origin (O(checks[].follow_redirects=safe)).
        type: dict
      body:
        description:
          - Request body (C(http)); a dict or list is sent as JSON.
          - The values of its fields whose names look secret (C(password), C(token), C(api_key), ...), in a dict,
            a JSON text or a form, are hidden from the task's output. For a body that is secret as a whole, set
            C(no_log) on the task.
        type: raw
      status_code:
        description: Status codes that count as healthy (C(http)); defaults to C([200]).
        type: list
        elements: int
      body_regex:
        description: A regular expression the response body must match (C(http)).
        type: str
      jmespath:
        description:
          - A JMESPath expression evaluated over the JSON response body (C(http)). Its value is returned in
            C(details.jmespath_value).
        type: str
      expect:
        description:
          - The value O(checks[].jmespath) must produce; a mismatch is critical and the message shows the
            expected and the actual value.
        type: raw
      follow_redirects:
        description:
          - Which redirects of GET and HEAD requests to follow (C(http)); defaults to V(same_origin). A redirect
            that is not followed is the answer, judged by O(checks[].status_code), and the message says why.
          - V(same_origin) follows redirects to the same scheme, host and port only.
          - V(safe) follows them to other hosts and ports as well, but never from https to http, and leaves out
            the headers that look like credentials (see O(checks[].headers)) once the redirect leaves the origin.
          - V(none) follows no redirect.
          - V(yes) and V(no), what the former true and false become, mean V(same_origin) and V(none).
        type: str
        choices: [same_origin, safe, none, "yes", "no"]
      host:
        description:
          - Host to connect to (C(tcp), C(postgres), C(redis), C(tls_cert)).
          - For C(postgres) a directory means a unix socket; unset uses libpq's defaults.
          - Defaults to C(localhost) for C(redis).
        type: str
        aliases: [login_host]
      port:
        description:
          - Port to connect to. Defaults to 5432 for C(postgres), 6379 for C(redis), 443 for C(tls_cert).
        type: int
        aliases: [login_port]
      user:
        description: PostgreSQL role (C(postgres)) or ACL user (C(redis), Redis 6 or later) to connect as.
        type: str
        aliases: [username, login_user]
      password:
        description:
          - Password (C(postgres), C(redis)). It is passed to the client library in memory, never on a
            command line, and hidden from logs and results.
        type: str
        aliases: [login_password]
      database:
        description: Database to connect to (C(postgres)); defaults to C(postgres).
        type: str
      ssl_mode:
        description: libpq sslmode (C(postgres)); defaults to C(prefer).
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
        aliases: [sslmode]
      db:
        description: Redis database number (C(redis)); defaults to 0.
        type: int
      tls:
        description: Connect to Redis over TLS (C(redis)).
        type: bool
      ca_cert:
        description: CA bundle to verify the Redis server certificate with (C(redis)).
        type: path
      validate_certs:
        description:
          - For C(http) and C(redis) over TLS, verify the server certificate; defaults to true.
          - For C(tls_cert), also report a certificate that does not verify (chain or name) as critical;
            defaults to false so a self-signed certificate's expiry can still be watched.
        type: bool
      server_name:
        description: Name sent as SNI and checked against the certificate (C(tls_cert)); defaults to O(checks[].host).
        type: str
      pem_file:
        description: Read the certificate from this PEM file instead of a server (C(tls_cert)).
        type: path
      mounts:
        description: Mount points whose disk usage is measured (C(system)); defaults to C([/]).
        type: list
        elements: str
      cpu_interval:
        description: Seconds over which CPU usage is sampled (C(system)); defaults to 0.5.
        type: float
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
