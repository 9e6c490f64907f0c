# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe kinds of health_probe: what each one measures and how (http is http.py's).

Each kind is a KindSpec: the options it accepts (with defaults), the options it requires (a tuple inside
`required` means "one of these"), the metrics it reports (unit, direction, default limits), how to name its
target, the Python library it needs, and the probe function. A probe function takes the check's options, a
CheckResult to fill and a timeout in seconds; it records problems instead of raising, so one broken target
never hides the others.
"""

import datetime
import os
import socket
import ssl
import time
from collections import namedtuple

from ansible_collections.keel.ops.plugins.module_utils._errors import first_line
from ansible_collections.keel.ops.plugins.module_utils._probe.http import probe_http
from ansible_collections.keel.ops.plugins.module_utils._probe.status import (
    CRITICAL,
    UNKNOWN,
    MetricSpec,
    elapsed_ms,
    format_value,
)
from ansible_collections.keel.ops.plugins.module_utils._redact import mask_url

try:
    import jmespath
except ImportError:
    jmespath = None

try:
    import psycopg2
except ImportError:
    psycopg2 = None

try:
    import redis
except ImportError:
    redis = None

try:
    import psutil
except ImportError:
    psutil = None

try:
    from cryptography import x509
except ImportError:
    x509 = None


KindSpec = namedtuple("KindSpec", "options required metrics target probe library")


def probe_tcp(check, result, timeout, thresholds):
    started = time.monotonic()
    try:
        socket.create_connection((check["host"], check["port"]), timeout=timeout).close()
    except (socket.timeout, TimeoutError):
        result.problem(CRITICAL, "no connection within %gs" % timeout)
        return
    except OSError as error:
        result.problem(CRITICAL, "cannot connect: %s" % first_line(error))
        return
    result.metric("connect_time", elapsed_ms(started), "ms", thresholds["connect_time"])
    result.note("port open")


_PG_STATE_SQL = """
SELECT current_setting('server_version'),
       current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       pg_is_in_recovery(),
       pg_database_size(current_database()),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END
