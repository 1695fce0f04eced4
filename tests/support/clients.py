"""Clients for tests: HTTP/1.1 over raw trio streams + h11, and WebSocket.

HttpClient is one client connection driven step by step, so a test controls
exactly what goes on the wire (framing, headers, several requests on one
connection) and sees exactly how the other side ended it. Raw bytes that h11
refuses to send (two Content-Lengths ...) go through raw_exchange.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import h11
import trio
import trio_websocket

from tests.support.wsecho import MAX_MESSAGE_SIZE, RECEIVE_BUFFER

BLOCK = 64 * 1024
Headers = Sequence[tuple[str, str]]
OutEvent = h11.Request | h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage


@attrs.frozen
class Response:
    status: int
    reason: str
    http_version: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased
    body: bytes  # empty when the body went to a sink
    body_bytes: int  # bytes of body received, also when they went to a sink

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class IncompleteResponse(Exception):
    """The connection ended (or broke) before the response was complete."""

    def __init__(self, status: int | None, received: int, cause: BaseException | None) -> None:
        super().__init__(
            f"response incomplete: status {status}, {received} body bytes, cause {cause!r}"
        )
        self.status = status  # None if not even the head arrived
        self.received = received
        self.cause = cause


class HttpClient:
    """One HTTP/1.1 client connection (h11 over a trio stream)."""

    def __init__(self, stream: trio.abc.Stream, authority: str) -> None:
        self.stream = stream
        self.authority = authority  # the default Host header
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=BLOCK)
        self.responses = 0  # complete responses read on this connection

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        authority: str | None = None,
    ) -> HttpClient:
        """Connect to host:port (TLS when ssl_context is given; SNI server_hostname or host)."""
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        if ssl_context is not None:
            tls = trio.SSLStream(
                stream, ssl_context, server_hostname=server_hostname or host, https_compatible=True
            )
            await tls.do_handshake()
            stream = tls
        return cls(stream, authority or f"{host}:{port}")

    @property
    def socket(self) -> trio.socket.SocketType:
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        assert isinstance(stream, trio.SocketStream)
        return stream.socket

    @property
    def local_address(self) -> tuple[str, int]:
        host, port = self.socket.getsockname()[:2]
        return host, port

    @property
    def reusable(self) -> bool:
        """True when another request may go on this connection."""
        return self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE

    async def _send(self, event: OutEvent) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def send_head(
        self,
        method: str,
        target: str,
        headers: Headers = (),
        *,
        content_length: int | None = None,
        chunked: bool = False,
    ) -> None:
        names = {k.lower() for k, _ in headers}
        all_headers = list(headers)
        if "host" not in names:
            all_headers.insert(0, ("Host", self.authority))
        if chunked and "transfer-encoding" not in names:
            all_headers.append(("Transfer-Encoding", "chunked"))
        if content_length is not None and "content-length" not in names:
            all_headers.append(("Content-Length", str(content_length)))
        await self._send(h11.Request(method=method, target=target, headers=all_headers))

    async def send_body(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                await self._send(h11.Data(data=chunk))

    async def end_request(self) -> None:
        await self._send(h11.EndOfMessage())

    async def _next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(bytes(await self.stream.receive_some(BLOCK)))
                continue
            return event

    async def read_head(self) -> h11.Response:
        """The final response head (informational 1xx heads are skipped)."""
        while True:
            try:
                event = await self._next_event()
            except (h11.RemoteProtocolError, trio.BrokenResourceError) as exc:
                raise IncompleteResponse(None, 0, exc) from exc
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return event
            raise IncompleteResponse(None, 0, None)

    async def read_body(
        self, head: h11.Response, sink: Callable[[bytes], object] | None = None
    ) -> Response:
        """Read the body of `head` to its end; into `sink` if given, else kept."""
        parts: list[bytes] = []
        received = 0
        while True:
            try:
                event = await self._next_event()
            except (h11.RemoteProtocolError, trio.BrokenResourceError) as exc:
                raise IncompleteResponse(head.status_code, received, exc) from exc
            if isinstance(event, h11.Data):
                received += len(event.data)
                if sink is None:
                    parts.append(bytes(event.data))
                else:
                    sink(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise IncompleteResponse(head.status_code, received, None)
        self.responses += 1
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return Response(
            status=head.status_code,
            reason=head.reason.decode("latin-1"),
            http_version=head.http_version.decode("ascii"),
            headers=tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in head.headers
            ),
            body=b"".join(parts),
            body_bytes=received,
        )

    async def read_response(self, sink: Callable[[bytes], object] | None = None) -> Response:
        head = await self.read_head()
        return await self.read_body(head, sink)

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),
        body: bytes | Iterable[bytes] | None = None,
        content_length: int | None = None,
        chunked: bool = False,
        sink: Callable[[bytes], object] | None = None,
    ) -> Response:
        """Send a whole request and read the whole response.

        body: bytes (Content-Length unless chunked), or an iterable of blocks
        (chunked, or content_length must be given).
        """
        if isinstance(body, bytes | bytearray) and not chunked and content_length is None:
            content_length = len(body)
        if body is not None and not isinstance(body, bytes | bytearray):
            if not chunked and content_length is None:
                raise ValueError("a streamed body needs chunked=True or content_length")
        await self.send_head(
            method, target, headers, content_length=content_length, chunked=chunked
        )
        if body is not None:
            await self.send_body([bytes(body)] if isinstance(body, bytes | bytearray) else body)
        await self.end_request()
        return await self.read_response(sink)

    async def get(self, target: str, headers: Headers = ()) -> Response:
        return await self.request("GET", target, headers=headers)

    async def read_until_closed(self) -> bytes:
        """Everything the peer still sends, up to its end of the connection."""
        data = bytearray(self.conn.trailing_data[0])
        try:
            while chunk := await self.stream.receive_some(BLOCK):
                data += chunk
        except trio.BrokenResourceError:
            pass
        return bytes(data)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def open_http(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    authority: str | None = None,
) -> AsyncIterator[HttpClient]:
    """`async with open_http(host, port) as client:` one client connection."""
    client = await HttpClient.open(
        host, port, ssl_context=ssl_context, server_hostname=server_hostname, authority=authority
    )
    try:
        yield client
    finally:
        await client.aclose()


async def get(
    host: str,
    port: int,
    target: str = "/",
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    headers: Headers = (),
) -> Response:
    """One GET on a fresh connection."""
    async with open_http(
        host, port, ssl_context=ssl_context, server_hostname=server_hostname
    ) as client:
        return await client.get(target, headers)


async def raw_exchange(host: str, port: int, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection, return all bytes until the peer closes.

    For requests h11 refuses to send (malformed on purpose). Put the call
    under a fail_after: a peer that keeps the connection open blocks it.
    """
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(data)
        received = bytearray()
        try:
            while chunk := await stream.receive_some(BLOCK):
                received += chunk
        except trio.BrokenResourceError:
            pass
        return bytes(received)
    finally:
        await trio.aclose_forcefully(stream)


