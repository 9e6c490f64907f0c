"""pg_backup where a database, a repository or a lock could be turned against it: names read as connection
strings, forged repository content, lost locks, retention racing a restore, a restore that fails half-way."""

import socket
import struct
import threading
import uuid

import pytest
from ansible_run import run_module
from pg_fixtures import connect, create_database, fingerprints
from pg_fixtures import backup, conn_args


class PasswordTrap:
    """A loopback listener that speaks just enough of the PostgreSQL protocol to ask a client for its password
    in clear text, and keeps whatever it is given."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with client:
                client.settimeout(5)
                try:
                    self._handshake(client)
                except (OSError, struct.error):
                    pass

    def _handshake(self, client):
        length, code = struct.unpack("!II", client.recv(8))
        if code == 80877103:  # SSLRequest: say no, then the real startup packet follows
            client.sendall(b"N")
            length, code = struct.unpack("!II", client.recv(8))
        client.recv(length - 8)
        client.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        header = client.recv(5)
        if header[:1] == b"p":
            self.received.append(client.recv(struct.unpack("!I", header[1:5])[0] - 4).rstrip(b"\0").decode())
        client.sendall(b"E" + struct.pack("!I", 4 + 9) + b"SFATAL\0\0\0\0")

    def close(self):
        self.sock.close()


@pytest.fixture
def trap():
    listener = PasswordTrap()
    yield listener
    listener.close()


def _drop(pg, *names):
    conn = connect(pg)
    with conn.cursor() as cur:
        for name in names:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name.replace('"', '""'))
    conn.close()


def _create_named(pg, name):
    conn = connect(pg)
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % name.replace('"', '""'))
    conn.close()
    conn = connect(pg, name)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        cur.execute("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50) g")
    conn.close()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_database_name_is_never_read_as_a_connection_string(postgres, trap, tmp_path, jobs):
    planted = "host=127.0.0.1 port=%d dbname=%s" % (trap.port, postgres["database"])
    climbing = "../../../tmp/keel-escape-%s" % uuid.uuid4().hex[:6]
    try:
        for name in (planted, climbing):
            _create_named(postgres, name)
        for name in (planted, climbing):
            taken = backup(postgres, str(tmp_path / "repo"), name, jobs=jobs)
            assert taken.returncode == 0, taken.get("msg")
            assert taken["statistics"][name]["tables"] == {"public.t": 50}
            assert "/" not in taken["artifacts"][0]["name"] and ".." not in taken["artifacts"][0]["name"]
            done = run_module("pg_backup", dict(conn_args(postgres), state="restored", repository=str(tmp_path / "repo"),
                                                database=name, target_database=name + "_r"))
            assert done.returncode == 0, done.get("msg")
        assert trap.connections == 0 and trap.received == []
    finally:
        _drop(postgres, planted, climbing, planted + "_r", climbing + "_r")


def test_a_cluster_backup_never_hands_the_password_to_another_server(postgres, trap, tmp_path):
    planted = "host=127.0.0.1 port=%d dbname=%s" % (trap.port, postgres["database"])
    try:
        _create_named(postgres, planted)
        taken = run_module("pg_backup", dict(conn_args(postgres), repository=str(tmp_path / "repo"), scope="cluster",
                                             source="cluster"))
        assert taken.returncode == 0, taken.get("msg")
        assert planted in [a.get("database") for a in taken["artifacts"]]
        assert trap.connections == 0 and postgres["password"] not in trap.received
    finally:
        _drop(postgres, planted)
