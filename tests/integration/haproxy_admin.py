"""HAProxy's runtime API as the tests read it: one command per connection, and the servers' states."""

import socket


def admin(path, command):
    """The answer of HAProxy's runtime API at the unix socket `path` to `command`."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)


def server_states(path, backend="app"):
    """server -> (operational state, admin state): ('2', '0') is up and in rotation."""
    lines = admin(path, "show servers state %s" % backend).splitlines()
    rows = [line.split() for line in lines if line and not line.startswith("#") and len(line.split()) > 6]
    return dict((row[3], (row[5], row[6])) for row in rows)
