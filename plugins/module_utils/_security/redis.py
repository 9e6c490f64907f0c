# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security findings of a Redis server: whether it answers without a password (tried on a connection of its own,
without the credentials the audit was given), protected mode, the addresses it binds beyond loopback, dangerous
commands left enabled, and TLS. Read-only."""

import copy

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisError
from ansible_collections.keel.ops.plugins.module_utils._redis.connection import Server
from ansible_collections.keel.ops.plugins.module_utils._security.findings import finding

DANGEROUS = ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG", "KEYS", "SHUTDOWN", "MODULE", "SCRIPT", "MIGRATE")
LOOPBACK = ("127.0.0.1", "::1", "-::1", "localhost")


def answers_without_password(connection):
    """Whether PING succeeds on a connection that sends no AUTH."""
    anonymous = copy.copy(connection)
    anonymous.user = anonymous.password = None
    try:
        server = Server(anonymous)
    except RedisError:
        return False
    try:
        server.call("pinging without a password", "PING")
        return True
    except RedisError:
        return False
    finally:
        server.close()


def _config(server, name):
    try:
        return server.config_get(name)
    except RedisError:
        return None


def bind_findings(bind, where):
    addresses = (bind or "").split()
    wide = [address for address in addresses if address.lstrip("-") in ("*", "0.0.0.0", "::")]
    other = [address for address in addresses if address not in LOOPBACK and address not in wide]
    if wide or (bind is not None and not addresses):
        return [finding("redis.bind", "high", where, "Redis listens on every interface (bind %s)" % (bind or "unset"),
                        "bind 127.0.0.1 -::1 plus only the private addresses clients use, and a firewall")]
    if other:
        return [finding("redis.bind", "low", where, "Redis listens beyond loopback on %s" % " ".join(other),
                        "keep it to the private addresses clients use, behind a firewall, with requirepass and TLS")]
    return []


def enabled_commands(server, names=DANGEROUS):
    """The commands of `names` this server has (a command renamed away with rename-command answers nil)."""
    reply = server.call("reading COMMAND INFO", "COMMAND", "INFO", *names)
    return [name for name, info in zip(names, reply or []) if info]


def audit(connection, where):
    found = []
    if answers_without_password(connection):
        found.append(finding("redis.no_auth", "critical", where, "Redis answers without a password",
                             "set requirepass (or ACL users with passwords and 'user default off'), then restart "
                             "clients with the password"))
    server = Server(connection)
    try:
        protected = _config(server, "protected-mode")
        bind = _config(server, "bind")
        tls_port = _config(server, "tls-port")
        commands = enabled_commands(server)
    finally:
        server.close()
    if protected is None and bind is None:
        found.append(finding("redis.unreadable", "info", where, "CONFIG GET is not available to the audit",
                             "audit with a user allowed CONFIG GET, or check protected-mode and bind by hand"))
    if protected == "no":
        found.append(finding("redis.protected_mode", "high", where, "protected-mode is off",
                             "CONFIG SET protected-mode yes (and in redis.conf)"))
    found += bind_findings(bind, where) if bind is not None else []
    if tls_port in (None, "0", ""):
        found.append(finding("redis.tls", "medium", where, "TLS is off: commands and data travel in clear text",
                             "set tls-port, tls-cert-file and tls-key-file, and port 0 once clients use TLS"))
    if commands:
        found.append(finding("redis.dangerous_commands", "medium", where,
                             "dangerous commands are enabled: %s" % ", ".join(commands),
                             "rename-command them to \"\" in redis.conf, or deny them to application users with "
                             "ACL SETUSER <user> -@dangerous", detail={"commands": commands}))
    return found
