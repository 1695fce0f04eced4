"""One client connection: the h11 server loop.

The loop reads a request head, hands the exchange to the proxy, and then
either starts the next keep-alive cycle or closes. Waiting for the first
byte of a request is bounded by the keep-alive timeout, the rest of the head
by the header timeout (slow clients cannot hold a connection by trickling
a head). This is the one place where errors become responses: a
GatewayError raised anywhere in an exchange turns into the gateway's error
page if the response has not started, or into an aborted connection if it
has.

On drain, an idle connection gets a short grace in which a request that was
already on its way is still served (with `Connection: close`); a busy one
finishes its exchange with `Connection: close`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import h11
import trio

from appgw import logs
from appgw.errors import BackendAborted, BadRequest, ClientGone, GatewayError, RequestTimeout
from appgw.worker import errorpage, strict
from appgw.worker.observe import Exchanged, observe
from appgw.worker.upstream import RECEIVE_SIZE, abort

if TYPE_CHECKING:
    from appgw.mtls import ClientCertificate
    from appgw.worker.main import Socket, Worker

log = logs.log

# What h11 hands out when asked for the next event.
Incoming = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]


def _request_line_too_long(head: bytes | bytearray, limit: int) -> bool:
    """Whether the first line of a head runs past `limit` bytes."""
    return b"\n" not in head[: limit + 16] and len(head) > limit


def _host(request: h11.Request | None) -> bytes | None:
    """The Host of a request, for choosing its listener's error page."""
    return None if request is None else dict(request.headers).get(b"host")


def has_body(request: h11.Request) -> bool:
    """Whether a request's framing announces body bytes."""
    length = None
    for name, value in request.headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            length = value
    return length is not None and int(length) > 0


