"""Backend servers for tests: a real HTTP/1.1 server on trio + h11.

`await nursery.start(serve_http_backend, "127.0.0.2", port, name="a")`
returns an HttpBackend once it listens. It keeps connections alive, counts
the TCP connections it accepted and records every request (with the number
of the connection it came on), so tests can prove connection reuse and see
exactly which headers the gateway forwarded. Its endpoints:

    /                       text naming the instance ("backend a")
    /echo                   JSON: method, target, headers, body size
    /upload                 streams the body (either framing); JSON {bytes, sha256}
    /download?size=N&seed=S&chunked=1
                            N pseudo-random bytes (pattern_blocks), Content-Length
                            or chunked
    /status/N               an answer with status N
    /healthz, /status       200 "ok" (the custom probes of the shared example files)
    /slow?delay=S           answers after S seconds
    /garbage                writes bytes that are not HTTP, then closes
    /close-mid-body         announces 1000000 bytes, sends 100000, closes
    /ws...                  (websocket=True) WebSocket upgrades go to the
                            trio-websocket echo of wsecho.py
    /ws-page                an HTML page that opens a WebSocket to /ws/echo on its
                            own origin, sends "hello" and shows the echo in #echo

Every response carries `X-Backend: <name>`. serve_silent_backend is a server
that accepts and reads but never answers (for 504 tests).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import h11
import trio
import trio_websocket

from tests.support import wsecho

BLOCK = 64 * 1024
CLOSE_MID_BODY_LENGTH = 1_000_000
CLOSE_MID_BODY_SENT = 100_000
GARBAGE = b"this is not HTTP at all\r\n\x00\x01\x02\xff\r\n\r\n"
# The page of /ws-page: #echo shows the echo (data-state: open, echoed, error, closed).
WS_PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>WebSocket echo</title>
<p id="echo" data-state="connecting"></p>
<script>
const shown = document.querySelector("#echo");
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/ws/echo`);
ws.onopen = () => { shown.dataset.state = "open"; ws.send("hello"); };
ws.onmessage = (e) => { shown.textContent = e.data; shown.dataset.state = "echoed"; };
ws.onerror = () => { shown.dataset.state = "error"; };
ws.onclose = (e) => { if (shown.dataset.state !== "echoed") shown.dataset.state = `closed ${e.code}`; };
</script>
"""

# Errors a peer can cause; the backend drops that connection and goes on.
PEER_ERRORS = (
    h11.RemoteProtocolError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ConnectionError,
)


# -- deterministic payloads -------------------------------------------------


def pattern_blocks(size: int, seed: int = 0, block: int = BLOCK) -> Iterator[bytes]:
    """`size` pseudo-random bytes determined by `seed`, in blocks of `block`.

    The same (size, seed, block) always gives the same bytes, so a test can
    send or check gigabytes without holding them: the backend streams them
    and the test recomputes the digest with pattern_sha256.
    """
    rng = random.Random(seed)
    remaining = size
    while remaining > 0:
        n = min(block, remaining)
        yield rng.randbytes(n)
        remaining -= n


def pattern_sha256(size: int, seed: int = 0) -> str:
    """Hex SHA-256 of pattern_blocks(size, seed)."""
    digest = hashlib.sha256()
    for chunk in pattern_blocks(size, seed):
        digest.update(chunk)
    return digest.hexdigest()


# -- what the backend records ----------------------------------------------


@attrs.frozen
class RecordedRequest:
    """A request head as the backend received it."""

    connection: int  # serial number of the TCP connection it arrived on (1, 2, ...)
    method: str
    target: str
    http_version: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in order received

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


