"""One client connection: the server loop.

The loop reads a request (wire.py parses, request.py decides what it is),
hands it to the proxy, and then either starts the next keep-alive cycle or
closes. Waiting for the first byte of a request is bounded by the
keep-alive timeout, the rest of the head by the header timeout (slow
clients cannot hold a connection by trickling a head), a body by the
request timeout summed over the time spent waiting for the client.

The exchange talks to the client through a few verbs: `receive_body`,
`send_continue`, `send_head`, `send`. This is the one place where errors
become responses: a GatewayError raised anywhere in an exchange turns into
the gateway's error page if the response has not started, or into an
aborted connection if it has.

On drain, an idle connection gets a short grace in which a request that was
already on its way is still served (with `Connection: close`); a busy one
finishes its exchange with `Connection: close`.
"""

from __future__ import annotations

import os
from time import monotonic
from typing import TYPE_CHECKING, Protocol

import trio

from appgw import logs
from appgw.errors import (
    STREAM_ERRORS,
    BackendAborted,
    BadRequest,
    ClientGone,
    GatewayError,
    RequestTimeout,
)
from appgw.worker.codec import error_page as errorpage
from appgw.worker.codec.request import Request, read
from appgw.worker.codec.request_reader import END, RequestHead, RequestReader
from appgw.worker.exchange.downstream import Context, Handler, ListeningSocket
from appgw.worker.exchange.observe import observe_refused
from appgw.worker.io.endpoint import INF, RECEIVE_SIZE, Endpoint, Expired, abort
from appgw.worker.io.timer import Timer

if TYPE_CHECKING:
    from appgw.mtls import ClientCertificate

log = logs.log

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Served(Context, Protocol):
    """What a client connection needs from its worker (services.Services)."""

    @property
    def timer(self) -> Timer: ...  # the deadlines of plain connections
    @property
    def grace(self) -> float: ...  # seconds an idle connection gets once a drain began
    @property
    def handle(self) -> Handler: ...  # serves one request (exchange/handler.py)


