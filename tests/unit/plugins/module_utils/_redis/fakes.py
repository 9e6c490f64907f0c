"""Fakes the Redis unit tests share: a scripted far end of a socket, and module parameters."""

import random
import socket
import threading

from ansible_collections.keel.ops.plugins.module_utils._redis import resp as redis_resp


class FakeServer:
    """The far end of a socketpair: sends scripted bytes in random pieces from a thread, records what it got."""

    def __init__(self, pieces, seed=7):
        self.ours, self.theirs = socket.socketpair()
        self.pieces = pieces
        self.random = random.Random(seed)
        self.thread = threading.Thread(target=self._send)
        self.thread.start()

    def _send(self):
        data = b"".join(self.pieces)
        while data:
            cut = self.random.randint(1, 70000)
            self.theirs.sendall(data[:cut])
            data = data[cut:]
        self.theirs.shutdown(socket.SHUT_WR)

    def connection(self):
        server = self

        class Connection:
            timeout = 5

            @staticmethod
            def describe():
                return "fake redis"

            @staticmethod
            def open_resp():
                return redis_resp.RespConnection(server.ours, "fake redis")

        return Connection()

    def close(self):
        self.thread.join()
        self.theirs.close()


def read_all(reader):
    return b"".join(iter(lambda: reader.read(redis_resp.CHUNK), b""))


HANDSHAKE = [b"+OK\r\n", b"-ERR Unrecognized REPLCONF option: rdb-only\r\n", b"+FULLRESYNC 8de1 1234\r\n", b"\n\n\n"]


PARAMS = dict(login_host="localhost", login_port=6379, login_unix_socket=None, login_user=None, login_password=None,
              tls=False, validate_certs=True, ca_cert=None, client_cert_file=None, client_key_file=None,
              connect_timeout=10, repository="/srv/backups", source=None, compression="zstd",
              compression_level=None, timeout=60, state="present", restore_method="keys", before=None,
              stop_command=None, start_command=None, systemd_service=None, docker_container=None)