@attrs.define(eq=False)
class HttpBackend:
    """A running test backend: where it listens and what it has seen."""

    name: str
    host: str
    port: int
    websocket: bool = False
    subprotocols: tuple[str, ...] = wsecho.DEFAULT_SUBPROTOCOLS
    connections: int = 0  # TCP connections accepted so far
    requests: list[RecordedRequest] = attrs.Factory(list)
    peer_errors: list[str] = attrs.Factory(list)  # protocol/IO errors caused by peers
    ws: wsecho.WsEchoServer | None = None  # handshakes and messages when websocket=True
    _changed: trio.Event = attrs.Factory(trio.Event)
    _cancel_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)

    @property
    def last_request(self) -> RecordedRequest | None:
        return self.requests[-1] if self.requests else None

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        """Requests whose path starts with `path_prefix` (leaves out health probes)."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def connections_used_by(self, path_prefix: str) -> set[int]:
        """The connections that carried requests to `path_prefix`."""
        return {r.connection for r in self.requests_to(path_prefix)}

    async def wait_for_request(
        self, path_prefix: str, timeout: float, count: int = 1
    ) -> RecordedRequest:
        """Wait until `count` requests to `path_prefix` have arrived; the last one."""
        with trio.fail_after(timeout):
            while len(self.requests_to(path_prefix)) < count:
                await self._changed.wait()
        return self.requests_to(path_prefix)[count - 1]

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        self._cancel_scope.cancel()

    def _record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._changed.set()
        self._changed = trio.Event()


async def serve_http_backend(
    host: str,
    port: int = 0,
    *,
    name: str | None = None,
    websocket: bool = False,
    subprotocols: Sequence[str] = wsecho.DEFAULT_SUBPROTOCOLS,
    ssl_context: object | None = None,
    task_status: trio.TaskStatus[HttpBackend] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the test backend on host:port (0: any free port) until cancelled.

    websocket=True hands WebSocket upgrades to paths under /ws to the echo of
    wsecho.py (accepting the first offered of `subprotocols`); other paths
    answer upgrade requests as ordinary HTTP. ssl_context serves HTTPS.
    """
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]]
    if ssl_context is None:
        listeners = await trio.open_tcp_listeners(port, host=host)
    else:
        listeners = await trio.open_ssl_over_tcp_listeners(
            port,
            ssl_context,  # type: ignore[arg-type]
            host=host,
            https_compatible=True,
        )
    real_port = listening_port(listeners[0])
    backend = HttpBackend(
        name=name or f"{host}:{real_port}",
        host=host,
        port=real_port,
        websocket=websocket,
        subprotocols=tuple(subprotocols),
    )
    if websocket:
        backend.ws = wsecho.WsEchoServer(host, real_port, tuple(subprotocols))

    async def handler(stream: trio.abc.Stream) -> None:
        await _serve_connection(backend, stream)

    with backend._cancel_scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handler, listeners)
            task_status.started(backend)


def listening_port(listener: trio.abc.Listener[trio.abc.Stream]) -> int:
    """The port a trio TCP (or TLS over TCP) listener is bound to."""
    if isinstance(listener, trio.SSLListener):
        listener = listener.transport_listener
    assert isinstance(listener, trio.SocketListener)
    return int(listener.socket.getsockname()[1])


# -- one connection ----------------------------------------------------------


async def _serve_connection(backend: HttpBackend, stream: trio.abc.Stream) -> None:
    backend.connections += 1
    connection_id = backend.connections
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=BLOCK)
    try:
        while True:
            event = await _next_event(conn, stream)
            if isinstance(event, h11.ConnectionClosed):
                return
            assert isinstance(event, h11.Request), event
            request = _record_of(connection_id, event)
            backend._record(request)
            if backend.websocket and _is_websocket_upgrade(request):
                await _hand_to_websocket(backend, conn, stream, event)
                return
            keep_open = await _answer(backend, conn, stream, request)
            if not keep_open or h11.MUST_CLOSE in (conn.our_state, conn.their_state):
                return
            conn.start_next_cycle()
    except PEER_ERRORS as exc:
        backend.peer_errors.append(f"connection {connection_id}: {exc!r}")
    except (ValueError, KeyError, h11.LocalProtocolError) as exc:
        # A request the test backend cannot make sense of (/status/abc ...)
        # ends this connection, never the whole backend.
        backend.peer_errors.append(f"connection {connection_id}: bad request {exc!r}")
    finally:
        await trio.aclose_forcefully(stream)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(BLOCK)))
            continue
        return event


