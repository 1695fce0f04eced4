"""A local OCSP responder (RFC 6960) for mutual TLS tests: trio, h11 and
cryptography, signing with the trustme CA's own key."""

from __future__ import annotations

import datetime

import attrs
import h11
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


@attrs.define
class OcspResponder:
    ca: trustme.CA
    port: int = 0
    revoked: set[int] = attrs.Factory(set)  # serial numbers
    requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ocsp"

    def answer(self, body: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(body)
        issuer = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        now = datetime.datetime.now(datetime.UTC)
        revoked = request.serial_number in self.revoked
        # The builder wants the certificate itself; only its serial and issuer
        # matter for the answer, so a stand-in with the asked serial does.
        stand_in = (
            x509.CertificateBuilder()
            .subject_name(issuer.subject)
            .issuer_name(issuer.subject)
            .public_key(issuer.public_key())
            .serial_number(request.serial_number)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())  # type: ignore[arg-type]
        )
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=stand_in,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now - datetime.timedelta(minutes=1),
            next_update=now + datetime.timedelta(hours=1),
            revocation_time=now - datetime.timedelta(minutes=1) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.NAME, issuer)
        response = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
        return response.public_bytes(serialization.Encoding.DER)


async def serve_ocsp(
    responder: OcspResponder, task_status: trio.TaskStatus[OcspResponder] = trio.TASK_STATUS_IGNORED
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    responder.port = listeners[0].socket.getsockname()[1]  # type: ignore[attr-defined]

    async def handle(stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        body = bytearray()
        with trio.move_on_after(10):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(16384))
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            responder.requests += 1
            answer = responder.answer(bytes(body))
            headers = [
                ("Content-Type", "application/ocsp-response"),
                ("Content-Length", str(len(answer))),
                ("Connection", "close"),
            ]
            data = conn.send(h11.Response(status_code=200, headers=headers))
            data += conn.send(h11.Data(data=answer)) + conn.send(h11.EndOfMessage())
            await stream.send_all(data)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(responder)