"""


def _pg_connect(check, timeout):
    params = dict(host=check["host"], port=check["port"], user=check["user"], password=check["password"],
                  dbname=check["database"], sslmode=check["ssl_mode"],
                  connect_timeout=max(1, int(round(timeout))),
                  application_name="keel.ops.health_probe",
                  options="-c statement_timeout=%d" % int(timeout * 1000))
    # libpq falls back to its own defaults (PGHOST, unix socket...) for options left unset.
    return psycopg2.connect(**dict((k, v) for k, v in params.items() if v is not None))


def probe_postgres(check, result, timeout, thresholds):
    try:
        conn = _pg_connect(check, timeout)
    except psycopg2.Error as error:
        result.problem(CRITICAL, "cannot connect: %s" % first_line(error))
        return
    try:
        with conn.cursor() as cur:
            started = time.monotonic()
            cur.execute("SELECT 1")
            cur.fetchone()
            result.metric("query_time", elapsed_ms(started), "ms", thresholds["query_time"])
            cur.execute(_PG_STATE_SQL)
            version, max_conn, used, in_recovery, size, lag = cur.fetchone()
    except psycopg2.Error as error:
        result.problem(CRITICAL, "query failed: %s" % first_line(error))
        return
    finally:
        conn.close()
    result.metric("connections_used", round(100.0 * used / max_conn, 1), "%", thresholds["connections_used"])
    result.metric("replication_lag", None if lag is None else round(float(lag), 1), "s",
                  thresholds["replication_lag"])
    result.metric("database_size", int(size), "bytes", thresholds["database_size"])
    result.details.update(server_version=version, in_recovery=in_recovery, connections=used,
                          max_connections=max_conn)
    result.note("PostgreSQL %s %s" % (version, "replica" if in_recovery else "primary"))


def _redis_client(check, timeout):
    options = dict(host=check["host"], port=check["port"], db=check["db"], username=check["user"],
                   password=check["password"], socket_timeout=timeout, socket_connect_timeout=timeout)
    if check["tls"]:
        # Explicit: redis-py before 6 does not check the host name even when it verifies the certificate.
        options.update(ssl=True, ssl_ca_certs=check["ca_cert"],
                       ssl_cert_reqs="required" if check["validate_certs"] else "none",
                       ssl_check_hostname=bool(check["validate_certs"]))
    return redis.Redis(**options)


def _redis_ratio(numerator, denominator):
    return round(100.0 * numerator / denominator, 1) if denominator else None


def probe_redis(check, result, timeout, thresholds):
    client = _redis_client(check, timeout)
    try:
        started = time.monotonic()
        client.ping()
        ping_ms = elapsed_ms(started)
        info = client.info()
    except redis.exceptions.AuthenticationError as error:
        result.problem(CRITICAL, "authentication failed: %s" % first_line(error))
        return
    except redis.exceptions.RedisError as error:
        result.problem(CRITICAL, "cannot reach redis: %s" % first_line(error))
        return
    finally:
        client.close()
    result.metric("ping_time", ping_ms, "ms", thresholds["ping_time"])
    result.metric("memory_used", _redis_ratio(info.get("used_memory", 0), info.get("maxmemory", 0)), "%",
                  thresholds["memory_used"])
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    result.metric("hit_rate", _redis_ratio(hits, hits + misses), "%", thresholds["hit_rate"])
    result.metric("connected_clients", info.get("connected_clients", 0), "", thresholds["connected_clients"])
    bgsave = info.get("rdb_last_bgsave_status", "ok")
    if bgsave != "ok":
        result.problem(CRITICAL, "last background save failed (rdb_last_bgsave_status: %s)" % bgsave)
    if info.get("role") == "slave" and info.get("master_link_status") != "up":
        result.problem(CRITICAL, "replica's link to its primary is %s" % info.get("master_link_status"))
    result.details.update(version=info.get("redis_version"), role=info.get("role"),
                          used_memory=info.get("used_memory"), maxmemory=info.get("maxmemory"),
                          rdb_last_bgsave_status=bgsave)
    result.note("Redis %s %s" % (info.get("redis_version"), info.get("role")))


def probe_system(check, result, timeout, thresholds):
    result.metric("cpu", psutil.cpu_percent(interval=min(check["cpu_interval"], timeout)), "%",
                  thresholds["cpu"])
    result.metric("memory", psutil.virtual_memory().percent, "%", thresholds["memory"])
    for mount in check["mounts"]:
        try:
            usage = psutil.disk_usage(mount)
        except OSError as error:
            result.problem(UNKNOWN, "cannot read disk usage of %s: %s" % (mount, first_line(error)))
            continue
        result.metric("disk:%s" % mount, usage.percent, "%", thresholds["disk"])
    load1 = os.getloadavg()[0]
    result.metric("load_per_cpu", round(load1 / (psutil.cpu_count() or 1), 2), "", thresholds["load_per_cpu"])
    result.details.update(load_1m=load1, cpu_count=psutil.cpu_count())
    result.note(", ".join("%s %s" % (name, format_value(metric["value"], metric["unit"]))
                          for name, metric in result.metrics.items()))


def _fetch_certificate(check, timeout, verify):
    """Return the server's leaf certificate (DER); with verify, fail when the chain or name is wrong."""
    context = ssl.create_default_context()
    if not verify:
        # Expiry is worth reporting even for a self-signed or mismatched certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    server_name = check["server_name"] or check["host"]
    with socket.create_connection((check["host"], check["port"]), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def _load_certificate(check, timeout):
    if check["pem_file"]:
        with open(check["pem_file"], "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read())
    return x509.load_der_x509_certificate(_fetch_certificate(check, timeout, verify=False))


def _not_after(cert):
    # cryptography >= 42 offers a timezone-aware accessor; older releases return naive UTC.
    value = getattr(cert, "not_valid_after_utc", None)
    return value or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def probe_tls_cert(check, result, timeout, thresholds):
    try:
        cert = _load_certificate(check, timeout)
    except (OSError, ValueError) as error:
        result.problem(CRITICAL, "cannot read certificate: %s" % first_line(error))
        return
    not_after = _not_after(cert)
    days = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400.0
    result.metric("days_remaining", round(days, 1), "days", thresholds["days_remaining"])
    result.details.update(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                          not_after=not_after.isoformat(), serial_number=str(cert.serial_number))
    if days <= 0:
        result.problem(CRITICAL, "certificate expired on %s" % not_after.date().isoformat())
    if check["validate_certs"] and not check["pem_file"]:
        try:
            _fetch_certificate(check, timeout, verify=True)
        except (OSError, ValueError) as error:
            result.problem(CRITICAL, "certificate does not verify: %s" % first_line(error))
    result.note("expires %s" % not_after.date().isoformat())


def _host_port(check):
    return "%s:%s" % (check["host"], check["port"])


CHECK_KINDS = {
    "http": KindSpec(
        options=dict(url=None, method="GET", headers={}, body=None, status_code=[200], body_regex=None,
                     jmespath=None, expect=None, validate_certs=True, follow_redirects="same_origin"),
        required=("url",),
        metrics=dict(response_time=MetricSpec("ms", True, None, None)),
        target=lambda c: mask_url(c["url"]),
        probe=probe_http,
        library=None,
    ),
    "tcp": KindSpec(
        options=dict(host=None, port=None),
        required=("host", "port"),
        metrics=dict(connect_time=MetricSpec("ms", True, None, None)),
        target=_host_port,
        probe=probe_tcp,
        library=None,
    ),
    "postgres": KindSpec(
        options=dict(host=None, port=5432, user=None, password=None, database="postgres", ssl_mode="prefer"),
        required=(),
        metrics=dict(query_time=MetricSpec("ms", True, None, None),
                     connections_used=MetricSpec("%", True, 80.0, 95.0),
                     replication_lag=MetricSpec("s", True, None, None),
                     database_size=MetricSpec("bytes", True, None, None)),
        target=lambda c: "%s:%s/%s" % (c["host"] or "(local socket)", c["port"], c["database"]),
        probe=probe_postgres,
        library=("psycopg2", "psycopg2-binary"),
    ),
    "redis": KindSpec(
        options=dict(host="localhost", port=6379, user=None, password=None, db=0, tls=False, ca_cert=None,
                     validate_certs=True),
        required=(),
        metrics=dict(ping_time=MetricSpec("ms", True, None, None),
                     memory_used=MetricSpec("%", True, 80.0, 95.0),
                     hit_rate=MetricSpec("%", False, None, None),
                     connected_clients=MetricSpec("", True, None, None)),
        target=_host_port,
        probe=probe_redis,
        library=("redis", "redis"),
    ),
    "system": KindSpec(
        options=dict(mounts=["/"], cpu_interval=0.5),
        required=(),
        metrics=dict(cpu=MetricSpec("%", True, None, None),
                     memory=MetricSpec("%", True, 90.0, 95.0),
                     disk=MetricSpec("%", True, 80.0, 90.0),
                     load_per_cpu=MetricSpec("", True, None, None)),
        target=lambda c: socket.gethostname(),
        probe=probe_system,
        library=("psutil", "psutil"),
    ),
    "tls_cert": KindSpec(
        options=dict(host=None, port=443, server_name=None, pem_file=None, validate_certs=False),
        required=(("host", "pem_file"),),
        metrics=dict(days_remaining=MetricSpec("days", False, 30.0, 7.0)),
        target=lambda c: c["pem_file"] or _host_port(c),
        probe=probe_tls_cert,
        library=("cryptography", "cryptography"),
    ),
}


_LIBRARY_MODULES = {"psycopg2": psycopg2, "redis": redis, "psutil": psutil, "cryptography": x509,
                    "jmespath": jmespath}


def library_available(import_name):
    return _LIBRARY_MODULES.get(import_name) is not None


def jmespath_error(expression):
    """Return why a jmespath expression does not compile, or None when it does."""
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as error:
        return str(error).strip()
    return None