class ClientConnection:
    def __init__(
        self,
        services: Served,
        stream: trio.abc.Stream,
        socket: ListeningSocket,
        peer: tuple[str, int],
    ) -> None:
        self.services = services
        self.stream = stream
        self.socket = socket
        self.peer = peer
        self.scheme = socket.protocol
        self.endpoint = Endpoint(stream, services.timer)
        limits = services.limits
        self.limits = limits
        self.reader = RequestReader(limits.max_header_bytes, limits.max_uri_bytes)
        self.idle = False  # waiting for the next request (a drain cuts the wait short)
        self.sent = 0  # body bytes sent to the client in the current exchange
        self.closing = False  # answer with Connection: close and end after this exchange
        self.waited = 0.0  # seconds spent waiting for the current request's bytes
        self.request_done = True  # the current request was read to its end
        self.response_started = False
        # Mutual TLS listeners: the client's certificate, set once the handshake is done.
        self.client_certificate: ClientCertificate | None = None
        self.received = 0  # bytes read from the client for the current request
        self.arrived = 0.0  # when the current request's first byte was read (monotonic)
        self.error_page_bytes = 0  # the length of the last error page sent
        self._replay: list[bytes] | None = None  # body pieces read ahead (replay_body)

    # -- reading -------------------------------------------------------------

    async def _receive(self) -> bytes:
        """Bytes from the client; Expired at the read deadline."""
        try:
            data = await self.endpoint.read()
        except STREAM_ERRORS as exc:
            raise ClientGone(str(exc)) from None
        self.received += len(data)
        return data

    async def read_request(self, first: bool) -> Request | None:
        """The next request, or None when the client is done or idle too long."""
        self.waited = 0.0
        self.sent = 0
        self._replay = None
        self.response_started = False
        self.received = 0
        self.arrived = now = monotonic()
        reader = self.reader
        event = reader.next_event()
        if event is None:
            # Idle: wait for the first byte with the keep-alive timeout (the
            # header timeout on a fresh connection), cut short by a drain.
            services = self.services
            endpoint = self.endpoint
            endpoint.read_by(
                now + (self.limits.header_timeout if first else self.limits.keepalive_timeout)
            )
            if services.draining.is_set():
                self.cut_idle(now + services.grace)
            self.idle = True
            try:
                data = await self._receive()
            except Expired:
                return None
            finally:
                self.idle = False
            if not data:
                return None
            self.arrived = monotonic()
            reader.feed(data)
            event = reader.next_event()
            if event is None:
                event = await self._rest_of_head()
                if event is None:
                    return None
            self.endpoint.read_at = INF  # the head is in: no deadline until the next read
        if isinstance(event, GatewayError):
            raise event
        if not isinstance(event, RequestHead):
            raise BadRequest("request bytes out of order")
        request = read(event)
        # A request without a body ends with its head (llhttp queued its end).
        self.request_done = not request.body_expected and reader.next_event() is END
        if self.services.draining.is_set() or not request.keep_alive:
            self.closing = True
        elif not request.reuse_backend:
            self.closing = True  # a GET or HEAD with a body: reuse neither connection
        return request

    def cut_idle(self, at: float) -> None:
        """A drain: the wait for a next request ends by `at` (monotonic)."""
        self.endpoint.read_by(min(self.endpoint.read_at, at))

    async def _rest_of_head(self) -> RequestHead | GatewayError | None:
        reader = self.reader
        started = monotonic()
        self.endpoint.read_by(started + self.limits.header_timeout)
        try:
            while (event := reader.next_event()) is None:
                data = await self._receive()
                if not data:
                    return None  # the client gave up mid-head
                reader.feed(data)
        except Expired:
            raise RequestTimeout("request head not received in time") from None
        finally:
            self.waited = monotonic() - started
        assert not isinstance(event, bytes) and event is not END
        return event  # type: ignore[return-value]

    async def receive_body(self) -> bytes | None:
        """The next piece of the request body, or None at its end.

        The request timeout counts the time spent waiting for the client
        only, summed over the whole request, so a backend that reads slowly
        is not taken for a slow client.
        """
        if self._replay is not None:  # read ahead by the WAF: given again first
            if self._replay:
                return self._replay.pop(0)
            self._replay = None
            if self.request_done:
                return None
        reader = self.reader
        while True:
            event = reader.next_event()
            if event is None:
                started = monotonic()
                self.endpoint.read_by(started + self.limits.request_timeout - self.waited)
                try:
                    data = await self._receive()
                except Expired:
                    raise RequestTimeout("request body not received in time") from None
                finally:
                    self.waited += monotonic() - started
                if not data:
                    raise BadRequest("client closed before the request body ended")
                reader.feed(data)
                continue
            if isinstance(event, bytes):
                return event
            if event is END:
                self.request_done = True
                return None
            if isinstance(event, GatewayError):
                raise event
            raise BadRequest("request bytes out of order")

    def replay_body(self, pieces: list[bytes]) -> None:
        """Have receive_body give these pieces again, then the rest of the body."""
        self._replay = list(pieces)

    @property
    def body_pending(self) -> bool:
        """Whether more of the request (body pieces, its end, an error) is already read."""
        return self.reader.pending

    @property
    def body_received(self) -> bool:
        """Whether the whole request body was read from the client (maybe not yet consumed)."""
        return self.request_done or self.reader.has_end()

    def hand_over(self) -> tuple[trio.abc.Stream, bytes]:
        """The connection for a tunnel: its stream, no deadline left on it,
        and what the client sent past its upgrade request's head."""
        self.endpoint.no_deadlines()  # the tunnel keeps time itself
        return self.stream, self.take_tunnel_bytes()

    def close_after(self) -> None:
        """The exchange ends the connection: it answers with Connection: close."""
        self.closing = True

    def take_tunnel_bytes(self) -> bytes:
        """What the client sent after its upgrade request's head (for the tunnel).

        The connection reads no more HTTP: its reader lets go of its parser.
        """
        return self.reader.release()

    # -- writing -------------------------------------------------------------

    async def send(
        self, data: bytes | bytearray | memoryview, then: bytes | memoryview = b""
    ) -> None:
        """Write to the client (`then` after `data`, in the same system call);
        only a write that has to wait gets a deadline."""
        try:
            await self.endpoint.write(data, self.limits.request_timeout, then)
        except STREAM_ERRORS as exc:
            raise ClientGone(str(exc)) from None
        except Expired:
            raise ClientGone("client stopped reading") from None

    def send_now(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the client's socket takes without waiting: how much it took."""
        try:
            return self.endpoint.write_now(data)
        except STREAM_ERRORS as exc:
            raise ClientGone(str(exc)) from None

    def send_head_now(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> int:
        """Start the response with what the client's socket takes without
        waiting (the head, then `body`, in one system call): how much it took."""
        self.response_started = True
        sock = self.endpoint.sock
        if sock is None:
            return 0  # TLS: written by `send` only
        try:
            return os.writev(sock.fileno(), (head, body))
        except BlockingIOError:
            return 0
        except STREAM_ERRORS as exc:
            raise ClientGone(str(exc)) from None

    async def send_head(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> None:
        """A response head, with whatever body follows it at once, in one write."""
        self.response_started = True
        await self.send(head, body)

    async def send_continue(self) -> None:
        await self.send(CONTINUE)

    async def send_error(
        self,
        status: int,
        *,
        close: bool,
        extra: tuple[tuple[bytes, bytes], ...] = (),
        host: bytes | None = None,
    ) -> None:
        """The gateway's own answer: the listener's or gateway's custom page, or ours."""
        page, content_type = self.services.error_pages.page(self.socket.bound, host, status) or (
            errorpage.body(status),
            b"text/html; charset=utf-8",
        )
        self.error_page_bytes = len(page)
        close = close or self.closing or self.services.draining.is_set()
        await self.send_head(errorpage.head(status, len(page), close, extra, content_type) + page)

    # -- the loop ------------------------------------------------------------

    async def serve(self) -> None:
        handle = self.services.handle
        try:
            first = True
            while True:
                request: Request | None = None
                try:
                    request = await self.read_request(first)
                    if request is None:
                        break
                    self.services.metrics.protocol_request("http/1.1")
                    await handle(self, request)  # counts its own exchange
                except GatewayError as exc:
                    status = exc.status
                    if self.response_started:
                        raise BackendAborted(str(exc)) from None
                    log.info("%s %s: %s", status, self.peer[0], exc.detail or type(exc).__name__)
                    close = not exc.keep_alive or not self.request_done
                    if close:
                        self.closing = True
                    host = None if request is None else request.host
                    try:
                        await self.send_error(status, close=close, extra=exc.headers, host=host)
                    finally:
                        if request is None:  # refused while its head was read
                            self._observe_rejected(status, exc)
                first = False
                if self.closing or not self.request_done:
                    break
                if self.reader.upgrade_rest is not None:
                    self.reader.resume()  # no tunnel came of it: HTTP goes on
            await self._close()
        except ClientGone:
            abort(self.stream)
        except BackendAborted as exc:
            log.info("aborting client %s: %s", self.peer[0], exc)
            abort(self.stream)
        finally:
            self.reader.close()

    def _observe_rejected(self, status: int, failure: BaseException) -> None:
        """A request refused before it was read whole: counted and logged."""
        seconds = monotonic() - self.arrived if self.arrived else 0.0
        observe_refused(
            self.services,
            self.peer,
            seconds,
            status,
            failure,
            self.received,
            self.error_page_bytes,
        )

    async def _close(self) -> None:
        """Close politely.

        When the client may still be sending (an error answered before its
        request was read), shut our side first and read what is still coming
        for a moment: closing a socket with unread data resets it, and the
        client might lose the answer it was sent.
        """
        linger = not self.request_done
        self.endpoint.no_deadlines()  # what follows has its own
        with trio.move_on_after(2) as scope:
            scope.shield = True
            try:
                if linger and isinstance(self.stream, trio.SocketStream):
                    await self.stream.send_eof()
                    with trio.move_on_after(1):
                        while await self.stream.receive_some(RECEIVE_SIZE):
                            pass
                await self.stream.aclose()
            except STREAM_ERRORS:
                abort(self.stream)
