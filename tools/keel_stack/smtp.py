"""A mail server for the embedded stack: Debian's python3 running smtp_server.py (aiosmtpd), with a
self-signed certificate for STARTTLS, a user and password of its own, and a spool directory of the messages
it accepted.
"""

from __future__ import annotations

import datetime
import secrets
from pathlib import Path

from .constants import LOOPBACK
from .process import StackError, find_tool, new_secret, pick_port, port_answers, write_private
from .service import Service

SYSTEM_PYTHON = "/usr/bin/python3"
AIOSMTPD = "/usr/lib/python3/dist-packages/aiosmtpd"


class Smtp(Service):
    name = "smtp"
    expect = "smtp_server.py"

    def start(self, old: dict, **ctx) -> dict:
        if not find_tool(AIOSMTPD):
            raise StackError(f"smtp needs {AIOSMTPD} (apt-get install python3-aiosmtpd)")
        port = pick_port(self.port(old))
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        if not cert.exists():
            _self_signed(cert, key)
        password = old.get("password") or new_secret()
        write_private(self.dir / "password", password)
        spool = self.dir / "spool"
        spool.mkdir(mode=0o700, exist_ok=True)
        facts = {"host": LOOPBACK, "port": port, "user": old.get("user") or "keel-" + secrets.token_hex(4),
                 "password": password, "ca_cert": str(cert), "spool": str(spool), "version": "aiosmtpd"}
        argv = [SYSTEM_PYTHON, str(Path(__file__).with_name("smtp_server.py")), "--port", str(port), "--cert",
                str(cert), "--key", str(key), "--user", facts["user"], "--password-file", str(self.dir / "password"),
                "--spool", str(spool)]
        return self.launch(facts, argv, lambda: port_answers(port))


def _self_signed(cert: Path, key: Path) -> None:
    """A certificate for localhost and 127.0.0.1, valid for a year: the CA the clients are given."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=365)).add_extension(alt, critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(private, hashes.SHA256()))
    write_private(key, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode())
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
