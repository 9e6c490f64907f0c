# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security findings of TLS certificates - served on host:port, or PEM files: expired or close to expiry, weak
keys (RSA or DSA under 2048 bits, elliptic curves under 256) and weak signatures (MD5, SHA-1). The certificate is
read without verifying it, since an expired or self-signed one is exactly what must be reported."""

import datetime
import socket
import ssl

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, DependencyError
from ansible_collections.keel.ops.plugins.module_utils._security.findings import finding

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
except ImportError:
    x509 = None

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_HASHES = ("md5", "sha1")


def require_cryptography():
    if x509 is None:
        raise DependencyError("the TLS audit needs the Python library 'cryptography' where the module runs")


def served_certificate(host, port, timeout=10.0, server_name=None):
    """The DER certificate a server presents, unverified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Nothing is sent over this connection and nothing it says is trusted: it only reads the certificate. The
    # lowest security level still talks to a server whose old ciphers or small DH keys OpenSSL would refuse by
    # default, which is a server this audit most needs to read.
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=server_name or host) as tls:
            return tls.getpeercert(binary_form=True)


def _not_after(cert):
    when = getattr(cert, "not_valid_after_utc", None)
    return when if when is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _key_weakness(key):
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and key.key_size < MIN_RSA_BITS:
        return "a %d-bit %s key" % (key.key_size, "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return "a %d-bit elliptic curve key" % key.curve.key_size
    return None


def certificate_findings(cert, where, now, warn_days=30, critical_days=7):
    """Findings of one cryptography x509 certificate."""
    found = []
    left = (_not_after(cert) - now).total_seconds() / 86400.0
    subject = cert.subject.rfc4514_string()
    if left < 0:
        found.append(finding("tls.expired", "critical", where, "the certificate of %s expired %d days ago" % (subject, -left),
                             "renew it and reload the service"))
    elif left < warn_days:
        found.append(finding("tls.expiry", "high" if left < critical_days else "medium", where,
                             "the certificate of %s expires in %.0f days" % (subject, left),
                             "renew it before %s" % _not_after(cert).date().isoformat(), detail={"days_left": round(left, 1)}))
    weakness = _key_weakness(cert.public_key())
    if weakness:
        found.append(finding("tls.weak_key", "high", where, "the certificate of %s has %s" % (subject, weakness),
                             "issue a new certificate with an RSA key of at least 2048 bits or an ECDSA P-256 key"))
    algorithm = cert.signature_hash_algorithm
    if algorithm is not None and algorithm.name in WEAK_HASHES:
        found.append(finding("tls.weak_signature", "high", where, "the certificate of %s is signed with %s"
                             % (subject, algorithm.name.upper()), "issue a new certificate signed with SHA-256"))
    return found


def audit(endpoints, paths, now=None, warn_days=30, critical_days=7, timeout=10.0):
    """Findings of each endpoint (dicts of host, port, server_name) and certificate file; one that cannot be read
    is a finding too."""
    require_cryptography()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found = []
    for endpoint in endpoints:
        if not endpoint.get("host") or not endpoint.get("port"):
            raise ConfigError("each endpoint needs host and port, got %s" % sorted(endpoint))
        where = "%s:%s" % (endpoint["host"], endpoint["port"])
        try:
            der = served_certificate(endpoint["host"], int(endpoint["port"]), timeout, endpoint.get("server_name"))
        except (OSError, ssl.SSLError) as error:
            found.append(finding("tls.unreachable", "medium", where, "no certificate could be read: %s" % error,
                                 "check that the service serves TLS on this port"))
            continue
        found += certificate_findings(x509.load_der_x509_certificate(der), where, now, warn_days, critical_days)
    for path in paths:
        try:
            with open(path, "rb") as handle:
                certs = x509.load_pem_x509_certificates(handle.read())
        except (OSError, ValueError) as error:
            found.append(finding("tls.unreadable", "medium", path, "the certificate file cannot be read: %s" % error,
                                 "check the path and that it holds PEM certificates"))
            continue
        found += certificate_findings(certs[0], path, now, warn_days, critical_days)
    return found
