"""One exchange with a backend: a request forwarded and its answer back.

A server is chosen (round robin over healthy servers, affinity first) and a
backend connection is taken (kept-alive ones first); a server that cannot
be reached is skipped for the next one, so a dead server costs no failed
request. The head goes out built as bytes, in one write, with one framing
(Content-Length or chunked, never both). A request without a body then
simply waits for the response head: no task, no Event. With request
buffering (request_buffer.py) a body is read and checked before a server is
chosen: one read whole goes out with the head, like a request without a
body; the rest of a larger one, and any body without buffering, streams to
the backend in one task while the main task waits for the response head
(upload.py), so a backend that answers early is heard at once. The
response streams back (response_body.py, read ahead of a slow client with
response buffering) with back-pressure both ways. The heads are built by
heads.py.

Deadlines: the setting's request timeout bounds every wait on the backend
(the response head, and each read of the body): 504 before the response has
started, an aborted client connection after.

A WebSocket handshake answered by `101` with the right Sec-WebSocket-Accept
turns the two connections into a tunnel (handshake.py, tunnel/), handing
over whatever either side had already sent past its head.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

import trio

from appgw import logs
from appgw.config.model import Server
from appgw.errors import BadGateway, GatewayError, GatewayTimeout, first_error
from appgw.worker.codec.request import Request
from appgw.worker.codec.response_reader import ResponseHead, ResponseReader
from appgw.worker.exchange import handshake, heads
from appgw.worker.exchange import request_buffer as buffering
from appgw.worker.exchange.downstream import Downstream
from appgw.worker.exchange.heads import Rewrite
from appgw.worker.exchange.response_body import CHUNKED, UNTIL_CLOSE, ResponseBody, framing
from appgw.worker.exchange.upload import Upload
from appgw.worker.io.endpoint import Expired, raw_socket
from appgw.worker.policy import forwarding
from appgw.worker.policy.balancer import server_port
from appgw.worker.policy.routing import Route, backend_target
from appgw.worker.tunnel.tunnel import TunnelEnd
from appgw.worker.upstream.connections import BackendConnection

log = logs.log

# Seconds a response waits, at most, for the last bytes of a request body
# that the client already sent in full (a backend that answered early and
# does not read them costs a closed connection, not a stalled response).
BODY_TAIL_WAIT = 1.0


_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class Exchange:
    def __init__(
        self,
        client: Downstream,
        request: Request,
        route: Route,
        host: bytes | None,
        target: str,
        rewrite: Rewrite | None = None,
        trace: forwarding.Trace | None = None,
    ) -> None:
        if route.pool is None or route.setting is None:
            raise GatewayError(f"rule {route.rule} has no backend for this request", status=404)
        self.rewrite = rewrite
        self.trace = trace
        self.client = client
        self.services = client.services
        self.request = request
        self.route = route
        self.pool = route.pool
        self.setting = route.setting
        self.host = host
        self.target = backend_target(route, target)
        self.timeout = float(self.setting.request_timeout)
        self.status = 0
        self.upstream_label = ""
        self.upload: Upload | None = None  # a request body on its way (upload.py)
        self.buffered: buffering.BufferedBody | None = None  # read before the backend
        self.backend_done = False  # the backend connection went back (or closed) already
        # -- for observe.Exchanged (the access log and metrics) --
        self.server = ""  # "host:port" of the server reached
        self.connect_seconds: float | None = None  # a new connection's connect time
        self.head_sent = 0.0
        self.latency: float | None = None  # head sent -> response head
        self.source_port = 0
        self.tunnel: TunnelEnd | None = None
        self.response_keep_alive = False

    # -- choosing and reaching a server --------------------------------------

    async def _open(self) -> tuple[Server, BackendConnection, ResponseReader, ResponseHead | None]:
        """Reach a server and start the exchange there.

        Servers are tried in the balancer's order. A server that cannot be
        reached is skipped. A request that can be replayed (no body, an
        idempotent method) also moves on when the connection breaks before
        any of the response arrived, so a backend that dies under traffic
        costs no failed request.
        """
        services = self.services
        candidates = services.balancer.candidates(
            self.pool, self.setting, services.health(), heads.sticky(self.setting, self.request)
        )
        if not candidates:
            raise BadGateway(f"no healthy server in pool {self.pool.name}")
        tls = services.backend_tls(self.setting)
        replayable = not self.request.body_expected and self.request.method in _IDEMPOTENT
        failure: BadGateway | None = None
        balancer = services.balancer
        for server in candidates:
            host = heads.host_override(self.setting, server) or server.host.encode()
            name = self.setting.sni_name or host.decode()
            port = server_port(server, self.setting)
            began = monotonic()
            try:
                backend = await services.backends.acquire(
                    server.host, port, tls, name, replayable=replayable
                )
            except BadGateway as exc:
                balancer.connect_failed(self.pool, server.host, port, exc.detail)
                failure = exc
                continue
            balancer.connected(self.pool, server.host, port)
            self.upstream_label = backend.label
            self._observe_backend(backend, began)
            try:
                backend, reader, response = await self._start(server, backend)
            except BadGateway as exc:
                if not replayable:
                    raise
                log.warning("pool %s: %s; trying the next server", self.pool.name, exc.detail)
                failure = exc
                continue
            return server, backend, reader, response
        assert failure is not None
        raise failure

    def _observe_backend(self, backend: BackendConnection, began: float) -> None:
        self.server = backend.label
        self.connect_seconds = None if backend.reused else monotonic() - began
        if logs.access_log.enabled:
            sock = raw_socket(backend.stream)
            try:
                self.source_port = int(sock.getsockname()[1]) if sock is not None else 0
            except (OSError, IndexError, TypeError, ValueError):
                self.source_port = 0

    # -- the exchange --------------------------------------------------------

    async def run(self) -> None:
        client = self.client
        request = self.request
        if request.websocket:
            handshake.check(request)
        limit = client.limits.max_body_bytes
        if limit and request.content_length is not None and request.content_length > limit:
            raise GatewayError("request body too large", status=413)
        if request.body_expected and client.limits.request_buffering:
            # Request buffering: the body (or its first buffer) is read and
            # checked before anything of the request reaches a backend.
            if request.expect_continue:
                await client.send_continue()
            self.buffered = await buffering.read_ahead(
                client, self.services.buffers.requests, request.content_length
            )
        try:
            await self._exchange()
        finally:
            if self.buffered is not None:
                self.buffered.release()

    async def _exchange(self) -> None:
        client = self.client
        request = self.request
        server, backend, reader, response = await self._open()
        reusable = False
        try:
            if response is None:
                reusable = await self._stream_beside(server, backend, reader)
            else:
                self.status = response.status
                if response.status == 101:
                    problem = handshake.switching_problem(request, response)
                    if problem:
                        self.status = 502  # no tunnel: the backend connection is dropped below
                        raise BadGateway(f"{backend.label}: {problem}")
                    rest = await handshake.switch(client, reader, response)
                    # Nothing of the handshake stays alive while the tunnel is open.
                    del reader, response
                    self.tunnel = await handshake.tunnel(
                        self.services, client, backend, rest, self.timeout, self.setting
                    )
                    return
                reusable = await self.respond(server, backend, reader, response)
        finally:
            if self.backend_done:
                pass  # handed back when the response was read ahead of the client
            elif reusable and request.reuse_backend:
                self.services.backends.release(backend)
            elif self.status != 101:
                backend.abort()

    async def _stream_beside(
        self, server: Server, backend: BackendConnection, reader: ResponseReader
    ) -> bool:
        """Stream the request body beside the wait for the response, and relay that.

        The request head (with what request buffering read of the body) is out;
        returns whether the backend connection may serve again.
        """
        client = self.client
        buffered = self.buffered
        if self.request.expect_continue and buffered is None:
            await client.send_continue()
        reusable = False
        received = 0 if buffered is None else buffered.size
        upload = self.upload = Upload(client, backend, self.request, self.timeout, received)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(upload.send)
                response = await upload.head(lambda: self.head_from(backend, reader))
                if response.status == 101:
                    self.status = 502  # no tunnel: the backend connection is dropped
                    raise BadGateway(f"{backend.label} switched protocols mid-request")
                self.status = response.status
                if not upload.done and client.body_received:
                    # The client sent it all and its last bytes are on their
                    # way: let them arrive, so both connections stay usable.
                    with trio.move_on_after(min(self.timeout, BODY_TAIL_WAIT)):
                        await upload.sent.wait()
                reusable = await self.respond(server, backend, reader, response)
                if not upload.done:
                    # The backend answered before the request body ended:
                    # the rest of the body has nowhere to go, and neither
                    # side of this exchange can be reused.
                    nursery.cancel_scope.cancel()
                    client.close_after()
                    reusable = False
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        return reusable

    async def _start(
        self, server: Server, backend: BackendConnection
    ) -> tuple[BackendConnection, ResponseReader, ResponseHead | None]:
        """Send the head (and, with no body, wait for the response head).

        A kept-alive connection that the backend closed while idle fails
        here before anything of the exchange happened; the request then goes
        out once more on a fresh connection to the same server.
        """
        head = heads.backend_head(
            self.request,
            self.target,
            client=(self.client.peer[0], self.client.scheme, self.client.socket.port),
            host=self.host,
            host_override=heads.host_override(self.setting, server),
            trace=self.trace,
            rewrite=None if self.rewrite is None else self.rewrite.result,
        )
        buffered = self.buffered
        streamed = self.request.body_expected and (buffered is None or not buffered.complete)
        if buffered is not None:
            head += buffered.framed(self.request.chunked)  # what was read goes with the head
        self.head_sent = monotonic()
        for attempt in (1, 2):
            sent = False
            reader = ResponseReader(
                self.request.method == b"HEAD",
                self.client.limits.max_response_header_bytes,
                backend.label,
            )
            try:
                if streamed:
                    await backend.send(head, self.timeout)
                    if buffered is not None:
                        buffered.release()  # out: the rest streams (upload.py)
                    return backend, reader, None
                # No body (or one read whole): sending the request and
                # waiting for the answer is one phase, with one deadline.
                deadline = self.head_sent + self.timeout
                backend.answer_by(deadline)
                try:
                    await backend.write(head)
                    sent = True
                    response = await self.head_from(backend, reader)
                except Expired:
                    raise GatewayTimeout(
                        f"{backend.label} did not respond within {self.timeout:g}s"
                    ) from None
                return backend, reader, response
            except BadGateway:
                backend.abort()
                replayable = not sent or self.request.method in _IDEMPOTENT
                if attempt == 2 or not backend.reused or not replayable:
                    raise
            except BaseException:
                backend.abort()  # a timeout or cancellation: nothing to keep
                raise
            host, port, name = backend.key
            backend = await self.services.backends.acquire(
                host, port, self.services.backend_tls(self.setting), name, fresh=True
            )
        raise AssertionError("unreachable")

    def _read_ahead(self, backend: BackendConnection) -> Callable[[bool], None]:
        """What frees the backend connection once its response was read ahead of the client."""

        def read(reusable: bool) -> None:
            upload = self.upload
            if upload is not None and not upload.done:
                return  # the request is still on its way: decided at the exchange's end
            self.backend_done = True
            if reusable and self.response_keep_alive and self.request.reuse_backend:
                self.services.backends.release(backend)
            else:
                backend.abort()

        return read

    async def head_from(self, backend: BackendConnection, reader: ResponseReader) -> ResponseHead:
        """The response head, reading as needed (the caller holds the deadline)."""
        while True:
            event = reader.next_event()
            if event is not None:
                assert isinstance(event, ResponseHead)
                self.latency = monotonic() - self.head_sent
                return event
            data = await backend.receive()
            if not data:
                raise BadGateway(f"{backend.label} closed the connection without a response")
            reader.feed(data)

    async def respond(
        self,
        server: Server,
        backend: BackendConnection,
        reader: ResponseReader,
        response: ResponseHead,
    ) -> bool:
        """Relay the response; whether the backend connection may serve again."""
        client = self.client
        self.response_keep_alive = response.keep_alive
        kind, length = framing(response.status, self.request.method == b"HEAD", response.headers)
        chunk_out = kind in (CHUNKED, UNTIL_CLOSE) and self.request.version == "1.1"
        if heads.closes_after(
            closing=client.closing,
            draining=self.services.draining.is_set(),
            unframed_for_client=kind in (CHUNKED, UNTIL_CLOSE) and not chunk_out,
            upload_unfinished=self.upload is not None and not self.upload.done,
        ):
            # Said in the head, so kept: even if the body's last bytes reach
            # the backend while the response is on its way.
            client.close_after()
        cookies: list[bytes] = []
        if self.setting.cookie_based_affinity:
            value = self.services.balancer.cookie_value(self.pool, server)
            if heads.sticky(self.setting, self.request) != value:
                cookies = forwarding.affinity_set_cookies(
                    self.setting.affinity_cookie_name, value, client.scheme == "https"
                )
        head = heads.response_head(
            response,
            close=client.closing,
            chunk_out=chunk_out,
            cookies=cookies,
            rewrite=self.rewrite,
            label=backend.label,
        )
        ahead = self.services.buffers.responses if client.limits.response_buffering else None
        body = ResponseBody(
            client, backend, reader, self.timeout, chunk_out, ahead, self._read_ahead(backend)
        )
        try:
            await body.relay(kind, length, head)
        finally:
            reader.close()
        # llhttp's keep-alive: HTTP/1.1 without a Connection "close" token
        # (or HTTP/1.0 with keep-alive).
        return body.reusable and response.keep_alive
