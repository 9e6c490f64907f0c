# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # How modules reach a PostgreSQL server and its client tools.

    DOCUMENTATION = r"""
options:
  login_host:
    description: Host of the PostgreSQL server; unset connects through the local unix socket.
    type: str
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description: Role to connect as; it needs to read everything it backs up, and to create databases to restore.
    type: str
  login_password:
    description:
      - Password of O(login_user). Client tools get it through a 0600 password file in a private temporary
        directory, never on a command line; it is never logged or returned.
    type: str
  login_unix_socket:
    description: Directory of the server's unix socket, used when O(login_host) is unset.
    type: str
  maintenance_db:
    description: Database to connect to for creating and dropping databases.
    type: str
    default: postgres
  ssl_mode:
    description: libpq sslmode.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: CA certificate to verify the server with.
    type: path
  bin_dir:
    description:
      - Directory of C(pg_dump), C(pg_dumpall), C(pg_restore) and C(psql); unset searches PATH.
      - They must be the server's major version or newer; an older C(pg_dump) is refused with a clear message.
    type: path
"""