class ClientConnection:
    def __init__(
        self, worker: Worker, stream: trio.abc.Stream, socket: Socket, peer: tuple[str, int]
    ) -> None:
        self.worker = worker
        self.stream = stream
        self.socket = socket
        self.peer = peer
        self.scheme = socket.protocol
        limits = worker.config.gateway.limits
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.limits = limits
        self.idle_scope: trio.CancelScope | None = None
        self.sent = 0  # body bytes sent to the client in the current exchange
        self.closing = False  # answer with Connection: close and end after this exchange
        self.waited = 0.0  # seconds spent waiting for the current request's bytes
        self.reuse_backend = True  # False: the backend connection must not serve another request
        self.body_expected = False  # the current request announced body bytes
        # Mutual TLS listeners: the client's certificate, set once the handshake is done.
        self.client_certificate: ClientCertificate | None = None
        self.received = 0  # bytes read from the client for the current request
        self.arrived = 0.0  # when the current request's first byte was read (trio clock)

    # -- reading -------------------------------------------------------------

    async def _receive(self) -> bytes:
        try:
            data = bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientGone(str(exc)) from None
        self.h11.receive_data(data)
        self.received += len(data)
        return data

    async def next_event(self) -> Incoming:
        """The next event from the client, reading as needed (no deadline here)."""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self._receive()
                continue
            return event

    async def next_body_event(self) -> Incoming:
        """The next event of a request body, within the request timeout.

        The timeout counts the time spent waiting for the client only, summed
        over the whole request, so a backend that reads slowly is not taken
        for a slow client.
        """
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            left = self.limits.request_timeout - self.waited
            started = trio.current_time()
            with trio.CancelScope(deadline=started + max(left, 0)) as scope:
                await self._receive()
            self.waited += trio.current_time() - started
            if scope.cancelled_caught:
                raise RequestTimeout("request body not received in time")

    async def read_request(self, first: bool) -> h11.Request | None:
        """The next request head, or None when the client is done or idle too long.

        The raw bytes of the head are kept as they arrive (bounded by the
        head limit) for the checks h11 does not make (strict.py) and to tell
        an over-long request line (414) from over-long headers (431).
        """
        self.waited = 0.0
        self.reuse_backend = True
        raw = bytearray(self.h11.trailing_data[0])
        self.received = len(raw)
        self.arrived = trio.current_time()
        event = self._next_head_event(raw)
        if event is h11.NEED_DATA:
            # Idle: wait for the first byte with the keep-alive timeout (the
            # header timeout on a fresh connection), cut short by a drain.
            idle = self.limits.header_timeout if first else self.limits.keepalive_timeout
            with trio.CancelScope(deadline=trio.current_time() + idle) as scope:
                self.idle_scope = scope
                if self.worker.draining.is_set():
                    scope.deadline = min(scope.deadline, trio.current_time() + self.worker.grace)
                try:
                    raw += await self._receive()
                finally:
                    self.idle_scope = None
            if scope.cancelled_caught:
                return None
            started = self.arrived = trio.current_time()
            cap = self.limits.max_header_bytes + RECEIVE_SIZE
            with trio.CancelScope(deadline=started + self.limits.header_timeout) as scope:
                while (event := self._next_head_event(raw)) is h11.NEED_DATA:
                    data = await self._receive()
                    if len(raw) < cap:
                        raw += data
            self.waited = trio.current_time() - started
            if scope.cancelled_caught:
                raise RequestTimeout("request head not received in time")
        if not isinstance(event, h11.Request):
            return None
        head = strict.head_of(raw)
        if len(head) > self.limits.max_header_bytes:
            raise GatewayError("request head too large", status=431, keep_alive=False)
        verdict = strict.inspect(head, event.method, event.http_version)
        if verdict.problem:
            raise BadRequest(verdict.problem)
        self.reuse_backend = verdict.reuse_backend
        if self.worker.draining.is_set():
            self.closing = True
        self.body_expected = has_body(event)
        if not self.body_expected:
            # A request without a body ends with its head; take h11's
            # EndOfMessage now so the cycle can complete.
            self.h11.next_event()
        return event

    def _next_head_event(self, head: bytearray) -> Incoming:
        try:
            return self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431 and _request_line_too_long(
                head, self.limits.max_uri_bytes
            ):
                raise GatewayError("request line too long", status=414) from None
            if exc.error_status_hint == 501:
                # A transfer coding other than chunked: in front of other
                # servers that is a framing ambiguity, refused as such.
                raise BadRequest(f"unsupported framing: {exc}") from None
            raise

    # -- writing -------------------------------------------------------------

    async def send_bytes(self, data: bytes | bytearray) -> None:
        if not data:
            return
        with trio.CancelScope(deadline=trio.current_time() + self.limits.request_timeout) as scope:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise ClientGone(str(exc)) from None
        if scope.cancelled_caught:
            raise ClientGone("client stopped reading")

    async def send(self, event: h11.Event) -> None:
        try:
            data = self.h11.send(event)
        except h11.LocalProtocolError as exc:
            raise ClientGone(f"cannot send to client: {exc}") from None
        if isinstance(event, h11.Data):
            self.sent += len(event.data)
        if data:
            await self.send_bytes(data)

    @property
    def response_started(self) -> bool:
        return self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE)

    async def send_error(
        self,
        status: int,
        *,
        close: bool,
        extra: tuple[tuple[bytes, bytes], ...] = (),
        host: bytes | None = None,
    ) -> None:
        page, content_type = self.worker.error_pages.page(self.socket.bound, host, status) or (
            errorpage.body(status),
            b"text/html; charset=utf-8",
        )
        headers = [
            *extra,
            (b"content-type", content_type),
            (b"content-length", str(len(page)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if close or self.closing or self.worker.draining.is_set():
            headers.append((b"connection", b"close"))
        await self.send(
            h11.Response(status_code=status, headers=headers, reason=errorpage.reason(status))
        )
        await self.send(h11.Data(data=page))
        await self.send(h11.EndOfMessage())

    # -- the loop ------------------------------------------------------------

    async def serve(self) -> None:
        from appgw.worker.proxy import handle_request

        try:
            first = True
            while True:
                status = 0
                request: h11.Request | None = None
                try:
                    request = await self.read_request(first)
                    if request is None:
                        break
                    await handle_request(self, request)  # counts its own exchange
                except GatewayError as exc:
                    status = exc.status
                    if request is None:
                        self._observe_rejected(status, exc)
                    if self.response_started:
                        raise BackendAborted(str(exc)) from None
                    log.info("%s %s: %s", status, self.peer[0], exc.detail or type(exc).__name__)
                    unread = self.h11.their_state is not h11.DONE
                    await self.send_error(
                        status,
                        close=not exc.keep_alive or unread,
                        extra=exc.headers,
                        host=_host(request),
                    )
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    if request is None:
                        self._observe_rejected(status, exc)
                    if self.response_started:
                        raise BackendAborted(str(exc)) from None
                    log.info("%s from %s: %s", status, self.peer[0], exc)
                    await self.send_error(status, close=True, host=_host(request))
                first = False
                if self.closing or not self._next_cycle():
                    break
            await self._close()
        except ClientGone:
            abort(self.stream)
        except BackendAborted as exc:
            log.info("aborting client %s: %s", self.peer[0], exc)
            abort(self.stream)

    def _observe_rejected(self, status: int, failure: BaseException) -> None:
        """A request refused before it was read whole: counted and logged."""
        seconds = trio.current_time() - self.arrived if self.arrived else 0.0
        observe(
            self.worker,
            Exchanged(
                time=time.time() - seconds,
                client_ip=self.peer[0],
                client_port=self.peer[1],
                status=status,
                seconds=seconds,
                received_bytes=self.received,
                sent_bytes=len(errorpage.body(status)),
                failure=failure,
            ),
        )

    def _next_cycle(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.sent = 0
            return True
        return False

    async def _close(self) -> None:
        """Close politely.

        When the client may still be sending (an error answered before its
        request was read), shut our side first and read what is still coming
        for a moment: closing a socket with unread data resets it, and the
        client might lose the answer it was sent.
        """
        linger = self.h11.their_state not in (h11.DONE, h11.IDLE, h11.CLOSED, h11.MUST_CLOSE)
        with trio.move_on_after(2) as scope:
            scope.shield = True
            try:
                if linger and isinstance(self.stream, trio.SocketStream):
                    await self.stream.send_eof()
                    with trio.move_on_after(1):
                        while await self.stream.receive_some(RECEIVE_SIZE):
                            pass
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                abort(self.stream)
