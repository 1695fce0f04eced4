"""Hostile peers for hardening tests: raw backends, scripted misbehaviour, raw clients.

serve_raw_backend records exactly the bytes a backend receives, request by
request, with its own small parser that notes every framing problem (two
Content-Lengths, Content-Length beside Transfer-Encoding, an obfuscated
Transfer-Encoding ...) instead of settling it; each request is answered
with the marker it carried (`X-Desync-Marker`), so a client can tell which
exchange an answer belongs to.

serve_scripted_backend accepts connections and hands each to a script (an
async function of the stream): a backend that answers garbage, a bare 101,
headers over a limit, never reads, closes mid-body ...

open_blackhole gives a port whose connects hang: a listening socket with a
full backlog that never accepts.

ResponseReader parses responses with h11 in client role, so anything that
is not valid HTTP/1.1 shows up as an error.

run_fuzz throws mutated and random requests at a gateway over many
connections (seeded, so a run can be repeated) and checks every answer;
slowloris holds many connections that trickle a request head. Both serve
the bounded tests and scripts/fuzz. The rest are small helpers for raw
sockets, process memory and the descriptor limit.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import resource
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import attrs
import h11
import trio

from tests.support.backends import listening_port

BLOCK = 64 * 1024
MARKER = b"x-desync-marker"
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
PEER_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

Headers = list[tuple[bytes, bytes]]


class PeerClosed(Exception):
    """The peer closed before a complete message arrived."""


# -- framing as a strict backend sees it --------------------------------------


def _squash(name: bytes) -> bytes:
    return bytes(c for c in name.lower() if chr(c).isalnum())


def framing_problems(headers: Headers) -> list[str]:
    """Everything about a request's framing headers that a backend could read two ways.

    Empty for a canonical request: at most one of Content-Length (one
    header, digits only) and `Transfer-Encoding: chunked` (exactly), and no
    header whose name merely resembles either.
    """
    problems = []
    lengths = [v for n, v in headers if n.lower() == b"content-length"]
    codings = [v for n, v in headers if n.lower() == b"transfer-encoding"]
    if len(lengths) > 1:
        problems.append(f"{len(lengths)} Content-Length headers")
    if any(not v.isdigit() for v in lengths):
        problems.append(f"Content-Length not a number: {lengths!r}")
    if len(codings) > 1:
        problems.append(f"{len(codings)} Transfer-Encoding headers")
    if any(v != b"chunked" for v in codings):
        problems.append(f"Transfer-Encoding other than 'chunked': {codings!r}")
    if lengths and codings:
        problems.append("both Content-Length and Transfer-Encoding")
    for name, _value in headers:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            continue
        if _squash(name) in (b"contentlength", b"transferencoding"):
            problems.append(f"obfuscated framing header {name!r}")
        if not name or any(c not in _TOKEN for c in name):
            problems.append(f"header name is not a token: {name!r}")
    return problems


def parse_head(head: bytes) -> tuple[bytes, Headers]:
    """The start line and the (name, value) pairs of a message head (values stripped)."""
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        headers.append((name, value.strip(b" \t")))
    return lines[0], headers


def header(headers: Headers, name: bytes) -> bytes | None:
    return next((v for n, v in headers if n.lower() == name), None)


# -- reading raw bytes ----------------------------------------------------------


class RawReader:
    """Buffered reads from a stream: up to a delimiter, or an exact count."""

    def __init__(self, stream: trio.abc.ReceiveStream, buffer: bytes = b"") -> None:
        self.stream = stream
        self.buffer = bytearray(buffer)
        self.eof = False

    async def _fill(self) -> None:
        data = await self.stream.receive_some(BLOCK)
        if not data:
            self.eof = True
            raise PeerClosed(f"closed with {len(self.buffer)} bytes pending")
        self.buffer += data

    async def until(self, delimiter: bytes, limit: int = 1 << 20) -> bytes:
        """Bytes up to and including `delimiter`."""
        while (at := self.buffer.find(delimiter)) < 0:
            if len(self.buffer) > limit:
                raise PeerClosed(f"no {delimiter!r} within {limit} bytes")
            await self._fill()
        end = at + len(delimiter)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    async def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def chunked(self) -> tuple[bytes, bytes]:
        """A chunked body: (raw bytes as received, decoded payload)."""
        raw = bytearray()
        payload = bytearray()
        while True:
            line = await self.until(b"\r\n")
            raw += line
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (trailer := await self.until(b"\r\n")) != b"\r\n":
                    raw += trailer
                raw += trailer
                return bytes(raw), bytes(payload)
            data = await self.exactly(size + 2)
            raw += data
            payload += data[:-2]

    async def rest(self, timeout: float) -> bytes:
        """Whatever arrives until the peer closes or `timeout` passes."""
        data = bytearray(self.buffer)
        self.buffer.clear()
        with trio.move_on_after(timeout):
            try:
                while chunk := await self.stream.receive_some(BLOCK):
                    data += chunk
                self.eof = True
            except PEER_ERRORS:
                self.eof = True
        return bytes(data)


# -- the recording backend ------------------------------------------------------


@attrs.frozen
class RawRequest:
    """One request exactly as the backend received it."""

    connection: int  # serial number of the backend connection (1, 2, ...)
    index: int  # position on that connection (1 = first request)
    head: bytes  # request line and headers, up to and including the blank line
    body: bytes  # body bytes as framed on the wire (chunk sizes included)
    payload: bytes  # the body after de-chunking
    start_line: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    problems: tuple[str, ...]  # framing_problems of the head

    @property
    def marker(self) -> str | None:
        value = header(list(self.headers), MARKER)
        return value.decode("latin-1") if value is not None else None

    @property
    def raw(self) -> bytes:
        return self.head + self.body


@attrs.define(eq=False)
class RawBackend:
    host: str
    port: int
    connections: int = 0
    requests: list[RawRequest] = attrs.Factory(list)
    received: dict[int, bytearray] = attrs.Factory(dict)  # every byte, per connection
    errors: list[str] = attrs.Factory(list)

    def by_marker(self, marker: str) -> list[RawRequest]:
        return [r for r in self.requests if r.marker == marker]

    def later_on_same_connection(self, request: RawRequest) -> list[RawRequest]:
        """Requests that reused `request`'s backend connection after it."""
        return [
            r
            for r in self.requests
            if r.connection == request.connection and r.index > request.index
        ]


