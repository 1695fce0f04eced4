"""One exchange with a backend: a request forwarded and its answer back.

A server is chosen (round robin over healthy servers, affinity first) and a
backend connection is taken from the pool; a server that cannot be reached
is skipped for the next one, so a dead server costs no failed request. The
head goes out re-serialised by h11 with one framing (Content-Length or
chunked, never both); then the request body streams to the backend in one
task while the main task waits for the response head, so a backend that
answers early is heard at once. The response streams back with
back-pressure both ways: nothing is held whole.

Deadlines: the setting's request timeout bounds every wait on the backend
(the response head, and each read of the body): 504 before the response has
started, an aborted client connection after.

A WebSocket handshake answered by `101` with the right Sec-WebSocket-Accept
turns the two connections into a tunnel (relay.py), handing over whatever
either h11 connection had already read past the handshake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import h11
import trio

from appgw import logs
from appgw.config.model import Server
from appgw.errors import (
    BackendAborted,
    BadGateway,
    BadRequest,
    GatewayError,
    GatewayTimeout,
    first_error,
)
from appgw.worker import errorpage, forwarding
from appgw.worker import headers as rules
from appgw.worker.balancer import server_port
from appgw.worker.connection import Incoming
from appgw.worker.relay import TunnelEnd, relay_tunnel
from appgw.worker.rewrite import CompiledRuleSet, RequestRewrite
from appgw.worker.routing import Route, backend_target
from appgw.worker.upstream import RECEIVE_SIZE, Upstream, abort, raw_socket
from appgw.worker.variables import RequestContext

if TYPE_CHECKING:
    from appgw.worker.connection import ClientConnection

log = logs.log

FLUSH_SIZE = 256 * 1024  # bytes of response gathered at most before a write

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


@attrs.frozen
class Rewrite:
    """A rewrite rule set's outcome for one request, kept for its response."""

    rule_set: CompiledRuleSet
    context: RequestContext
    result: RequestRewrite


