# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by modules, kept next to the doc fragments that document them
(plugins/doc_fragments/): repository, PostgreSQL and Redis connections, encryption, retention; and health_probe's check
options, which rolling_update reuses for its health gate; the container engine connection of rolling_update and
container_state."""

from ansible.module_utils.basic import env_fallback

from ansible_collections.keel.ops.plugins.module_utils._backup.compression import COMPRESSIONS, DEFAULT_COMPRESSION

DOCKER = dict(
    docker_host=dict(type="str", fallback=(env_fallback, ["DOCKER_HOST"])),
    timeout=dict(type="float", default=60),
    ca_cert=dict(type="path"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    validate_certs=dict(type="bool", default=True),
)

# Which containers container_state and container_info act on: names or labels, one of them.
CONTAINERS = dict(
    DOCKER,
    names=dict(type="list", elements="str", aliases=["containers"]),
    labels=dict(type="dict"),
)
CONTAINERS_RULES = dict(required_one_of=[("names", "labels")], mutually_exclusive=[("names", "labels")])

# The audit trail of every module that changes something (_audit.py); documented by the keel.ops.audit fragment.
AUDIT = dict(
    audit_log=dict(type="str", fallback=(env_fallback, ["KEEL_OPS_AUDIT_LOG"])),
    audit_actor=dict(type="str", fallback=(env_fallback, ["KEEL_OPS_AUDIT_ACTOR"])),
)

REPOSITORY = dict(
    repository=dict(type="str", required=True),
    source=dict(type="str"),
    lock_timeout=dict(type="float", default=60),
    s3_endpoint_url=dict(type="str"),
    s3_region=dict(type="str"),
    s3_access_key=dict(type="str", no_log=True),
    s3_secret_key=dict(type="str", no_log=True),
    s3_session_token=dict(type="str", no_log=True),
    s3_profile=dict(type="str"),
    s3_storage_class=dict(type="str"),
    s3_sse=dict(type="str", choices=["AES256", "aws:kms"]),
    s3_sse_kms_key_id=dict(type="str", no_log=False),
    s3_validate_certs=dict(type="bool", default=True),
    signing_key_file=dict(type="path", no_log=False),
    trusted_signing_keys=dict(type="list", elements="str", no_log=False),
)

# A second repository (backup_copy's destination): the repository's storage options, each prefixed with to_.
DESTINATION = dict([("to_repository", dict(type="str", required=True))]
                   + [("to_" + name, dict(spec)) for name, spec in REPOSITORY.items() if name.startswith("s3_")])

POSTGRES = dict(
    login_host=dict(type="str"),
    login_port=dict(type="int", default=5432),
    login_user=dict(type="str"),
    login_password=dict(type="str", no_log=True),
    login_unix_socket=dict(type="str"),
    maintenance_db=dict(type="str", default="postgres"),
    ssl_mode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
    ca_cert=dict(type="path"),
    bin_dir=dict(type="path"),
)

REDIS = dict(
    login_host=dict(type="str", default="localhost"),
    login_port=dict(type="int", default=6379),
    login_unix_socket=dict(type="path"),
    login_user=dict(type="str"),
    login_password=dict(type="str", no_log=True),
    tls=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True),
    ca_cert=dict(type="path", aliases=["ca_certs"]),
    client_cert_file=dict(type="path"),
    client_key_file=dict(type="path", no_log=False),
    connect_timeout=dict(type="float", default=10),
)

ENCRYPTION = dict(
    encryption_recipients=dict(type="list", elements="str"),
    encryption_recipients_file=dict(type="path"),
    encryption_passphrase_file=dict(type="path", no_log=False),
    decryption_identity_file=dict(type="path"),
    decryption_passphrase_file=dict(type="path", no_log=False),
)

BACKUP = dict(
    compression=dict(type="str", choices=list(COMPRESSIONS), default=DEFAULT_COMPRESSION),
    compression_level=dict(type="int"),
    labels=dict(type="dict"),
    backup_id=dict(type="str", default="latest"),
    before=dict(type="str"),
)

RETENTION = dict(
    keep_last=dict(type="int"),
    keep_daily=dict(type="int"),
    keep_weekly=dict(type="int"),
    keep_monthly=dict(type="int"),
)


HEALTH_CHECK = dict(
    name=dict(type="str"),
    kind=dict(type="str", required=True, choices=["http", "tcp", "postgres", "redis", "system", "tls_cert"]),
    timeout=dict(type="float"),
    thresholds=dict(type="dict"),
    url=dict(type="str"),
    method=dict(type="str"),
    headers=dict(type="dict", no_log=True),
    body=dict(type="raw"),
    status_code=dict(type="list", elements="int"),
    body_regex=dict(type="str"),
    jmespath=dict(type="str"),
    expect=dict(type="raw"),
    follow_redirects=dict(type="str", choices=["same_origin", "safe", "none", "yes", "no"]),
    host=dict(type="str", aliases=["login_host"]),
    port=dict(type="int", aliases=["login_port"]),
    user=dict(type="str", aliases=["username", "login_user"]),
    password=dict(type="str", no_log=True, aliases=["login_password"]),
    database=dict(type="str"),
    ssl_mode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
                  aliases=["sslmode"]),
    db=dict(type="int"),
    tls=dict(type="bool"),
    ca_cert=dict(type="path"),
    validate_certs=dict(type="bool"),
    server_name=dict(type="str"),
    pem_file=dict(type="path"),
    mounts=dict(type="list", elements="str"),
    cpu_interval=dict(type="float"),
)


def health_check_aliases():
    """{alias: option} of a health check, for checks that reach the runner without AnsibleModule's help."""
    return dict((alias, name) for name, spec in HEALTH_CHECK.items() for alias in spec.get("aliases", ()))


def health_check_subset(kinds, template_port=False):
    """HEALTH_CHECK narrowed to some kinds (and, for modules that render checks per container, with port
    accepting a template string such as "{env[APP_PORT]}")."""
    options = dict((name, dict(spec)) for name, spec in HEALTH_CHECK.items()
                   if name in ("name", "kind", "timeout", "thresholds", "url", "method", "headers", "body", "status_code",
                               "body_regex", "jmespath", "expect", "validate_certs", "follow_redirects", "host", "port"))
    options["kind"]["choices"] = list(kinds)
    if template_port:
        options["port"]["type"] = "str"
    return options


INFO_FILTERS = dict(
    labels=dict(type="dict"),
    since=dict(type="str"),
    verified=dict(type="bool"),
    limit=dict(type="int"),
    max_age=dict(type="float"),
)


def merged(*specs, **extra):
    """One argument spec from shared parts plus the module's own options."""
    result = {}
    for spec in specs + (extra,):
        result.update(spec)
    return result
