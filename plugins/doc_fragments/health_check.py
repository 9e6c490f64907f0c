# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import textwrap


# The options of one health check, documented once: health_probe's checks take them all, rolling_update's
# health_checks the http and tcp ones (where every string is a template). %PARENT% is the list option's name.
_SUBOPTIONS = {
    "name": r"""
description:
  - Unique name of the check; results are keyed by it in RV(by_name).
  - Defaults to the kind and target, for example C(http http://127.0.0.1:8080/health).
type: str
""",
    "kind": r"""
description:
  - C(http) requests O(%PARENT%[].url) and checks the status code, response time and optionally the body.
  - C(tcp) opens a connection to O(%PARENT%[].host):O(%PARENT%[].port) and measures the connect time.
  - C(postgres) connects, times C(SELECT 1) and reports connections used (percent of max_connections),
    replication lag on a replica and the database size.
  - C(redis) times PING and reports memory used (percent of maxmemory when one is set), keyspace hit
    rate, connected clients; a failed last background save or a broken replica link is critical.
  - C(system) reports cpu, memory and disk usage (percent, per mount point in O(%PARENT%[].mounts)) and
    the 1-minute load per CPU of the host running the module.
  - C(tls_cert) reports the days until a certificate expires, read from a server
    (O(%PARENT%[].host):O(%PARENT%[].port)) or a PEM file (O(%PARENT%[].pem_file)).
type: str
required: true
choices: [http, tcp, postgres, redis, system, tls_cert]
""",
    "timeout": r"""
description:
  - Seconds this check may take in all (connecting, following redirects, reading the whole body);
    defaults to the top-level O(timeout).
  - A check still running a second after its timeout is reported C(unknown) wherever it is stuck (for
    example in a DNS lookup that never answers), and the module does not wait for it.
type: float
""",
    "thresholds": r"""
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
""",
    "url": r"""
description:
  - URL to request (C(http)).
  - A password in it, and the values of query parameters whose names look secret (C(token), C(key),
    C(sig), C(password), C(auth), ...), are shown as C(***) in the check's name, target and messages, and
    hidden from the task's output.
type: str
""",
    "method": r"""
description: HTTP method (C(http)); defaults to C(GET).
type: str
""",
    "headers": r"""
description:
  - Request headers (C(http)). Hidden from logs, since they often carry credentials.
  - Those that look like credentials (C(Authorization), C(Cookie), names with C(token), C(key), C(auth),
    ...) are not sent on when a redirect leaves the origin (O(%PARENT%[].follow_redirects=safe)).
type: dict
""",
    "body": r"""
description:
  - Request body (C(http)); a dict or list is sent as JSON.
  - The values of its fields whose names look secret (C(password), C(token), C(api_key), ...), in a dict,
    a JSON text or a form, are hidden from the task's output. For a body that is secret as a whole, set
    C(no_log) on the task.
type: raw
""",
    "status_code": r"""
description: Status codes that count as healthy (C(http)); defaults to C([200]).
type: list
elements: int
""",
    "body_regex": r"""
description: A regular expression the response body must match (C(http)).
type: str
""",
    "jmespath": r"""
description:
  - A JMESPath expression evaluated over the JSON response body (C(http)). Its value is returned in
    C(details.jmespath_value).
type: str
""",
    "expect": r"""
description:
  - The value O(%PARENT%[].jmespath) must produce; a mismatch is critical and the message shows the
    expected and the actual value.
type: raw
""",
    "follow_redirects": r"""
description:
  - Which redirects of GET and HEAD requests to follow (C(http)); defaults to V(same_origin). A redirect
    that is not followed is the answer, judged by O(%PARENT%[].status_code), and the message says why.
  - V(same_origin) follows redirects to the same scheme, host and port only.
  - V(safe) follows them to other hosts and ports as well, but never from https to http, and leaves out
    the headers that look like credentials (see O(%PARENT%[].headers)) once the redirect leaves the origin.
  - V(none) follows no redirect.
  - V(yes) and V(no), what the former true and false become, mean V(same_origin) and V(none).
type: str
choices: [same_origin, safe, none, "yes", "no"]
""",
    "host": r"""
description:
  - Host to connect to (C(tcp), C(postgres), C(redis), C(tls_cert)).
  - For C(postgres) a directory means a unix socket; unset uses libpq's defaults.
  - Defaults to C(localhost) for C(redis).
type: str
aliases: [login_host]
""",
    "port": r"""
description:
  - Port to connect to. Defaults to 5432 for C(postgres), 6379 for C(redis), 443 for C(tls_cert).
type: int
aliases: [login_port]
""",
    "user": r"""
description: PostgreSQL role (C(postgres)) or ACL user (C(redis), Redis 6 or later) to connect as.
type: str
aliases: [username, login_user]
""",
    "password": r"""
description:
  - Password (C(postgres), C(redis)). It is passed to the client library in memory, never on a
    command line, and hidden from logs and results.
type: str
aliases: [login_password]
""",
    "database": r"""
description: Database to connect to (C(postgres)); defaults to C(postgres).
type: str
""",
    "ssl_mode": r"""
description: libpq sslmode (C(postgres)); defaults to C(prefer).
type: str
choices: [disable, allow, prefer, require, verify-ca, verify-full]
aliases: [sslmode]
""",
    "db": r"""
description: Redis database number (C(redis)); defaults to 0.
type: int
""",
    "tls": r"""
description: Connect to Redis over TLS (C(redis)).
type: bool
""",
    "ca_cert": r"""
description: CA bundle to verify the Redis server certificate with (C(redis)).
type: path
""",
    "validate_certs": r"""
description:
  - For C(http) and C(redis) over TLS, verify the server certificate; defaults to true.
  - For C(tls_cert), also report a certificate that does not verify (chain or name) as critical;
    defaults to false so a self-signed certificate's expiry can still be watched.
type: bool
""",
    "server_name": r"""
description: Name sent as SNI and checked against the certificate (C(tls_cert)); defaults to O(%PARENT%[].host).
type: str
""",
    "pem_file": r"""
description: Read the certificate from this PEM file instead of a server (C(tls_cert)).
type: path
""",
    "mounts": r"""
description: Mount points whose disk usage is measured (C(system)); defaults to C([/]).
type: list
elements: str
""",
    "cpu_interval": r"""
description: Seconds over which CPU usage is sampled (C(system)); defaults to 0.5.
type: float
""",
}