class _RecordingStream(trio.abc.ReceiveStream):
    def __init__(self, inner: trio.abc.ReceiveStream, sink: bytearray) -> None:
        self.inner = inner
        self.sink = sink

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        self.sink += data
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve_raw_backend(
    host: str,
    port: int = 0,
    *,
    task_status: trio.TaskStatus[RawBackend] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A backend that records raw requests and answers each with its marker.

    A request whose framing has problems is recorded, answered 400 with
    `Connection: close`, and its connection closed (what a careful server
    does); every other request gets 200, body = its marker, keep-alive.
    """
    [listener] = await trio.open_tcp_listeners(port, host=host)
    backend = RawBackend(host, listening_port(listener))

    async def handler(stream: trio.SocketStream) -> None:
        backend.connections += 1
        number = backend.connections
        sink = backend.received.setdefault(number, bytearray())
        reader = RawReader(_RecordingStream(stream, sink))
        index = 0
        try:
            while True:
                try:
                    head = await reader.until(b"\r\n\r\n", limit=256 * 1024)
                except PeerClosed:
                    return
                index += 1
                start, headers = parse_head(head)
                problems = framing_problems(headers)
                body = payload = b""
                if not problems:
                    length = header(headers, b"content-length")
                    if header(headers, b"transfer-encoding") is not None:
                        body, payload = await reader.chunked()
                    elif length is not None:
                        body = payload = await reader.exactly(int(length))
                request = RawRequest(
                    number, index, head, body, payload, start, tuple(headers), tuple(problems)
                )
                backend.requests.append(request)
                marker = (request.marker or "no-marker").encode("latin-1")
                if problems:
                    await stream.send_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    return
                body = b"" if start.startswith(b"HEAD ") else marker
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"X-Desync-Marker: %s\r\nContent-Length: %d\r\n\r\n%s"
                    % (marker, len(marker), body)
                )
        except PEER_ERRORS:
            pass
        except Exception as exc:  # noqa: BLE001 - a bad request must not end the server
            backend.errors.append(f"connection {number}: {exc!r}")
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, [listener])
        task_status.started(backend)


# -- scripted misbehaviour ----------------------------------------------------


@attrs.define(eq=False)
class ScriptedBackend:
    """A backend whose every connection runs `script`; what happened on them."""

    host: str
    port: int
    connections: int = 0
    heads: list[bytes] = attrs.Factory(list)  # request heads read through read_request
    bytes_received: int = 0
    peer_closed: int = 0  # connections the gateway closed (EOF or reset), seen by wait_closed
    _changed: trio.Event = attrs.Factory(trio.Event)

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[ScriptedBackend], bool], timeout: float) -> None:
        with trio.fail_after(timeout):
            while not predicate(self):
                await self._changed.wait()

    async def read_request(self, reader: RawReader) -> tuple[bytes, Headers]:
        """Read one request head (and a Content-Length body); the head and headers."""
        head = await reader.until(b"\r\n\r\n")
        self.heads.append(head)
        self.changed()
        _, headers = parse_head(head)
        length = header(headers, b"content-length")
        if length is not None and int(length) > 0:
            await reader.exactly(int(length))
        elif header(headers, b"transfer-encoding") is not None:
            await reader.chunked()
        return head, headers

    async def wait_closed(self, reader: RawReader, timeout: float) -> bool:
        """Read until the gateway closes the connection; True if it did within `timeout`."""
        closed = False
        with trio.move_on_after(timeout):
            try:
                while await reader.stream.receive_some(BLOCK):
                    pass
            except PEER_ERRORS:
                pass
            closed = True
        if closed:
            self.peer_closed += 1
            self.changed()
        return closed


Script = Callable[[ScriptedBackend, trio.SocketStream, RawReader], Awaitable[None]]


async def serve_scripted_backend(
    host: str,
    port: int,
    script: Script,
    *,
    task_status: trio.TaskStatus[ScriptedBackend] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on host:port and run `script(backend, stream, reader)` for each connection."""
    [listener] = await trio.open_tcp_listeners(port, host=host)
    backend = ScriptedBackend(host, listening_port(listener))

    async def handler(stream: trio.SocketStream) -> None:
        backend.connections += 1
        backend.changed()
        try:
            await script(backend, stream, RawReader(stream))
        except (PeerClosed, *PEER_ERRORS):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, [listener])
        task_status.started(backend)


