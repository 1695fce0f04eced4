"""Certificate material for the configuration: PEM, PFX and DER, no I/O.

Loaders turn what a file gives them (PEM files, base64 PFX from an ARM
template, DER trusted roots) into PEM bytes with these helpers; validation
checks the PEM (it parses, the key belongs to the certificate).
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12


class CertError(Exception):
    """Certificate material that cannot be used; `part` is "cert" or "key"."""

    def __init__(self, message: str, part: str = "cert") -> None:
        super().__init__(message)
        self.part = part


_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


def pem_blocks(data: bytes, kinds: tuple[bytes, ...]) -> bytes:
    """The PEM blocks of `data` whose label is one of `kinds`, concatenated."""
    out = []
    for match in _BLOCK.finditer(data):
        if match.group(1) in kinds:
            block = match.group(0)
            out.append(block if block.endswith(b"\n") else block + b"\n")
    return b"".join(out)


_CERT = (b"CERTIFICATE",)
_KEYS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY")


def pem_pair(cert_data: bytes, key_data: bytes | None, password: str | None) -> tuple[bytes, bytes]:
    """A certificate file (and a key file, or None: the key is in the cert file)
    -> (certificate chain PEM, private key PEM). An encrypted key is decrypted
    with `password`.
    """
    cert_pem = pem_blocks(cert_data, _CERT)
    if not cert_pem:
        raise CertError("no PEM certificate in the file")
    key_source = cert_data if key_data is None else key_data
    key_pem = pem_blocks(key_source, _KEYS)
    if not key_pem:
        if key_data is None:
            raise CertError("required (the cert file holds no private key)", "key")
        raise CertError("no PEM private key in the file", "key")
    if b"ENCRYPTED" in key_pem:
        key_pem = _decrypt_key(key_pem, password)
    return cert_pem, key_pem


def _decrypt_key(key_pem: bytes, password: str | None) -> bytes:
    if not password:
        raise CertError("the private key is encrypted; give its password", "key")
    try:
        key = serialization.load_pem_private_key(key_pem, password.encode())
    except (ValueError, TypeError) as e:
        raise CertError(f"cannot decrypt the private key: {e}", "key") from None
    return _key_to_pem(key)


def _key_to_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pfx_to_pem(data: bytes, password: str | None) -> tuple[bytes, bytes]:
    """PKCS#12 (PFX) bytes -> (certificate chain PEM, private key PEM)."""
    attempts = [password.encode()] if password else [None, b""]
    for attempt in attempts:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, attempt)
            break
        except ValueError:
            continue
    else:
        raise CertError("not PFX data, or a wrong password")
    if cert is None:
        raise CertError("the PFX holds no certificate")
    if key is None:
        raise CertError("the PFX holds no private key")
    chain = [cert, *extra]
    cert_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return cert_pem, _key_to_pem(key)


def ca_to_pem(data: bytes) -> bytes:
    """One or more CA certificates, PEM or DER -> PEM."""
    if b"-----BEGIN" in data:
        pem = pem_blocks(data, _CERT)
        if not pem:
            raise CertError("no PEM certificate in the data")
        return pem
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertError("not a PEM or DER certificate") from None
    return cert.public_bytes(serialization.Encoding.PEM)


def pair_problem(cert_pem: bytes, key_pem: bytes) -> tuple[str, str] | None:
    """What is wrong with a certificate and its key, as (part, message), or None."""
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        return "cert", "not a PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError) as e:
        return "key", f"not a usable PEM private key ({e})"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != certs[0].public_key().public_bytes(der, spki):
        return "key", "does not match the certificate"
    return None


def ca_problem(pem: bytes) -> str | None:
    """What is wrong with trusted root certificates (PEM), or None."""
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        return "not a PEM certificate"
    return None