OutEvent = h11.Request | h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage


async def _send(conn: h11.Connection, stream: trio.abc.Stream, event: OutEvent) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)


async def _read_body(
    conn: h11.Connection, stream: trio.abc.Stream, on_data: Callable[[bytes], None] | None = None
) -> None:
    """Read the request body up to its end, passing each piece to on_data."""
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.EndOfMessage):
            return
        if isinstance(event, h11.Data):
            if on_data is not None:
                on_data(event.data)
            continue
        raise h11.RemoteProtocolError(f"unexpected {event!r} in a request body")


def _record_of(connection_id: int, event: h11.Request) -> RecordedRequest:
    return RecordedRequest(
        connection=connection_id,
        method=event.method.decode("ascii"),
        target=event.target.decode("latin-1"),
        http_version=event.http_version.decode("ascii"),
        headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers),
    )


def _is_websocket_upgrade(request: RecordedRequest) -> bool:
    upgrade = [v.strip().lower() for v in ",".join(request.header_values("upgrade")).split(",")]
    return request.path.startswith("/ws") and "websocket" in upgrade


async def _answer(
    backend: HttpBackend, conn: h11.Connection, stream: trio.abc.Stream, request: RecordedRequest
) -> bool:
    """Answer one request; False when the connection must close afterwards."""
    path = request.path
    query = {k: v[-1] for k, v in parse_qs(urlsplit(request.target).query).items()}
    head_only = request.method == "HEAD"

    async def respond(status: int, body: bytes, content_type: str = "text/plain") -> None:
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-Backend", backend.name),
        ]
        await _send(conn, stream, h11.Response(status_code=status, headers=headers))
        if body and not head_only:
            await _send(conn, stream, h11.Data(data=body))
        await _send(conn, stream, h11.EndOfMessage())

    async def respond_json(document: dict[str, object]) -> None:
        await respond(200, json.dumps(document).encode(), "application/json")

    if path == "/upload":
        digest = hashlib.sha256()
        received = 0

        def take(data: bytes) -> None:
            nonlocal received
            digest.update(data)
            received += len(data)

        await _read_body(conn, stream, take)
        framing = (
            "chunked"
            if request.header("transfer-encoding")
            else "content-length"
            if request.header("content-length") is not None
            else "none"
        )
        await respond_json(
            {
                "backend": backend.name,
                "bytes": received,
                "sha256": digest.hexdigest(),
                "framing": framing,
            }
        )
        return True

    body_size = 0
    body_digest = hashlib.sha256()

    def count(data: bytes) -> None:
        nonlocal body_size
        body_size += len(data)
        body_digest.update(data)

    await _read_body(conn, stream, count)

    if path == "/":
        await respond(200, f"backend {backend.name}\n".encode())
    elif path in ("/healthz", "/status"):
        await respond(200, b"ok\n")
    elif path == "/ws-page":
        await respond(200, WS_PAGE, "text/html; charset=utf-8")
    elif path == "/echo":
        await respond_json(
            {
                "backend": backend.name,
                "connection": request.connection,
                "method": request.method,
                "target": request.target,
                "http_version": request.http_version,
                "headers": [list(h) for h in request.headers],
                "body_bytes": body_size,
                "body_sha256": body_digest.hexdigest(),
            }
        )
    elif path == "/download":
        size = int(query.get("size", "0"))
        seed = int(query.get("seed", "0"))
        chunked = query.get("chunked", "0").lower() in ("1", "true", "yes")
        headers = [("Content-Type", "application/octet-stream"), ("X-Backend", backend.name)]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", str(size)))
        await _send(conn, stream, h11.Response(status_code=200, headers=headers))
        if not head_only:
            for block in pattern_blocks(size, seed):
                await _send(conn, stream, h11.Data(data=block))
        await _send(conn, stream, h11.EndOfMessage())
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        if status in (204, 304):
            await _send(
                conn,
                stream,
                h11.Response(status_code=status, headers=[("X-Backend", backend.name)]),
            )
            await _send(conn, stream, h11.EndOfMessage())
        else:
            await respond(status, f"status {status} from {backend.name}\n".encode())
    elif path == "/slow":
        await trio.sleep(float(query.get("delay", "1")))
        await respond(200, f"slow answer from {backend.name}\n".encode())
    elif path == "/garbage":
        await stream.send_all(GARBAGE)
        return False
    elif path == "/close-mid-body":
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(CLOSE_MID_BODY_LENGTH)),
            ("X-Backend", backend.name),
        ]
        await _send(conn, stream, h11.Response(status_code=200, headers=headers))
        await _send(conn, stream, h11.Data(data=b"x" * CLOSE_MID_BODY_SENT))
        return False
    else:
        await respond(404, f"no such path on {backend.name}: {path}\n".encode())
    return True


