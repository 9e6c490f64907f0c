# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # How modules reach a Redis server (the options of _argspecs.REDIS).

    DOCUMENTATION = r"""
options:
  login_host:
    description: Host of the Redis server.
    type: str
    default: localhost
  login_port:
    description: Port of the Redis server.
    type: int
    default: 6379
  login_unix_socket:
    description: Unix socket of the Redis server; used instead of O(login_host) and O(login_port) when set.
    type: path
  login_user:
    description: ACL user to authenticate as (Redis 6+); needs O(login_password).
    type: str
  login_password:
    description:
      - Password (C(requirepass), or the ACL user's). It travels only to the server; it is never on a command line,
        in a result or in a log.
    type: str
  tls:
    description: Connect with TLS.
    type: bool
    default: false
  validate_certs:
    description: With O(tls), verify the server's certificate and host name.
    type: bool
    default: true
  ca_cert:
    description: CA certificates to verify the server with (PEM file); the system's when unset.
    type: path
    aliases: [ca_certs]
  client_cert_file:
    description: Client certificate (PEM) for servers that require one (C(tls-auth-clients yes)).
    type: path
  client_key_file:
    description: Key of O(client_cert_file).
    type: path
  connect_timeout:
    description: Seconds to wait for a connection or a reply.
    type: float
    default: 10
"""