class Exchange:
    def __init__(
        self,
        client: ClientConnection,
        request: h11.Request,
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
        self.worker = client.worker
        self.request = request
        self.route = route
        self.pool = route.pool
        self.setting = route.setting
        self.host = host
        self.target = backend_target(route, target)
        self.timeout = float(self.setting.request_timeout)
        self.status = 0
        self.upstream_label = ""
        self.websocket = rules.wants_websocket(
            request.method, request.headers, request.http_version
        )
        self.body_done = trio.Event()
        length = rules.header_value(request.headers, b"content-length")
        self.chunked = rules.header_value(request.headers, b"transfer-encoding") is not None
        self.content_length = int(length) if length is not None and not self.chunked else None
        self.has_body = client.body_expected
        # The backend's head-wait deadline, pushed forward while the body moves.
        self.wait_scope: trio.CancelScope | None = None
        # -- for observe.Exchanged (the access log and metrics) --
        self.server = ""  # "host:port" of the server reached
        self.connect_seconds: float | None = None  # a new connection's connect time
        self.head_sent = 0.0
        self.latency: float | None = None  # head sent -> response head
        self.source_port = 0
        self.tunnel: TunnelEnd | None = None

    # -- choosing and reaching a server --------------------------------------

    def _sticky(self) -> str | None:
        if not self.setting.cookie_based_affinity:
            return None
        return forwarding.affinity_cookie(self.request.headers, self.setting.affinity_cookie_name)

    def _host_header(self, server: Server) -> bytes | None:
        if self.setting.host_name:
            return self.setting.host_name.encode()
        if self.setting.pick_host_name_from_backend_address:
            return server.host.encode()
        return None

    async def _open(
        self,
    ) -> tuple[Server, Upstream, h11.Response | h11.InformationalResponse | None]:
        """Reach a server and start the exchange there.

        Servers are tried in the balancer's order. A server that cannot be
        reached is skipped. A request that can be replayed (no body, an
        idempotent method) also moves on when the connection breaks before
        any of the response arrived, so a backend that dies under traffic
        costs no failed request.
        """
        candidates = self.worker.balancer.candidates(
            self.pool, self.setting, self.worker.health, self._sticky()
        )
        if not candidates:
            raise BadGateway(f"no healthy server in pool {self.pool.name}")
        tls = self.worker.backend_tls(self.setting)
        replayable = not self.has_body and self.request.method in _IDEMPOTENT
        failure: BadGateway | None = None
        balancer = self.worker.balancer
        for server in candidates:
            name = (
                self.setting.sni_name
                or (self._host_header(server) or server.host.encode()).decode()
            )
            port = server_port(server, self.setting)
            began = trio.current_time()
            try:
                upstream = await self.worker.upstreams.acquire(server.host, port, tls, name)
            except BadGateway as exc:
                balancer.connect_failed(self.pool, server.host, port, exc.detail)
                failure = exc
                continue
            balancer.connected(self.pool, server.host, port)
            self.upstream_label = upstream.label
            self._observe_upstream(upstream, began)
            try:
                upstream, response = await self._start(server, upstream)
            except BadGateway as exc:
                if not replayable:
                    raise
                log.warning("pool %s: %s; trying the next server", self.pool.name, exc.detail)
                failure = exc
                continue
            return server, upstream, response
        assert failure is not None
        raise failure

    def _observe_upstream(self, upstream: Upstream, began: float) -> None:
        self.server = upstream.label
        self.connect_seconds = None if upstream.reused else trio.current_time() - began
        if logs.access_log.enabled:
            sock = raw_socket(upstream.stream)
            try:
                self.source_port = int(sock.getsockname()[1]) if sock is not None else 0
            except (OSError, IndexError, TypeError, ValueError):
                self.source_port = 0

    # -- the exchange --------------------------------------------------------

    async def run(self) -> None:
        client = self.client
        if self.websocket:
            problem = rules.websocket_key_problem(self.request.headers)
            if problem and "Version" in problem:
                # RFC 6455 §4.4: name the version this side speaks.
                raise GatewayError(
                    problem, status=426, headers=((b"sec-websocket-version", b"13"),)
                )
            if problem:
                raise BadRequest(problem)
        limit = client.limits.max_body_bytes
        if limit and self.content_length is not None and self.content_length > limit:
            raise GatewayError("request body too large", status=413)
        server, upstream, response = await self._open()
        reusable = False
        try:
            if client.h11.they_are_waiting_for_100_continue:
                await client.send(h11.InformationalResponse(status_code=100, headers=[]))
            try:
                async with trio.open_nursery() as nursery:
                    if response is None:
                        nursery.start_soon(self._send_body, upstream)
                        response = await self._receive_head(upstream)
                    self.status = response.status_code
                    if isinstance(response, h11.InformationalResponse):
                        await self._tunnel(upstream, response)  # 101: the only 1xx passed on
                        return
                    await self._respond(server, upstream, response)
                    if not self.body_done.is_set():
                        # The backend answered before the request body ended:
                        # the rest of the body has nowhere to go, and neither
                        # side of this exchange can be reused.
                        nursery.cancel_scope.cancel()
                        client.closing = True
                        return
            except BaseExceptionGroup as group:
                raise first_error(group) from None
            reusable = client.reuse_backend
        finally:
            if reusable:
                self.worker.upstreams.release(upstream)
            elif self.status != 101:
                abort(upstream.stream)

    async def _start(
        self, server: Server, upstream: Upstream
    ) -> tuple[Upstream, h11.Response | h11.InformationalResponse | None]:
        """Send the head (and, with no body, wait for the response head).

        A pooled connection that the backend closed while idle fails here
        before anything of the exchange happened; the request then goes out
        once more on a fresh connection to the same server.
        """
        head = self._backend_head(server)
        self.head_sent = trio.current_time()
        for attempt in (1, 2):
            sent = False
            try:
                await self._upstream_send(upstream, head)
                sent = True
                if self.has_body:
                    return upstream, None
                await self._upstream_send(upstream, h11.EndOfMessage())
                self.body_done.set()
                return upstream, await self._receive_head(upstream)
            except BadGateway:
                abort(upstream.stream)
                replayable = not sent or self.request.method in _IDEMPOTENT
                if attempt == 2 or not upstream.reused or not replayable:
                    raise
            except BaseException:
                abort(upstream.stream)  # a timeout or cancellation: nothing to keep
                raise
            host, port, name = upstream.key
            upstream = await self.worker.upstreams.acquire(
                host, port, self.worker.backend_tls(self.setting), name, fresh=True
            )
        raise AssertionError("unreachable")

    def _backend_head(self, server: Server) -> h11.Request:
        headers = [(k, v) for k, v in self.request.headers if k != b"expect"]
        built = rules.request_headers(
            headers,
            client_ip=self.client.peer[0],
            scheme=self.client.scheme,
            port=self.client.socket.port,
            host=self.host,
            host_override=self._host_header(server),
            content_length=self.content_length,
            chunked=self.chunked,
            websocket=self.websocket,
        )
        built = forwarding.add_request_headers(built, self.trace)
        if self.rewrite is not None:
            built = self.rewrite.result.apply(built)
        return h11.Request(method=self.request.method, target=self.target.encode(), headers=built)

    async def _upstream_send(self, upstream: Upstream, event: h11.Event) -> None:
        data = upstream.h11.send(event)
        if data:
            with trio.CancelScope(deadline=trio.current_time() + self.timeout) as scope:
                try:
                    await upstream.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise BadGateway(f"{upstream.label} broke the connection: {exc}") from None
            if scope.cancelled_caught:
                raise GatewayTimeout(f"{upstream.label} stopped reading the request")

    async def _send_body(self, upstream: Upstream) -> None:
        """Stream the client's body to the backend (runs beside the head wait)."""
        client = self.client
        limit = client.limits.max_body_bytes
        received = 0
        while True:
            event = await client.next_body_event()
            if isinstance(event, h11.Data):
                received += len(event.data)
                if limit and received > limit:
                    raise GatewayError("request body too large", status=413)
                await self._upstream_send(upstream, event)
                if self.wait_scope is not None:
                    self.wait_scope.deadline = trio.current_time() + self.timeout
            elif isinstance(event, h11.EndOfMessage):
                await self._upstream_send(upstream, h11.EndOfMessage())
                self.body_done.set()
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise BadRequest("client closed before the request body ended")

    async def _upstream_event(self, upstream: Upstream) -> Incoming:
        while True:
            event = upstream.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await upstream.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise BadGateway(f"{upstream.label} broke the connection: {exc}") from None
            upstream.h11.receive_data(bytes(data))

    async def _receive_head(self, upstream: Upstream) -> h11.Response | h11.InformationalResponse:
        with trio.CancelScope(deadline=trio.current_time() + self.timeout) as scope:
            self.wait_scope = scope
            while True:
                try:
                    event = await self._upstream_event(upstream)
                except h11.RemoteProtocolError as exc:
                    raise BadGateway(f"{upstream.label} sent an invalid response: {exc}") from None
                if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    continue  # 100 Continue (answered by the gateway itself), 103 ...
                if isinstance(event, h11.Response | h11.InformationalResponse):
                    self.wait_scope = None
                    self.latency = trio.current_time() - self.head_sent
                    size = len(event.reason) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                    if size > self.client.limits.max_response_header_bytes:
                        raise BadGateway(f"{upstream.label} sent a response head of {size} bytes")
                    return event
                if isinstance(event, h11.ConnectionClosed):
                    raise BadGateway(f"{upstream.label} closed the connection without a response")
                raise BadGateway(f"{upstream.label} sent {type(event).__name__} before a response")
        self.wait_scope = None
        raise GatewayTimeout(f"{upstream.label} did not respond within {self.timeout:g}s")

    async def _respond(self, server: Server, upstream: Upstream, response: h11.Response) -> None:
        client = self.client
        if self.worker.draining.is_set():
            client.closing = True
        close = client.closing or not self.body_done.is_set()
        out = rules.response_headers(list(response.headers), close=close)
        if self.setting.cookie_based_affinity:
            value = self.worker.balancer.cookie_value(self.pool, server)
            if self._sticky() != value:
                cookies = forwarding.affinity_set_cookies(
                    self.setting.affinity_cookie_name, value, client.scheme == "https"
                )
                out.extend((b"set-cookie", cookie) for cookie in cookies)
        if self.rewrite is not None:
            out = self.rewrite.rule_set.rewrite_response(
                self.rewrite.context, response.status_code, out
            )
        try:
            pending = bytearray(
                client.h11.send(
                    h11.Response(
                        status_code=response.status_code,
                        headers=out,
                        reason=response.reason or errorpage.reason(response.status_code),
                    )
                )
            )
        except h11.LocalProtocolError as exc:
            raise BadGateway(f"{upstream.label} sent an unusable response head: {exc}") from None
        await self._relay_body(upstream, pending)

    async def _relay_body(self, upstream: Upstream, pending: bytearray) -> None:
        """Stream the response body to the client.

        Writes are coalesced: what the backend already delivered goes out in
        one write, flushed before the gateway waits on the backend again, so
        a small response costs one write and a streamed one is not delayed.
        """
        client = self.client
        backend = upstream.h11
        label = upstream.label
        while True:
            try:
                event = backend.next_event()
            except h11.RemoteProtocolError as exc:
                raise BackendAborted(f"{label} broke off the response: {exc}") from None
            if event is h11.NEED_DATA:
                if pending:
                    await client.send_bytes(pending)
                    pending = bytearray()
                with trio.CancelScope(deadline=trio.current_time() + self.timeout) as scope:
                    try:
                        data = await upstream.stream.receive_some(RECEIVE_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                        raise BackendAborted(f"{label} broke off the response: {exc}") from None
                if scope.cancelled_caught:
                    raise BackendAborted(f"{label} stalled for {self.timeout:g}s mid-response")
                backend.receive_data(bytes(data))
                continue
            try:
                if isinstance(event, h11.Data):
                    client.sent += len(event.data)
                    pending += client.h11.send(event)
                    if len(pending) >= FLUSH_SIZE:
                        await client.send_bytes(pending)
                        pending = bytearray()
                elif isinstance(event, h11.EndOfMessage):
                    pending += client.h11.send(h11.EndOfMessage())
                    await client.send_bytes(pending)
                    return
                else:
                    raise BackendAborted(f"{label} ended the response early")
            except h11.LocalProtocolError as exc:
                raise BackendAborted(
                    f"{label} sent a body its head did not announce: {exc}"
                ) from None

    async def _tunnel(self, upstream: Upstream, response: h11.InformationalResponse) -> None:
        client = self.client
        if not self.websocket:
            raise BadGateway(f"{upstream.label} switched protocols without being asked")
        problem = rules.switching_problem(self.request.headers, list(response.headers))
        if problem:
            self.status = 502
            raise BadGateway(f"{upstream.label}: {problem}")
        await client.send(
            h11.InformationalResponse(
                status_code=101,
                headers=rules.switching_headers(list(response.headers)),
                reason=response.reason,
            )
        )
        client_rest, _ = client.h11.trailing_data
        backend_rest, _ = upstream.h11.trailing_data
        client.closing = True
        self.tunnel = await relay_tunnel(
            self.worker,
            client.stream,
            bytes(client_rest),
            upstream.stream,
            bytes(backend_rest),
            idle_timeout=self.timeout,
            drain_timeout=float(self.setting.tunnel_drain_timeout),
            label=f"{client.peer[0]} <-> {upstream.label}",
        )