# What rolling_update says differently of the options it shares with health_probe.
_ROLLOUT_SUBOPTIONS = {
    "name": r"""
description: Name of the check, used in messages. Defaults to the kind and target.
type: str
""",
    "kind": r"""
description: V(http) requests O(%PARENT%[].url); V(tcp) connects to O(%PARENT%[].host):O(%PARENT%[].port).
type: str
required: true
choices: [http, tcp]
""",
    "timeout": r"""
description: Seconds one attempt of this check may take; defaults to 5.
type: float
""",
    "url": r"""
description: URL to request (V(http)), a template.
type: str
""",
    "host": r"""
description: Host to connect to (V(tcp)), a template.
type: str
aliases: [login_host]
""",
    "port": r"""
description: Port to connect to (V(tcp)), a template that must give a number, such as C({ports[5432/tcp]}).
type: str
aliases: [login_port]
""",
    "thresholds": r"""
description: Warning and critical limits of C(response_time) (V(http)) or C(connect_time) (V(tcp)), in ms.
type: dict
""",
}

_PROBE_OPTION = r"""
  description:
    - The checks to run. Each needs a O(checks[].kind); the other options depend on the kind and an
      option that does not apply to the kind is refused.
  type: list
  elements: dict
  required: true
"""

_ROLLOUT_OPTION = r"""
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
"""

_ROLLOUT_NAMES = ("name", "kind", "timeout", "thresholds", "url", "method", "headers", "body", "status_code",
                  "body_regex", "jmespath", "expect", "validate_certs", "follow_redirects", "host", "port")


def _indent(text, spaces):
    return "\n".join((" " * spaces + line) if line else line for line in text.strip("\n").split("\n"))


def _option(parent, head, suboptions):
    """The YAML of the list option `parent` whose elements take `suboptions` (name -> YAML text)."""
    parts = ["options:", "  %s:" % parent, _indent(textwrap.dedent(head), 4), "    suboptions:"]
    for name, text in suboptions:
        parts += ["      %s:" % name, _indent(text.replace("%PARENT%", parent), 8)]
    return "\n".join(parts) + "\n"


class ModuleDocFragment(object):
    # health_probe's checks: every option of a check.
    DOCUMENTATION = _option("checks", _PROBE_OPTION, list(_SUBOPTIONS.items()))

    # rolling_update's health_checks: the http and tcp options, every string a template.
    ROLLOUT = _option("health_checks", _ROLLOUT_OPTION,
                      [(name, _ROLLOUT_SUBOPTIONS.get(name, _SUBOPTIONS[name])) for name in _ROLLOUT_NAMES])
