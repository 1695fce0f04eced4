"""Client certificate revocation by OCSP (RFC 6960), for mutual TLS listeners.

One check: find the certificate's issuer among the trusted client CAs, ask
the responder named in the certificate's Authority Information Access
extension (http only, as OCSP responders are) with a POST, and accept the
answer only if it is signed by the issuer or by a responder the issuer
delegated (id-kp-OCSPSigning), names this certificate, and is current.

Answers are cached per certificate until their nextUpdate (at most an hour);
a responder that cannot be reached is asked again after FAILURE_TTL seconds,
so a dead responder does not cost every connection a timeout.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from urllib.parse import urlsplit

import h11
import trio
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

TIMEOUT = 5.0  # seconds for one responder exchange
MAX_RESPONSE = 64 * 1024
GOOD_TTL = 3600.0  # seconds an answer is kept at most
FAILURE_TTL = 10.0
CLOCK_SKEW = datetime.timedelta(minutes=5)


class OcspChecker:
    """Per-worker OCSP client with its cache."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._cache: dict[tuple[bytes, int], tuple[str | None, float]] = {}

    async def check(
        self, cert: x509.Certificate, authorities: Sequence[x509.Certificate]
    ) -> str | None:
        """None when the responder says good; else why not ("certificate revoked", ...)."""
        issuer = _issuer_of(cert, authorities)
        if issuer is None:
            return "OCSP: the issuer is not a trusted client CA"
        key = (issuer.subject.public_bytes(), cert.serial_number)
        now = trio.current_time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        verdict, ttl = await self._ask(cert, issuer)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (verdict, now + ttl)
        return verdict

    async def _ask(
        self, cert: x509.Certificate, issuer: x509.Certificate
    ) -> tuple[str | None, float]:
        url = responder_url(cert)
        if url is None:
            return "OCSP: no responder in the certificate", GOOD_TTL
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
        try:
            with trio.fail_after(self.timeout):
                body = await post(url, request.public_bytes(serialization.Encoding.DER))
        except (
            OSError,
            trio.TooSlowError,
            trio.BrokenResourceError,
            h11.ProtocolError,
            ValueError,
        ):
            return "OCSP: responder unreachable", FAILURE_TTL
        return judge(body, cert, issuer)


def responder_url(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in aia:
        if description.access_method == AuthorityInformationAccessOID.OCSP:
            location = description.access_location
            if isinstance(location, x509.UniformResourceIdentifier):
                if location.value.lower().startswith("http://"):
                    return location.value
    return None


def _issuer_of(
    cert: x509.Certificate, authorities: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in authorities:
        if candidate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def judge(
    body: bytes, cert: x509.Certificate, issuer: x509.Certificate
) -> tuple[str | None, float]:
    """A responder's DER answer -> (None or the failure, seconds to keep it)."""
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return "OCSP: malformed response", FAILURE_TTL
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return f"OCSP: responder says {response.response_status.name.lower()}", FAILURE_TTL
    if not _signed_by_authority(response, issuer):
        return "OCSP: response not signed by the issuer", FAILURE_TTL
    if response.serial_number != cert.serial_number:
        return "OCSP: response for another certificate", FAILURE_TTL
    now = datetime.datetime.now(datetime.UTC)
    if response.this_update_utc > now + CLOCK_SKEW:
        return "OCSP: response from the future", FAILURE_TTL
    ttl = GOOD_TTL
    if response.next_update_utc is not None:
        if response.next_update_utc < now - CLOCK_SKEW:
            return "OCSP: response expired", FAILURE_TTL
        ttl = max(1.0, min(GOOD_TTL, (response.next_update_utc - now).total_seconds()))
    status = response.certificate_status
    if status == ocsp.OCSPCertStatus.GOOD:
        return None, ttl
    if status == ocsp.OCSPCertStatus.REVOKED:
        return "certificate revoked", ttl
    return "certificate status unknown", FAILURE_TTL


def _signed_by_authority(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    signer = issuer
    if not _is_responder(response, issuer):
        delegated = [c for c in response.certificates if _is_responder(response, c)]
        if not delegated or not _delegated_by(delegated[0], issuer):
            return False
        signer = delegated[0]
    return _verify(signer, response.signature, response.tbs_response_bytes, response)


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    spki = (
        cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        if isinstance(cert.public_key(), rsa.RSAPublicKey)
        else _key_bits(cert)
    )
    digest = hashes.Hash(hashes.SHA1())
    digest.update(spki)
    return response.responder_key_hash == digest.finalize()


def _key_bits(cert: x509.Certificate) -> bytes:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return b""


def _delegated_by(responder: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        responder.verify_directly_issued_by(issuer)
        usage = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage


def _verify(
    signer: x509.Certificate, signature: bytes, data: bytes, response: ocsp.OCSPResponse
) -> bool:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


async def post(url: str, body: bytes) -> bytes:
    """POST an OCSP request over HTTP/1.1; the response body."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = h11.Connection(h11.CLIENT)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        request = h11.Request(
            method="POST",
            target=path,
            headers=[
                ("Host", parts.netloc),
                ("Content-Type", "application/ocsp-request"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ],
        )
        await stream.send_all(conn.send(request) + conn.send(h11.Data(data=body)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        data = bytearray()
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(16384))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                data += event.data
                if len(data) > MAX_RESPONSE:
                    raise ValueError("OCSP response too large")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        if status != 200:
            raise ValueError(f"OCSP responder answered {status}")
        return bytes(data)
