"""Mutual TLS on HTTPS listeners: what a client's certificate says, and whether
the listener's SSL profile lets it in.

The TLS handshake does the first check (tls.py sets the context): in strict
mode a client without a certificate chaining to the profile's trusted client
CAs never completes it; in passthrough mode a certificate is asked for but
not required. Python's ssl module cannot continue a handshake past a
certificate that fails verification, so in passthrough mode too a presented
certificate must chain to the trusted CAs (without trusted CAs, passthrough
asks for none, and every request reads NONE).

Once the handshake is done, `inspect` adds Application Gateway's other
checks: the issuer DN (verifyClientCertIssuerDN) and revocation by OCSP
(verifyClientRevocation). The result is a ClientCertificate, whose fields
are the rewrite server variables client_certificate*. In strict mode a
failed check refuses every request of the connection with 400, as
Application Gateway answers a revoked certificate; in passthrough mode the
request goes on with client_certificate_verification "FAILED:<reason>".
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from typing import Any, Protocol

from attrs import field, frozen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appgw.config.model import Config, Listener
from appgw.ocsp import OcspChecker

VERIFIED = "SUCCESS"
ABSENT = "NONE"


@frozen
class ClientAuthSetup:
    """One listener socket's client authentication, built once per configuration."""

    mode: str  # "strict" | "passthrough"
    ca_pem: bytes  # trusted client CA chains; empty: none
    issuer_names: frozenset[x509.Name] | None  # verifyClientCertIssuerDN; None: not checked
    ocsp: bool
    authorities: tuple[x509.Certificate, ...] = field(default=(), eq=False)  # for OCSP

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        if self.mode == "strict":
            return ssl.CERT_REQUIRED
        return ssl.CERT_OPTIONAL if self.ca_pem else ssl.CERT_NONE


@frozen
class ClientCertificate:
    """The client certificate of one connection, as the server variables show it."""

    verification: str  # SUCCESS | FAILED:<reason> | NONE
    refused: bool = False  # strict mode and a check after the handshake failed
    pem: str = ""  # one line: PEM with its line breaks as spaces
    subject: str = ""  # RFC 4514
    issuer: str = ""
    serial: str = ""  # hex, upper case
    fingerprint: str = ""  # SHA-1, hex
    start_date: str = ""  # "Jan  2 03:04:05 2026 GMT", as OpenSSL prints it
    end_date: str = ""


def client_auth_setup(config: Config, listener: Listener) -> ClientAuthSetup | None:
    """The client authentication of a listener's SSL profile, or None."""
    if listener.ssl_profile is None:
        return None
    profile = config.ssl_profiles[listener.ssl_profile]
    if not profile.mutual_tls:
        return None
    chains = [config.trusted_client_certificates[n] for n in profile.trusted_client_certificates]
    auth = profile.client_auth
    authorities = tuple(c for pem in chains for c in x509.load_pem_x509_certificates(pem))
    names = frozenset(issuer_name(pem) for pem in chains) if auth.verify_issuer_dn else None
    return ClientAuthSetup(
        mode=auth.mode,
        ca_pem=b"".join(chains),
        issuer_names=names,
        ocsp=auth.verify_revocation == "ocsp",
        authorities=authorities,
    )


def issuer_name(chain_pem: bytes) -> x509.Name:
    """The issuer DN Application Gateway extracts from an uploaded CA chain:
    the subject of the CA furthest from its root (the longest chain's last
    certificate; the first such in the file on a tie)."""
    certs = x509.load_pem_x509_certificates(chain_pem)
    by_subject = {c.subject: c for c in certs}

    def depth(cert: x509.Certificate) -> int:
        seen = 0
        while cert.issuer != cert.subject and cert.issuer in by_subject and seen < len(certs):
            cert = by_subject[cert.issuer]
            seen += 1
        return seen

    best = max(range(len(certs)), key=lambda i: (depth(certs[i]), -i))
    return certs[best].subject


def describe(der: bytes, verification: str, refused: bool = False) -> ClientCertificate:
    cert = x509.load_der_x509_certificate(der)
    pem = cert.public_bytes(Encoding.PEM).decode("ascii").strip().replace("\n", " ")
    return ClientCertificate(
        verification=verification,
        refused=refused,
        pem=pem,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:X}",
        fingerprint=hashlib.sha1(der).hexdigest(),
        start_date=_openssl_time(cert.not_valid_before_utc),
        end_date=_openssl_time(cert.not_valid_after_utc),
    )


def _openssl_time(when: datetime.datetime) -> str:
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S %Y} GMT"


class PeerCertificate(Protocol):
    """A TLS connection after its handshake (the worker's TlsStream, trio's SSLStream)."""

    def getpeercert(self, binary_form: bool = ...) -> Any: ...


async def inspect(
    stream: PeerCertificate, setup: ClientAuthSetup, ocsp: OcspChecker
) -> ClientCertificate:
    """After the handshake: the client's certificate, checked as the profile says."""
    der = stream.getpeercert(binary_form=True)
    if not der:
        return ClientCertificate(ABSENT)
    try:
        problem = await check(der, setup, ocsp)
        if problem is None:
            return describe(der, VERIFIED)
        return describe(der, f"FAILED:{problem}", refused=setup.mode == "strict")
    except ValueError:  # OpenSSL took it, cryptography cannot read it
        return ClientCertificate(
            "FAILED:certificate cannot be parsed", refused=setup.mode == "strict"
        )


async def check(der: bytes, setup: ClientAuthSetup, ocsp: OcspChecker) -> str | None:
    """Why a (handshake-verified) certificate fails the profile's checks, or None."""
    cert = x509.load_der_x509_certificate(der)
    if setup.issuer_names is not None and cert.issuer not in setup.issuer_names:
        return "certificate issuer does not match"
    if setup.ocsp:
        return await ocsp.check(cert, setup.authorities)
    return None
