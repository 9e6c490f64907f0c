# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connecting to Redis for redis_snapshot: where and as whom (password, ACL user, TLS), what a refusal means, and
the server as one connection sees it (INFO, CONFIG GET, versions, keyspace). Errors here say what failed and
what to do; a connection failure is reported at once, with no retries or backoff.

Redis is spoken to through our own small RESP connection (resp.py), not redis-py: the replication stream needs
bounded raw reads and DUMP/RESTORE needs pipelines of thousands of commands that redis-py parses slowly, and
importing redis-py (with its asyncio half) costs a tenth of a second of every run.
"""

import re
import socket
import ssl

from ansible_collections.keel.ops.plugins.module_utils._errors import RedisAuthError, RedisError, first_line
from ansible_collections.keel.ops.plugins.module_utils._redis.resp import ReplyError, RespConnection, os_reason


class Connection:
    """How to reach one Redis server; the password stays in this object and on the wire, nowhere else."""

    def __init__(self, host=None, port=6379, unix_socket=None, user=None, password=None, tls=False,
                 validate_certs=True, ca_cert=None, client_cert_file=None, client_key_file=None, timeout=10.0):
        self.host = host or "127.0.0.1"
        self.port = port or 6379
        self.unix_socket = unix_socket
        self.user = user
        self.password = password
        self.tls = tls
        self.validate_certs = validate_certs
        self.ca_cert = ca_cert
        self.client_cert_file = client_cert_file
        self.client_key_file = client_key_file
        self.timeout = timeout

    @classmethod
    def from_params(cls, params):
        """The connection the options of _argspecs.REDIS name."""
        return cls(host=params.get("login_host"), port=params.get("login_port"),
                   unix_socket=params.get("login_unix_socket"), user=params.get("login_user"),
                   password=params.get("login_password"), tls=params.get("tls"),
                   validate_certs=params.get("validate_certs", True), ca_cert=params.get("ca_cert"),
                   client_cert_file=params.get("client_cert_file"), client_key_file=params.get("client_key_file"),
                   timeout=params.get("connect_timeout") or 10)

    def describe(self):
        if self.unix_socket:
            return "redis at unix:%s" % self.unix_socket
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "redis at %s%s:%s" % ("rediss://" if self.tls else "", host, self.port)

    def ssl_context(self):
        try:
            context = ssl.create_default_context(cafile=self.ca_cert)
            if not self.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.client_cert_file:
                context.load_cert_chain(self.client_cert_file, self.client_key_file)
        except (OSError, ValueError) as error:
            raise RedisError("cannot load the TLS files for %s (%s): check ca_cert (ca_certs), client_cert_file and "
                             "client_key_file" % (self.describe(), os_reason(error)))
        return context

    def open_socket(self):
        try:
            if self.unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.unix_socket)
                return sock
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = self.ssl_context().wrap_socket(sock, server_hostname=self.host)
            return sock
        except ssl.SSLError as error:
            raise RedisError("TLS with %s failed: %s; check ca_cert (ca_certs), client_cert_file/client_key_file and "
                             "validate_certs" % (self.describe(), first_line(error)))
        except (OSError, socket.timeout) as error:
            raise RedisError("cannot connect to %s: %s" % (self.describe(), first_line(error)))

    def open_resp(self, db=0):
        """A raw RESP connection, authenticated and on database `db`."""
        resp = RespConnection(self.open_socket(), self.describe())
        if self.password:
            args = ("AUTH", self.user, self.password) if self.user else ("AUTH", self.password)
            reply = resp.request(*args)
            if isinstance(reply, ReplyError):
                resp.close()
                raise RedisAuthError(auth_advice(self, str(reply)))
        if db:
            resp.call("SELECT", db)
        return resp


def auth_advice(connection, text):
    return ("authentication to %s failed (%s): check login_password%s" %
            (connection.describe(), text, " and login_user" if connection.user else
             ", and login_user for an ACL user"))


def refusal(where, action, reply):
    """The message for an error reply, with what to do about the usual ones."""
    text = str(reply)
    if text.startswith(("NOAUTH", "WRONGPASS")):
        user = " and login_user" if "user" in text else ""
        return "%s refused %s (%s): set login_password%s" % (where, action, text, user)
    if text.startswith("NOPERM"):
        return "%s refused %s: %s; grant the user that command (ACL SETUSER)" % (where, action, text)
    return "%s failed while %s: %s" % (where, action, text)


class Server:
    """The Redis server a task works on: control commands on one RESP connection, failures as RedisError."""

    def __init__(self, connection):
        self.connection = connection
        self.resp = connection.open_resp()

    def call(self, action, *args):
        reply = self.resp.request(*args)
        if isinstance(reply, ReplyError):
            raise RedisError(refusal(self.describe(), action, reply))
        return reply

    def info(self, section=None):
        return parse_info(self.call("reading INFO", "INFO", *([section] if section else [])))

    def config_get(self, name):
        reply = self.call("reading CONFIG %s" % name, "CONFIG", "GET", name)
        return reply[1].decode("utf-8", "replace") if reply else None

    def describe(self):
        return self.connection.describe()

    def close(self):
        self.resp.close()


def parse_info(text):
    """INFO's "name:value" lines as a dict of strings; the dbN lines as dicts ({"keys": "3", ...})."""
    info = {}
    for line in text.decode("utf-8", "replace").splitlines():
        name, colon, value = line.partition(":")
        if not colon or name.startswith("#"):
            continue
        if re.match(r"^db\d+$", name):
            value = dict(part.partition("=")[::2] for part in value.split(","))
        info[name] = value
    return info


def keyspace(info):
    """{"0": {"keys": n, "expires": m}, ...} from INFO (redis-py parses db0:keys=..,expires=.. into dicts)."""
    result = {}
    for name, value in info.items():
        if re.match(r"^db\d+$", name) and isinstance(value, dict):
            result[name[2:]] = {"keys": int(value.get("keys", 0)), "expires": int(value.get("expires", 0))}
    return result


def parse_version(text):
    """(major, minor, patch) of "7.0.15"; missing parts are 0."""
    numbers = [int(part) for part in re.findall(r"\d+", text or "")[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))


# The RDB format each Redis version writes (and the newest it reads). Newer versions than listed write at least 12.
_RDB_VERSIONS = (((7, 4), 12), ((7, 2), 11), ((7, 0), 10), ((5, 0), 9), ((4, 0), 8), ((3, 2), 7), ((0, 0), 6))


def rdb_version_of(version):
    major_minor = parse_version(version)[:2] if isinstance(version, str) else tuple(version[:2])
    return next(rdb for since, rdb in _RDB_VERSIONS if major_minor >= since)
