"""One health probe of one target.

A probe is one TCP connection (TLS for https and wss), one GET request with
`Connection: close`, and the response's head, all within the probe's timeout;
the body is read only when the probe matches on it, and at most BODY_LIMIT
bytes of it. Healthy means: the status is in match_status_codes and, if
match_body is set, the body contains it.

A ws/wss probe goes further than Application Gateway's HTTP-only probes: it
performs a real WebSocket opening handshake (RFC 6455: Upgrade, a random
Sec-WebSocket-Key, version 13) and is healthy only on a 101 response with
the matching Sec-WebSocket-Accept; the status and body rules do not apply.
It then sends a Close frame (code 1000).

Once the result is known the probe lets the backend close first (briefly,
and within the timeout), so backends see orderly connections, not resets.

Application Gateway sends no identifying User-Agent with its probes; appgw
sends USER_AGENT, so backends can tell probes from users.

Every outcome is a ProbeResult; nothing here raises for a backend's fault.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
from collections.abc import Sequence

import attrs
import h11
import trio

from appgw import __version__
from appgw.config.model import Probe
from appgw.prober import results
from appgw.prober.results import ProbeResult
from appgw.prober.targets import Target
from appgw.tls import backend_client_context
from appgw.websocket import accept_key, close_frame

USER_AGENT = f"appgw-health-probe/{__version__}"
BODY_LIMIT = 64 * 1024
RECEIVE_SIZE = 16 * 1024
CLOSE_WAIT = 1.0  # seconds to let a backend close first once the result is known
DRAIN_LIMIT = 1024 * 1024  # bytes read meanwhile at most
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# OpenSSL verification codes with a message of their own.
_X509_EXPIRED = {9, 10}  # not yet valid, expired
_X509_UNTRUSTED = {2, 18, 19, 20, 21}  # no issuer / self-signed / not trusted
_X509_HOSTNAME_MISMATCH = 62


def backend_ssl_context(
    trusted_root_pems: Sequence[bytes] = (),
    validate_chain: bool = True,
    validate_name: bool = True,
    pinned: bool = False,
) -> ssl.SSLContext:
    """A client SSL context for connections to backends, as requests use (tls.py).

    With trusted root certificates (PEM), a backend must chain to one of them;
    without, to the system's default store. Host names are checked unless the
    setting turns validateSNI off; nothing is when it turns
    validateCertChainAndExpiry off. `pinned`: the certificates are v1
    authenticationCertificates, an allow-list (tls.backend_client_context).
    """
    return backend_client_context(trusted_root_pems, validate_chain, validate_name, pinned)


def match_response(probe: Probe, status: int, body: bytes | None = None) -> ProbeResult:
    """Judge an HTTP response by the probe's status ranges and body substring."""
    if not any(lo <= status <= hi for lo, hi in probe.match_status_codes):
        return results.status_mismatch(results.expected_statuses(probe.match_status_codes), status)
    if probe.match_body is not None and probe.match_body.encode() not in (body or b""):
        return results.body_mismatch(probe.match_body, status)
    return results.success(status)


@attrs.define
class _Attempt:
    phase: str = "connect"  # connect | tls | exchange
    result: ProbeResult | None = None


async def probe_once(target: Target, ssl_context: ssl.SSLContext | None = None) -> ProbeResult:
    """Probe `target` once; the whole probe takes at most its timeout.

    `ssl_context` is for https/wss targets; None builds one from the target's
    trusted root certificates (pass one to reuse it across probes).
    """
    if target.uses_tls and ssl_context is None:
        ssl_context = backend_ssl_context(*target.tls_key)
    attempt = _Attempt()
    with trio.move_on_after(target.probe.timeout) as scope:
        await _probe(target, ssl_context, attempt, scope)
    if attempt.result is not None:
        return attempt.result
    if attempt.phase == "connect":
        return results.connect_failed("timed out")
    return results.timed_out()


async def _probe(
    target: Target,
    ssl_context: ssl.SSLContext | None,
    attempt: _Attempt,
    scope: trio.CancelScope,
) -> None:
    try:
        tcp = await trio.open_tcp_stream(*target.address)
    except socket.gaierror:
        attempt.result = results.name_not_resolved()
        return
    except OSError as exc:
        attempt.result = results.connect_failed(_os_error_detail(exc))
        return
    stream: trio.abc.Stream = tcp
    try:
        if target.uses_tls:
            assert ssl_context is not None
            attempt.phase = "tls"
            stream = trio.SSLStream(
                tcp, ssl_context, server_hostname=target.tls_server_name, https_compatible=True
            )
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError as exc:
                attempt.result = _tls_failure(exc.__cause__, bool(target.trusted_root_certificates))
                return
        attempt.phase = "exchange"
        try:
            if target.is_websocket:
                await _websocket_exchange(stream, target, attempt, scope)
            else:
                await _http_exchange(stream, target, attempt, scope)
        except h11.RemoteProtocolError as exc:
            attempt.result = results.invalid_response(str(exc))
        except (trio.BrokenResourceError, OSError) as exc:
            attempt.result = results.connection_closed(_os_error_detail(exc))
    finally:
        await trio.aclose_forcefully(stream)


