"""A local certificate authority for trying HTTPS on one machine.

`make_local_ca` keeps four PEM files in a directory: the CA certificate
(ca.pem, the file to trust), its key (ca-key.pem), and a server certificate
for localhost signed by it (localhost.pem with its chain, localhost-key.pem).
The CA is made once and kept: a browser or system that trusts it keeps
trusting the demo across runs. The server certificate is reissued by the same
CA when it is missing, expires soon, or does not cover the names asked for.
Keys are written with mode 0600. `issue_client_cert` makes client
certificates from a CA (this one, or a trustme CA in tests), for trying
mutual TLS listeners.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

import trustme
from attrs import frozen
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")

# A server certificate is valid for 825 days, the longest macOS accepts for
# TLS server certificates, and reissued once fewer than 30 days remain.
SERVER_CERT_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)

CA_ORGANIZATION = "appgw"
CA_UNIT = "appgw local development CA"


@frozen
class CertPaths:
    """Where make_local_ca put its files."""

    ca: Path  # the CA certificate: the file to trust
    ca_key: Path  # the CA's private key: keep it private
    cert: Path  # the server certificate, then its chain
    key: Path  # the server certificate's private key
    created_ca: bool  # True when this call made a new CA
    issued_cert: bool  # True when this call issued a new server certificate


def make_local_ca(directory: str | Path, names: Iterable[str] = DEFAULT_NAMES) -> CertPaths:
    """Make (or reuse) a local CA and a server certificate for `names`."""
    names = tuple(names)
    if not names:
        raise ValueError("make_local_ca needs at least one name")
    directory = Path(directory).resolve()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = CertPaths(
        ca=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        cert=directory / "localhost.pem",
        key=directory / "localhost-key.pem",
        created_ca=False,
        issued_cert=False,
    )
    now = datetime.datetime.now(datetime.UTC)

    ca = _load_ca(paths.ca, paths.ca_key, now)
    created_ca = ca is None
    if ca is None:
        ca = trustme.CA(organization_name=CA_ORGANIZATION, organization_unit_name=CA_UNIT)
        _write(paths.ca_key, ca.private_key_pem.bytes(), private=True)
        _write(paths.ca, ca.cert_pem.bytes())

    issued = created_ca or not _server_cert_usable(paths, ca, names, now)
    if issued:
        leaf = ca.issue_cert(
            *names,
            organization_name=CA_ORGANIZATION,
            organization_unit_name="appgw local server",
            not_before=now - datetime.timedelta(days=1),
            not_after=now + datetime.timedelta(days=SERVER_CERT_DAYS),
        )
        _write(paths.key, leaf.private_key_pem.bytes(), private=True)
        _write(paths.cert, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return CertPaths(
        ca=paths.ca,
        ca_key=paths.ca_key,
        cert=paths.cert,
        key=paths.key,
        created_ca=created_ca,
        issued_cert=issued,
    )


def spki_sha256(cert_path: str | Path) -> str:
    """The base64 SHA-256 of the first certificate's public key (its pin)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def trust_instructions(ca_path: str | Path, url: str = "https://localhost:8443/") -> str:
    """How to make clients trust the CA at `ca_path`, for people to read."""
    ca = Path(ca_path).resolve()
    key = ca.with_name("ca-key.pem")
    return f"""\
The local CA is {ca}
Trust it where you want https://localhost to be accepted:

  curl          curl --cacert {ca} {url}
  Python        export SSL_CERT_FILE={ca}   (ssl, httpx, aiohttp)
                export REQUESTS_CA_BUNDLE={ca}   (requests)
  Node.js       export NODE_EXTRA_CA_CERTS={ca}
  Debian/Ubuntu sudo cp {ca} /usr/local/share/ca-certificates/appgw-local-ca.crt
                sudo update-ca-certificates
  Fedora/RHEL   sudo cp {ca} /etc/pki/ca-trust/source/anchors/appgw-local-ca.pem
                sudo update-ca-trust
  Firefox       Settings > Privacy & Security > Certificates > View Certificates >
                Authorities > Import {ca}, tick "Trust this CA to identify websites"
  Chrome/Chromium on Linux
                Settings > Privacy and security > Security > Manage certificates >
                Authorities (or "Custom > Installed by you") > Import {ca}
                or: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n appgw-local-ca -i {ca}
                (certutil is in libnss3-tools); Chrome on macOS and Windows uses
                the system store below
  macOS         sudo security add-trusted-cert -d -r trustRoot \\
                  -k /Library/Keychains/System.keychain {ca}
  Windows       certutil -addstore -f Root {ca}   (as administrator)

Anyone holding {key} can make certificates that a machine trusting this CA
accepts: keep it private, and remove the CA from the trust stores above when
you no longer need it.
"""