@contextmanager
def open_blackhole(host: str) -> Iterator[int]:
    """A port on `host` where connects hang: a full backlog that is never accepted.

    The listening socket has a backlog of 0 and is filled by connections of
    our own; the kernel then drops further SYNs, so a connect neither
    succeeds nor is refused until the client gives up.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            try:
                filler.connect((host, port))
            except BlockingIOError:
                pass
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -- clients --------------------------------------------------------------------


@attrs.frozen
class ParsedResponse:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    keep_alive: bool  # the connection may carry another request

    def header(self, name: bytes) -> bytes | None:
        return header(list(self.headers), name)


class ResponseReader:
    """Responses from a raw connection, parsed (and validated) by h11 in client role.

    The requests themselves go out as raw bytes; `expect(method)` tells h11
    which method the next response answers (HEAD has no body).
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=256 * 1024)
        self.closed = False
        self.received = 0  # bytes received since the last expect()

    def expect(self, method: bytes = b"GET") -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        if not all(c in _TOKEN for c in method) or not method:
            method = b"GET"
        # The stand-in request proposes an upgrade, so that a 101 is parsed
        # (and reported) rather than refused by h11.
        headers = [("Host", "x"), ("Connection", "upgrade"), ("Upgrade", "websocket")]
        self.conn.send(h11.Request(method=method, target="/", headers=headers))
        self.conn.send(h11.EndOfMessage())
        self.received = 0

    async def _event(self) -> h11.Event:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.stream.receive_some(BLOCK)
            except PEER_ERRORS:
                data = b""
            if not data and not self.received:
                return h11.ConnectionClosed()  # closed before anything of a response
            self.received += len(data)
            self.conn.receive_data(data)

    async def read(self) -> ParsedResponse | None:
        """The next final response (or a 101); None if the connection closed before one began.

        Raises h11.RemoteProtocolError for bytes that are not a valid
        response (or only part of a head), PeerClosed for a body cut short.
        """
        while True:
            event = await self._event()
            if isinstance(event, h11.ConnectionClosed):
                self.closed = True
                return None
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:  # the rest is tunnel bytes: trailing_data
                    return ParsedResponse(101, tuple(event.headers), b"", False)
                continue
            assert isinstance(event, h11.Response), event
            break
        body = bytearray()
        while True:
            part = await self._event()
            if isinstance(part, h11.Data):
                body += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                self.closed = True
                raise PeerClosed(f"response {event.status_code} cut short after {len(body)} bytes")
        keep_alive = self.conn.their_state is h11.DONE and self.conn.our_state is h11.DONE
        return ParsedResponse(event.status_code, tuple(event.headers), bytes(body), keep_alive)

    async def closes_within(self, timeout: float) -> bool:
        """True if the peer ends the connection (EOF or reset) within `timeout`, sending nothing."""
        with trio.move_on_after(timeout):
            try:
                data = await self.stream.receive_some(BLOCK)
            except PEER_ERRORS:
                return True
            return data == b""
        return False


