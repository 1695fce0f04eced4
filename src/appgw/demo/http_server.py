"""The demo servers' HTTP: a small h11 server loop, and how a demo server runs.

`serve_http` answers requests with a `respond` function, and can hand a
WebSocket upgrade request to an `upgrade` function together with a stream
that replays the request, so a WebSocket library can do the handshake.
`run_main` runs a demo server until SIGINT or SIGTERM, printing a line once
it listens (the demo runner waits for it).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from http import HTTPStatus

import h11
import trio
from attrs import frozen

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
HEAD_TIMEOUT = 30.0  # seconds to receive a request head once it has begun
IDLE_TIMEOUT = 300.0  # seconds a keep-alive connection may wait for a request
SEND_TIMEOUT = 30.0

_STATUSES = {status.value for status in HTTPStatus}

# What a peer that went away or stalled raises.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)


@frozen
class Request:
    """A request head, as the handlers see it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]  # names lowercased, in arrival order
    raw_head: bytes  # the head as received (names in their original case)
    peer: str  # "host:port" of the client (the gateway, behind one)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def wants_websocket(self) -> bool:
        upgrade = (self.header("upgrade") or "").lower()
        connection = (self.header("connection") or "").lower()
        tokens = {token.strip() for token in connection.split(",")}
        return self.method == "GET" and upgrade == "websocket" and "upgrade" in tokens


@frozen
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def text(status: int, body: str) -> Response:
    return Response(status, body.encode(), "text/plain; charset=utf-8")


def page(body: str, status: int = 200) -> Response:
    return Response(status, body.encode(), "text/html; charset=utf-8")


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, json.dumps(value, indent=2).encode() + b"\n", "application/json")


Respond = Callable[[Request], Response]
# Takes over an upgrade request: the stream replays the request head first.
Upgrade = Callable[[Request, trio.abc.Stream], Awaitable[None]]


class ReplayStream(trio.abc.Stream):
    """A stream that yields `prefix` before the bytes of the wrapped stream."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self._stream.aclose()


async def serve_http(
    respond: Respond,
    host: str,
    port: int,
    *,
    upgrade: Upgrade | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP/1.1 on host:port until cancelled; reports the bound port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                trio.serve_listeners,
                partial(_serve_connection, respond=respond, upgrade=upgrade),
                listeners,
                handler_nursery=nursery,
            )
        )
        task_status.started(bound)


async def _serve_connection(
    stream: trio.SocketStream, *, respond: Respond, upgrade: Upgrade | None
) -> None:
    peer = _peer(stream)
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        while True:
            head = await _receive_head(conn, stream)
            if head is None:
                return
            request = _request(head, peer)
            if upgrade is not None and request.wants_websocket:
                if not await _skip_body(conn, stream, allow=0):
                    return
                trailing, _ = conn.trailing_data
                await upgrade(request, ReplayStream(stream, request.raw_head + trailing))
                return
            if not await _skip_body(conn, stream, allow=MAX_BODY_BYTES):
                await _send_response(conn, stream, request, text(413, "request body too large\n"))
                return
            await _send_response(conn, stream, request, _safely(respond, request))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            bad = Request("GET", "/", (), b"", peer)
            answer = text(exc.error_status_hint, f"bad request: {exc}\n")
            with contextlib.suppress(h11.LocalProtocolError, *_GONE):
                await _send_response(conn, stream, bad, answer)
    except _GONE:
        pass
    except Exception as exc:  # a bug serving one connection must not stop the server
        print(f"error serving {peer}: {exc!r}", file=sys.stderr)
    finally:
        with trio.move_on_after(1):
            await stream.aclose()


async def _receive_head(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
    """The next request head, or None when the client closed or idled out."""
    deadline = IDLE_TIMEOUT
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with trio.move_on_after(deadline) as scope:
                data = await stream.receive_some(65536)
            if scope.cancelled_caught:
                return None
            conn.receive_data(bytes(data))
            deadline = HEAD_TIMEOUT  # a request has begun (or the peer closed)
            continue
        if isinstance(event, h11.Request):
            return event
        return None  # ConnectionClosed, or PAUSED after a switch we did not make


async def _skip_body(conn: h11.Connection, stream: trio.abc.Stream, *, allow: int) -> bool:
    """Read and drop the request body; False if it is larger than `allow`."""
    size = 0
    with trio.fail_after(HEAD_TIMEOUT):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > allow:
                    return False
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return True
            else:
                return False


async def _send_response(
    conn: h11.Connection, stream: trio.abc.Stream, request: Request, response: Response
) -> None:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        ("Cache-Control", "no-store"),
        *response.headers,
    ]
    if response.status >= 400 and response.status not in (404, 405):
        headers.append(("Connection", "close"))
    reason = HTTPStatus(response.status).phrase if response.status in _STATUSES else ""
    head = h11.Response(status_code=response.status, headers=headers, reason=reason)
    chunks = [conn.send(head)]
    if request.method != "HEAD" and response.body:
        chunks.append(conn.send(h11.Data(data=response.body)))
    chunks.append(conn.send(h11.EndOfMessage()))
    with trio.fail_after(SEND_TIMEOUT):
        await stream.send_all(b"".join(c for c in chunks if c))


def _safely(respond: Respond, request: Request) -> Response:
    try:
        return respond(request)
    except Exception as exc:  # a bug in a handler answers 500, the server goes on
        print(f"error answering {request.method} {request.target}: {exc!r}", file=sys.stderr)
        return text(500, "internal error\n")


def _request(event: h11.Request, peer: str) -> Request:
    raw = event.headers.raw_items()
    head = b"%s %s HTTP/%s\r\n" % (event.method, event.target, event.http_version)
    head += b"".join(b"%s: %s\r\n" % (name, value) for name, value in raw) + b"\r\n"
    return Request(
        method=event.method.decode("ascii"),
        target=event.target.decode("ascii", "replace"),
        headers=tuple(
            (name.decode("ascii").lower(), value.decode("latin-1")) for name, value in raw
        ),
        raw_head=head,
        peer=peer,
    )


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()
    except (OSError, AttributeError):
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- how a demo server runs ---------------------------------------------------


async def run_until_signal(
    serve: Callable[..., Awaitable[None]],
    ready: Callable[[int], str],
    on_signal: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run `serve` (a serve_* function) until SIGINT or SIGTERM.

    Prints ready(port) on stdout once it listens, for whoever started it. On
    a signal, awaits on_signal (a chance to say goodbye to clients) first.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve)
            print(ready(port), flush=True)
            async for _ in signals:
                if on_signal is not None:
                    await on_signal()
                nursery.cancel_scope.cancel()
                break


def run_main(
    serve: Callable[..., Awaitable[None]],
    ready: Callable[[int], str],
    cannot_listen: str,
    on_signal: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """A demo server's main: run until a signal; 1 if it cannot listen."""
    status = 0
    try:
        trio.run(run_until_signal, serve, ready, on_signal)
    except* OSError as group:
        print(f"{cannot_listen}: {_first(group)}", file=sys.stderr)
        status = 1
    return status


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