def cmd_certs(directory: str) -> int:
    """`appgw certs DIR`: make the local CA and server certificate, say where."""
    paths = make_local_ca(directory)
    if paths.created_ca:
        state = "made a new local CA"
    elif paths.issued_cert:
        state = "reused the local CA, issued a new server certificate"
    else:
        state = "reused the local CA and server certificate"
    print(f"appgw certs: {state} in {paths.ca.parent}")
    print(f"  CA certificate      {paths.ca}")
    print(f"  CA key              {paths.ca_key}")
    print(f"  server certificate  {paths.cert}   ({', '.join(DEFAULT_NAMES)})")
    print(f"  server key          {paths.key}")
    print()
    print(trust_instructions(paths.ca), end="")
    return 0


def _load_ca(cert_path: Path, key_path: Path, now: datetime.datetime) -> trustme.CA | None:
    """The CA kept in the directory, or None if it is missing or unusable."""
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not _valid_at(cert, now, margin=RENEW_BEFORE):
        return None
    if _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
        return None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    if not constraints.ca:
        return None
    return trustme.CA.from_pem(cert_pem, key_pem)


def _server_cert_usable(
    paths: CertPaths, ca: trustme.CA, names: tuple[str, ...], now: datetime.datetime
) -> bool:
    """Whether the kept server certificate is signed by `ca`, current and covers `names`."""
    try:
        certs = x509.load_pem_x509_certificates(paths.cert.read_bytes())
        key = load_pem_private_key(paths.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    leaf = certs[0]
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    if not _valid_at(leaf, now, margin=RENEW_BEFORE):
        return False
    if _public_bytes(leaf.public_key()) != _public_bytes(key.public_key()):
        return False
    if not _signed_by(leaf, ca_cert):
        return False
    return _covers(leaf, names) and _loads_in_ssl(paths)


def _valid_at(cert: x509.Certificate, now: datetime.datetime, margin: datetime.timedelta) -> bool:
    return cert.not_valid_before_utc <= now and now + margin < cert.not_valid_after_utc


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _covers(cert: x509.Certificate, names: tuple[str, ...]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    for name in names:
        try:
            if ipaddress.ip_address(name) not in ips:
                return False
        except ValueError:
            if name.lower() not in dns:
                return False
    return True


def _loads_in_ssl(paths: CertPaths) -> bool:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(paths.cert, paths.key)
    except (ssl.SSLError, OSError):
        return False
    return True


def _public_bytes(key: object) -> bytes:
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        return b""
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace `path` atomically; private files are created with mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    mode = 0o600 if private else 0o644
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # the file may have existed with other permissions
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(tmp, path)


@frozen
class ClientCert:
    """A client certificate for trying mutual TLS, as PEM."""

    cert_pem: bytes
    key_pem: bytes
    serial: int


def issue_client_cert(
    ca: trustme.CA,
    common_name: str,
    *,
    ocsp_url: str | None = None,
    days: int = 30,
) -> ClientCert:
    """A client certificate signed by `ca` (clientAuth usage), optionally
    naming an OCSP responder, for mutual TLS listeners in development and tests."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
                    x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    )
    if ocsp_url is not None:
        access = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    cert = builder.sign(ca_key, hashes.SHA256())
    return ClientCert(
        cert_pem=cert.public_bytes(Encoding.PEM),
        key_pem=key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        serial=cert.serial_number,
    )