@asynccontextmanager
async def open_raw(host: str, port: int) -> AsyncIterator[trio.SocketStream]:
    stream = await trio.open_tcp_stream(host, port)
    try:
        yield stream
    finally:
        await trio.aclose_forcefully(stream)


async def send_quietly(stream: trio.abc.SendStream, data: bytes) -> bool:
    """Send; False if the peer had already gone."""
    try:
        await stream.send_all(data)
    except PEER_ERRORS:
        return False
    return True


async def ended_by_peer(stream: trio.abc.ReceiveStream, timeout: float) -> tuple[bool, bytes]:
    """(whether the peer closed or reset within `timeout`, the bytes read until then)."""
    data = bytearray()
    with trio.move_on_after(timeout):
        try:
            while chunk := await stream.receive_some(BLOCK):
                data += chunk
        except PEER_ERRORS:
            pass
        return True, bytes(data)
    return False, bytes(data)


# -- WebSocket handshakes ---------------------------------------------------------


def websocket_key(seed: int = 0) -> bytes:
    return base64.b64encode(bytes((seed + i) % 256 for i in range(16)))


def handshake_request(
    target: str = "/ws",
    *,
    host: str = "gateway.test",
    key: bytes | None = None,
    method: str = "GET",
    version: bytes = b"13",
    upgrade: bytes = b"websocket",
    connection: bytes = b"Upgrade",
    extra: bytes = b"",
) -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1".encode(),
        b"Host: " + host.encode(),
        b"Upgrade: " + upgrade,
        b"Connection: " + connection,
        b"Sec-WebSocket-Version: " + version,
        b"Sec-WebSocket-Key: " + (key if key is not None else websocket_key()),
    ]
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


# -- the process side -------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return 0


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# -- fuzzing ------------------------------------------------------------------------

SEED_REQUESTS = (
    b"GET /echo HTTP/1.1\r\nHost: gateway.test\r\nAccept: */*\r\n\r\n",
    b"GET /echo?a=1&b=%20 HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"PUT /echo HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"GET http://gateway.test/echo HTTP/1.1\r\nHost: other.test\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    b"GET /status/204 HTTP/1.1\r\nHost: gateway.test\r\n\r\nGET /echo HTTP/1.1\r\nHost: g\r\n\r\n",
    b"GET /echo HTTP/1.0\r\n\r\n",
)
SPLICES = (
    b"Content-Length: 0\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b" Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding : chunked\r\n",
    b"Host: \r\n",
    b"Host: a\r\nHost: b\r\n",
    b"Connection: close, upgrade\r\n",
    b"Upgrade: h2c\r\n",
    b"Expect: 100-continue\r\n",
    b"X-Long: " + b"L" * 5000 + b"\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
)
SPECIAL = b'\r\n\x00 \t:;,\x7f\x80\xff"\\/%?#'


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits of `data`: flips, inserts, deletes, splices, truncation."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(7)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[at:at] = bytes([rng.choice(SPECIAL)]) * rng.randint(1, 3)
        elif kind == 2 and out:
            del out[at : at + rng.randint(1, 8)]
        elif kind == 3:
            line = out.find(b"\r\n", at)
            where = line + 2 if line >= 0 else at
            out[where:where] = rng.choice(SPLICES)
        elif kind == 4 and out:
            piece = out[at : at + rng.randint(1, 40)]
            out[at:at] = piece * rng.randint(1, 5)
        elif kind == 5:
            del out[at:]
        else:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(out)