# -- WebSocket upgrades -------------------------------------------------------


class _ReplayStream(trio.abc.Stream):
    """A stream that first returns bytes already read from `inner`."""

    def __init__(self, inner: trio.abc.Stream, already_read: bytes) -> None:
        self._inner = inner
        self._pending = already_read

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._pending:
            await trio.lowlevel.checkpoint()
            n = len(self._pending) if max_bytes is None else max_bytes
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        return await self._inner.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _request_bytes(event: h11.Request) -> bytes:
    """The request head again, as it came on the wire (h11 keeps raw names)."""
    lines = [b"%s %s HTTP/%s" % (event.method, event.target, event.http_version)]
    lines += [name + b": " + value for name, value in event.headers.raw_items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _hand_to_websocket(
    backend: HttpBackend, conn: h11.Connection, stream: trio.abc.Stream, event: h11.Request
) -> None:
    """Give the upgrade request, and every byte read past it, to trio-websocket."""
    await _read_body(conn, stream)  # a handshake has no body; reach its end
    trailing, _closed = conn.trailing_data
    replay = _ReplayStream(stream, _request_bytes(event) + trailing)
    async with trio.open_nursery() as nursery:
        request = await trio_websocket.wrap_server_stream(
            nursery,
            replay,
            max_message_size=wsecho.MAX_MESSAGE_SIZE,
            receive_buffer_size=wsecho.RECEIVE_BUFFER,
        )
        await wsecho.echo_session(request, backend.subprotocols, backend.ws)
        nursery.cancel_scope.cancel()


# -- a backend that never answers -------------------------------------------


@attrs.define(eq=False)
class SilentBackend:
    """A server that accepts and reads, and never answers."""

    host: str
    port: int
    connections: int = 0
    bytes_received: int = 0


async def serve_silent_backend(
    host: str,
    port: int = 0,
    *,
    task_status: trio.TaskStatus[SilentBackend] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on host:port, read everything, never reply."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    backend = SilentBackend(host, listening_port(listeners[0]))

    async def handler(stream: trio.abc.Stream) -> None:
        backend.connections += 1
        try:
            while data := await stream.receive_some(BLOCK):
                backend.bytes_received += len(data)
        except PEER_ERRORS:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(backend)


async def start_http_backends(
    nursery: trio.Nursery, hosts: Sequence[str], port: int, **options: Any
) -> list[HttpBackend]:
    """Start one test backend per host, all on `port`, in `nursery`.

    Each is named after its host unless `names=[...]` is given; other options
    go to serve_http_backend.
    """
    names = options.pop("names", None) or list(hosts)
    started = []
    for host, name in zip(hosts, names, strict=True):
        started.append(
            await nursery.start(
                functools.partial(serve_http_backend, host, port, name=name, **options)
            )
        )
    return started