async def _http_exchange(
    stream: trio.abc.Stream, target: Target, attempt: _Attempt, scope: trio.CancelScope
) -> None:
    probe = target.probe
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET",
        target=probe.path,
        headers=[
            ("Host", target.host_header),
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ],
    )
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    response = await _response_head(conn, stream)
    if response is None:
        attempt.result = results.connection_closed()
        return
    status = response.status_code
    if probe.match_body is None or not any(
        lo <= status <= hi for lo, hi in probe.match_status_codes
    ):
        attempt.result = match_response(probe, status)
    else:
        needle = probe.match_body.encode()
        body = bytearray()
        ended = False
        while len(body) < BODY_LIMIT and needle not in body:
            event = await _next_event(conn, stream)
            if isinstance(event, h11.Data):
                body += event.data
            else:  # EndOfMessage, ConnectionClosed
                ended = True
                break
        attempt.result = match_response(probe, status, bytes(body[:BODY_LIMIT]))
        if ended:
            return
    await _let_backend_close(stream, scope)


async def _websocket_exchange(
    stream: trio.abc.Stream, target: Target, attempt: _Attempt, scope: trio.CancelScope
) -> None:
    key = base64.b64encode(os.urandom(16))
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET",
        target=target.probe.path,
        headers=[
            ("Host", target.host_header),
            ("User-Agent", USER_AGENT),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key.decode()),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    await stream.send_all(conn.send(request))
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.InformationalResponse):
            if event.status_code == 101:
                break
            continue
        if isinstance(event, h11.Response):
            attempt.result = results.websocket_refused(event.status_code)
            return
        attempt.result = results.connection_closed()
        return
    accept = dict(event.headers).get(b"sec-websocket-accept", b"")
    if accept.strip() != accept_key(key):
        attempt.result = results.websocket_bad_accept()
        return
    attempt.result = results.success(101)
    await _let_backend_close(stream, scope, close_frame(1000, masked=True))


async def _let_backend_close(
    stream: trio.abc.Stream, scope: trio.CancelScope, last_words: bytes = b""
) -> None:
    """Read what is left until the backend closes, briefly; the result is known.

    A probe that closed with the rest of a response unread would reset the
    connection, which backends log as an error; a WebSocket probe says
    goodbye with `last_words` (a Close frame) first. Bounded by CLOSE_WAIT,
    DRAIN_LIMIT bytes, and the probe's own deadline.
    """
    remaining = scope.deadline - trio.current_time() - 0.05
    with trio.move_on_after(max(0.0, min(CLOSE_WAIT, remaining))):
        try:
            if last_words:
                await stream.send_all(last_words)
            received = 0
            while received < DRAIN_LIMIT:
                data = await stream.receive_some(RECEIVE_SIZE)
                if not data:
                    return
                received += len(data)
        except (trio.BrokenResourceError, OSError):
            pass


async def _response_head(
    conn: h11.Connection, stream: trio.abc.ReceiveStream
) -> h11.Response | None:
    """The final response head (skipping 1xx), or None if the backend closed first."""
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.Response):
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None


async def _next_event(conn: h11.Connection, stream: trio.abc.ReceiveStream) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(RECEIVE_SIZE)))
            continue
        if event is h11.PAUSED:
            return h11.ConnectionClosed()
        return event  # type: ignore[return-value]


def _tls_failure(error: BaseException | None, with_trusted_roots: bool) -> ProbeResult:
    if isinstance(error, ssl.SSLCertVerificationError):
        code = error.verify_code
        if code == _X509_HOSTNAME_MISMATCH:
            return results.certificate_name_mismatch()
        if code in _X509_EXPIRED:
            return results.certificate_expired()
        if code in _X509_UNTRUSTED:
            return results.certificate_untrusted(with_trusted_roots)
        return results.certificate_unverified(code)
    if error is None:
        return results.connection_closed("during the TLS handshake")
    return results.tls_failed(_os_error_detail(error))


def _os_error_detail(exc: BaseException) -> str:
    """A short description of why a socket operation failed."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        exc = cause.exceptions[0]
    elif cause is not None and not isinstance(exc, OSError):
        exc = cause
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__
