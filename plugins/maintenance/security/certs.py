"""TLS certificate expiry of the platform's endpoints.

The handshake does not validate the chain (an expired or self-signed certificate must
still be read to be reported); the leaf certificate is parsed for its expiry, issuer and
names. An endpoint that cannot be reached is a finding, not a crash.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class CertStatus:
    endpoint: str
    status: str  # ok, warning, critical, unreachable
    days_left: float | None = None
    expires: str | None = None
    issuer: str | None = None
    names: list[str] | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def leaf_certificate(host: str, port: int, timeout: float) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def check(endpoint: str, *, now: datetime, warn_days: float, critical_days: float, timeout: float) -> CertStatus:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    host, _, port = endpoint.rpartition(":")
    try:
        der = leaf_certificate(host or endpoint, int(port or 443), timeout)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return CertStatus(endpoint, "unreachable", error=f"{type(exc).__name__}: {exc}")
    cert = x509.load_der_x509_certificate(der)
    expires = cert.not_valid_after_utc
    days = (expires - now.astimezone(UTC)).total_seconds() / 86400
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    status = "critical" if days < critical_days else "warning" if days < warn_days else "ok"
    return CertStatus(endpoint, status, round(days, 1), expires.isoformat(), cert.issuer.rfc4514_string(), names)