def fuzz_input(rng: random.Random) -> bytes:
    """A request to throw at a gateway: mostly mutated seeds, some pure noise."""
    roll = rng.random()
    if roll < 0.08:
        return rng.randbytes(rng.randint(1, 2000))
    seed = rng.choice(SEED_REQUESTS)
    if roll < 0.15:
        return seed + mutate(rng.choice(SEED_REQUESTS), rng)
    return mutate(seed, rng)


@attrs.define
class FuzzReport:
    connections: int = 0
    responses: int = 0
    statuses: dict[int, int] = attrs.Factory(dict)
    invalid: list[str] = attrs.Factory(list)  # answers that are not valid HTTP/1.1
    hung: list[bytes] = attrs.Factory(list)  # inputs after which the gateway never closed
    connect_failures: int = 0


async def fuzz_connection(
    host: str, port: int, data: bytes, rng: random.Random, report: FuzzReport, timeout: float = 8
) -> None:
    """Send `data` in random pieces, end our side, and check everything that comes back."""
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        report.connect_failures += 1
        return
    report.connections += 1
    try:
        reader = ResponseReader(stream)
        pos = 0
        while pos < len(data):
            size = rng.choice((1, 7, 64, 1500, len(data)))
            if not await send_quietly(stream, data[pos : pos + size]):
                break
            pos += size
        with contextlib.suppress(*PEER_ERRORS):
            await stream.send_eof()
        with trio.move_on_after(timeout) as scope:
            while True:
                reader.expect()
                try:
                    response = await reader.read()
                except h11.RemoteProtocolError as exc:
                    report.invalid.append(f"{exc} after {data[:120]!r}")
                    return
                except PeerClosed:
                    return  # an aborted exchange: the peer closed mid-body, visibly
                if response is None:
                    return
                report.responses += 1
                report.statuses[response.status] = report.statuses.get(response.status, 0) + 1
                if response.status == 101 or not response.keep_alive:
                    await ended_by_peer(stream, timeout)
                    return
        if scope.cancelled_caught:
            report.hung.append(data[:200])
    finally:
        await trio.aclose_forcefully(stream)


async def run_fuzz(host: str, port: int, *, seconds: float, clients: int, seed: int) -> FuzzReport:
    """`clients` concurrent connections in a loop for `seconds`, inputs from `seed`."""
    report = FuzzReport()
    deadline = trio.current_time() + seconds

    async def client(number: int) -> None:
        rng = random.Random(seed * 100003 + number)
        while trio.current_time() < deadline:
            await fuzz_connection(host, port, fuzz_input(rng), rng, report)

    async with trio.open_nursery() as nursery:
        for number in range(clients):
            nursery.start_soon(client, number)
    return report


# -- slow clients ---------------------------------------------------------------------


@attrs.define
class FloodStats:
    opened: int = 0
    failed_to_connect: int = 0
    cut_off: int = 0  # connections the gateway ended
    # The shortest time from connecting to seeing the gateway end a
    # connection (its header timeout ran out some time before).
    shortest_hold: float | None = None

    def record_cut_off(self, held: float) -> None:
        self.cut_off += 1
        if self.shortest_hold is None or held < self.shortest_hold:
            self.shortest_hold = held


async def slowloris(
    host: str,
    port: int,
    count: int,
    *,
    interval: float,
    stats: FloodStats,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`count` connections that trickle one header byte every `interval` s, until cancelled.

    Reports started once every connection was attempted; a connection the
    gateway ends is opened again, `interval` s later.
    """

    async def one(started: trio.Event | None) -> None:
        first = True
        while True:
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError:
                stats.failed_to_connect += 1
                if first and started is not None:
                    started.set()
                first = False
                await trio.sleep(interval)
                continue
            stats.opened += 1
            connected = trio.current_time()
            if first and started is not None:
                started.set()
            first = False
            try:
                await stream.send_all(b"GET /slow HTTP/1.1\r\nHost: g\r\nX-Slow: ")
                while True:
                    await trio.sleep(interval)
                    await stream.send_all(b"s")
            except PEER_ERRORS:
                stats.record_cut_off(trio.current_time() - connected)
            finally:
                await trio.aclose_forcefully(stream)
            await trio.sleep(interval)  # then back again

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            started = trio.Event()
            nursery.start_soon(one, started)
            await started.wait()
        task_status.started()