def status_of(raw: bytes) -> int:
    """The status code of the first response in raw bytes."""
    line = raw.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP response: {raw[:80]!r}")
    return int(parts[1])


# -- WebSocket ---------------------------------------------------------------


def _collapse(group: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The one real exception in a nursery's group, or the group itself."""
    leaves = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        elif not isinstance(exc, trio.Cancelled):
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group


class _EofWatch(trio.abc.Stream):
    """Passes a stream through, and sets `ended` once the peer has ended it."""

    def __init__(self, inner: trio.abc.Stream, ended: trio.Event) -> None:
        self._inner = inner
        self._ended = ended

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._inner.receive_some(max_bytes)
        except trio.BrokenResourceError:
            self._ended.set()
            raise
        if not data:
            self._ended.set()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def open_ws_at(
    host: str,
    port: int,
    resource: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    subprotocols: Sequence[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    server_closed: trio.Event | None = None,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client on host:port, sized for large messages.

    TLS when ssl_context is given, checking the name `server_hostname` (also
    sent as Host), for servers whose certificate names another host than the
    address connected to. Raises trio_websocket.ConnectionRejected when the
    server answers the handshake with something else than 101.
    `server_closed` is set once the server has ended the connection (TCP
    end, or TLS close).

    Unlike the library's own open_websocket, this closes the TCP connection
    on the way out in every case: after a close started by the server, the
    library waits for the server's TCP close and never closes its own side,
    which leaves a gateway's tunnel half-open.
    """
    name = server_hostname or host
    stream: Any = await trio.open_tcp_stream(host, port)
    try:
        if ssl_context is not None:
            stream = trio.SSLStream(
                stream, ssl_context, server_hostname=name, https_compatible=True
            )
            await stream.do_handshake()
        watched = _EofWatch(stream, server_closed if server_closed is not None else trio.Event())
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    watched,  # type: ignore[arg-type]
                    f"{name}:{port}",
                    resource,
                    subprotocols=subprotocols,
                    extra_headers=extra_headers,
                    max_message_size=MAX_MESSAGE_SIZE,
                    receive_buffer_size=RECEIVE_BUFFER,
                )
                try:
                    yield ws
                finally:
                    with trio.move_on_after(5):
                        await ws.aclose()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _collapse(group) from None
    finally:
        await trio.aclose_forcefully(stream)


def open_ws(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: Sequence[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    server_closed: trio.Event | None = None,
) -> Any:
    """open_ws_at for a ws:// or wss:// URL.

    `async with open_ws("ws://127.0.0.1:8080/ws") as ws:`
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    if parts.scheme not in ("ws", "wss") or parts.hostname is None:
        raise ValueError(f"not a WebSocket URL: {url}")
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return open_ws_at(
        parts.hostname,
        parts.port or (443 if secure else 80),
        resource,
        ssl_context=ssl_context if secure else None,
        subprotocols=subprotocols,
        extra_headers=extra_headers,
        server_closed=server_closed,
    )
