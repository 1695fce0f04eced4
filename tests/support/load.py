"""Load and wire-level tools for lifecycle tests: reloads, drains, upgrades.

- HttpLoad: a few keep-alive HTTP clients looping requests, counting every
  failure and every refused connection, and recording which backend served
  each request and when. A response with `Connection: close` (the gateway
  draining) makes the client reconnect; that is not a failure.
- WsLoad: many trio-websocket clients exchanging messages; each session
  records when it opened, when and how it closed (the close code), and any
  lost or wrong echo. A closed session reconnects until the load stops.
- WebSocket frames on the wire: encode_frame, FrameParser, a raw client
  (open_raw_ws) and a raw backend (serve_raw_ws_backend) that record every
  byte, so tests can check that what arrives parses as whole frames.
- The gateway's command line and files: reload(), read_pid(), workers_of();
  from its log, which workers a reload retired and when each began to
  drain (wait_for_draining), the events reload tests wait for.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
import trio_websocket

from tests.support.clients import HttpClient, open_ws
from tests.support.gateway import (
    CliResult,
    GatewayProcess,
    child_pids,
    listening_inodes,
    run_cli,
    socket_inodes_of,
    toml_table,
)
from tests.support.waiting import wait_until

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REQUEST_BUDGET = 10.0  # seconds one request (or echo) may take before it counts as failed

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


# -- the gateway through its command line and files ----------------------------


async def reload(gw: GatewayProcess, timeout: float = 30) -> CliResult:
    """`appgw reload --pid-file ...` on `gw`; waits for the outcome."""
    return await run_cli(
        "reload",
        "--pid-file",
        str(gw.pid_file),
        "--timeout",
        str(timeout),
        cwd=gw.log_path.parent,
        timeout=timeout + 10,
    )


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def workers_of(master: int, host: str, port: int) -> list[int]:
    """Children of `master` holding the listening socket host:port (the workers).

    The prober holds no listening socket, so it is left out.
    """
    inodes = listening_inodes(host, port)
    return [pid for pid in child_pids(master) if socket_inodes_of(pid) & inodes]


_RETIRING = re.compile(r"retiring worker (\d+) \(generation (\d+)\)")
_STARTED = re.compile(r"worker (\d+) started \(generation (\d+)\)")
_ENDED = re.compile(r"worker (\d+) (?:exited|died unexpectedly)")


def retired_workers(log: str, start: int = 0) -> list[int]:
    """Workers the master logged as retired after offset `start` of its log."""
    return [int(m.group(1)) for m in _RETIRING.finditer(log, start)]


def generation_workers(log: str, generation: int) -> list[int]:
    """Workers of `generation` the master started and has not seen exit."""
    ended = {int(m.group(1)) for m in _ENDED.finditer(log)}
    return [
        int(m.group(1))
        for m in _STARTED.finditer(log)
        if int(m.group(2)) == generation and int(m.group(1)) not in ended
    ]


def draining_workers(log: str, start: int = 0) -> set[int]:
    """Workers that logged the start of their drain after offset `start`."""
    return {int(m.group(1)) for m in re.finditer(r"\[(\d+)\] INFO draining:", log[start:])}


async def wait_for_draining(
    gw: GatewayProcess, pids: Sequence[int], start: int, timeout: float
) -> float:
    """Wait until every worker of `pids` has logged that it drains (after log
    offset `start`); the trio time that was seen.

    A worker logs this once it has stopped accepting and marked its
    connections to close: from then on it takes no new request on a
    keep-alive connection but the one already on its way, and its tunnels
    have their drain deadline.
    """
    wanted = set(pids)
    await wait_until(
        lambda: wanted <= draining_workers(gw.log(), start),
        timeout,
        lambda: f"workers {sorted(wanted - draining_workers(gw.log(), start))} drain",
    )
    return trio.current_time()


def listener_toml(
    name: str,
    port: int,
    *,
    pool: str = "web",
    setting: str = "web",
    priority: int = 200,
    address: str = "127.0.0.1",
) -> str:
    """An extra http listener `name` on address:port with a basic rule to pool/setting."""
    return (
        toml_table(f"listeners.{name}", {"protocol": "http", "address": address, "port": port})
        + "\n"
        + toml_table(
            f"rules.{name}",
            {"listener": name, "pool": pool, "setting": setting, "priority": priority},
        )
    )


# -- HTTP keep-alive load -----------------------------------------------------------


@attrs.frozen
class Served:
    """One request the load made."""

    started: float  # trio.current_time()
    finished: float
    status: int
    backend: str | None  # X-Backend
    closed: bool  # the response said Connection: close
    connection: int = 0  # which of the load's connections (numbered from 1) carried it


@attrs.define(eq=False)
class HttpLoad:
    """Keep-alive clients looping GETs; see the module doc."""

    host: str
    port: int
    target: str = "/"
    pause: float = 0.01  # between two requests of one client
    served: list[Served] = attrs.Factory(list)
    failures: list[str] = attrs.Factory(list)
    refused: list[str] = attrs.Factory(list)
    connections: int = 0
    _stopping: bool = False
    _done: trio.Event = attrs.Factory(trio.Event)
    _running: int = 0

    def stop(self) -> None:
        """Stop after the requests in flight (wait with `await load.stopped()`)."""
        self._stopping = True

    async def stopped(self) -> None:
        self._stopping = True
        if self._running:
            await self._done.wait()

    def backends_between(self, start: float, end: float) -> set[str | None]:
        """Backends of the requests that started in [start, end]."""
        return {s.backend for s in self.served if start <= s.started and s.started <= end}

    async def run(self, clients: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run `clients` client loops until stop(); started once each has one answer."""
        self._running = clients
        first = [trio.Event() for _ in range(clients)]
        async with trio.open_nursery() as nursery:
            for n in range(clients):
                nursery.start_soon(self._client, n, first[n])
            for event in first:
                await event.wait()
            task_status.started(self)
        self._done.set()

    async def _client(self, n: int, first: trio.Event) -> None:
        client: HttpClient | None = None
        connection = 0
        try:
            while not self._stopping:
                if client is None:
                    try:
                        client = await HttpClient.open(self.host, self.port)
                        self.connections += 1
                        connection = self.connections
                    except OSError as exc:
                        self.refused.append(f"client {n}: connect: {exc!r}")
                        await trio.sleep(0.05)
                        continue
                started = trio.current_time()
                try:
                    with trio.fail_after(REQUEST_BUDGET):
                        response = await client.get(self.target)
                except Exception as exc:  # noqa: BLE001 - every failure counts, whatever it is
                    self.failures.append(
                        f"client {n} at {started:.3f}: {type(exc).__name__}: {exc}"
                    )
                    await client.aclose()
                    client = None
                    continue
                closed = (response.header("connection") or "").lower() == "close"
                self.served.append(
                    Served(
                        started,
                        trio.current_time(),
                        response.status,
                        response.header("x-backend"),
                        closed,
                        connection,
                    )
                )
                first.set()
                if response.status != 200:
                    self.failures.append(f"client {n} at {started:.3f}: status {response.status}")
                if closed or not client.reusable:
                    await client.aclose()
                    client = None
                await trio.sleep(self.pause)
        finally:
            first.set()
            if client is not None:
                await client.aclose()


# -- WebSocket load ---------------------------------------------------------------------


@attrs.define(eq=False)
class WsSession:
    """One WebSocket connection of a WsLoad."""

    client: int
    opened: float  # the handshake done
    connecting: float = 0.0  # the handshake begun (the gateway accepted it in between)
    closed: float | None = None
    code: int | None = None  # the close code received (1006: no Close frame)
    echoes: int = 0
    errors: list[str] = attrs.Factory(list)


@attrs.define(eq=False)
class WsLoad:
    """WebSocket clients exchanging messages through the gateway; see the module doc."""

    url: str
    interval: float = 0.5  # between two messages of one client
    sessions: list[WsSession] = attrs.Factory(list)
    refused: list[str] = attrs.Factory(list)
    _stopping: bool = False

    def stop(self) -> None:
        """Open no new session; the open ones go on until they are closed."""
        self._stopping = True

    def open_sessions(self) -> list[WsSession]:
        return [s for s in self.sessions if s.closed is None]

    async def run(self, clients: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run `clients` clients until stop() and their last sessions close.

        Started once every client has its first session open.
        """
        opened = [trio.Event() for _ in range(clients)]
        async with trio.open_nursery() as nursery:
            for n in range(clients):
                nursery.start_soon(self._client, n, opened[n])
            for event in opened:
                await event.wait()
            task_status.started(self)

    async def _client(self, n: int, opened: trio.Event) -> None:
        try:
            while not self._stopping:
                connecting = trio.current_time()
                try:
                    async with open_ws(f"{self.url}/{n}") as ws:
                        session = WsSession(n, trio.current_time(), connecting)
                        self.sessions.append(session)
                        opened.set()
                        await self._exchange(ws, session)
                except (OSError, trio_websocket.HandshakeError) as exc:
                    self.refused.append(f"client {n}: {type(exc).__name__}: {exc}")
                    await trio.sleep(0.05)
        finally:
            opened.set()

    async def _exchange(self, ws: trio_websocket.WebSocketConnection, session: WsSession) -> None:
        count = 0
        try:
            while True:
                message = f"client {session.client} message {count}"
                await ws.send_message(message)
                with trio.move_on_after(REQUEST_BUDGET) as waiting:
                    echo = await ws.get_message()
                if waiting.cancelled_caught:
                    session.errors.append(f"no echo of {message!r} in {REQUEST_BUDGET} s")
                    return
                if echo != message:
                    session.errors.append(f"echo {echo!r} for {message!r}")
                session.echoes += 1
                count += 1
                # The pause between two messages listens too, so a Close is
                # seen (and `closed` noted) as soon as it arrives.
                with trio.move_on_after(self.interval):
                    extra = await ws.get_message()
                    session.errors.append(f"unexpected message {extra!r}")
        except trio_websocket.ConnectionClosed as exc:
            session.closed = trio.current_time()
            session.code = exc.reason.code if exc.reason is not None else None
        finally:
            if session.closed is None:
                session.closed = trio.current_time()


# -- WebSocket frames on the wire ----------------------------------------------------


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bool = False
) -> bytes:
    """One frame; masked (with a random key) when sent by a client."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def frame_header(opcode: int, length: int, *, fin: bool = True, key: bytes | None = None) -> bytes:
    """Just the header of a frame of `length` payload bytes (masked with `key` if given)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if key is not None else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    return head + (key or b"")


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR `data` with the 4-byte `key` (masking and unmasking are the same)."""
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(data), "big"
    )


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


@attrs.frozen
class Frame:
    fin: bool
    opcode: int
    masked: bool
    payload: bytes  # unmasked

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])


class FrameParser:
    """Whole frames out of a byte stream, fed in any pieces."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.frames: list[Frame] = []

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; the frames they completed."""
        self.buffer += data
        done: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                break
            done.append(frame)
        self.frames += done
        return done

    @property
    def rest(self) -> bytes:
        """Bytes of an incomplete frame at the end."""
        return bytes(self.buffer)

    def _next(self) -> Frame | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        length = b1 & 0x7F
        pos = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack("!Q", buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos : pos + length])
        del buf[: pos + length]
        if masked:
            payload = apply_mask(payload, key)
        return Frame(fin=bool(b0 & 0x80), opcode=b0 & 0x0F, masked=masked, payload=payload)


def parse_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """Every whole frame in `data`, and the bytes left over."""
    parser = FrameParser()
    parser.feed(data)
    return parser.frames, parser.rest


def websocket_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


# -- a raw WebSocket client -----------------------------------------------------------


@attrs.define(eq=False)
class RawWebSocket:
    """A WebSocket client on a bare TCP stream: sends bytes as given, keeps all it got."""

    stream: trio.SocketStream
    received: bytearray = attrs.Factory(bytearray)  # every byte after the 101 head
    eof: bool = False
    reset: bool = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive_some(self) -> bytes:
        """Some bytes (b"" at the end); they are also kept in `received`."""
        if self.eof:
            return b""
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.reset = True
            data = b""
        if not data:
            self.eof = True
        self.received += data
        return data

    def frames(self) -> tuple[list[Frame], bytes]:
        return parse_frames(bytes(self.received))

    async def receive_until(self, done: Callable[[list[Frame]], bool]) -> list[Frame]:
        """Read until `done(frames so far)` or the end of the connection."""
        while True:
            frames, _rest = self.frames()
            if done(frames) or self.eof:
                return frames
            await self.receive_some()

    async def receive_until_eof(self) -> None:
        while not self.eof:
            await self.receive_some()


@asynccontextmanager
async def open_raw_ws(host: str, port: int, resource: str = "/ws") -> AsyncIterator[RawWebSocket]:
    """A handshake through `host:port`, then the bare stream; fails unless it gets 101."""
    stream = await trio.open_tcp_stream(host, port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            (
                f"GET {resource} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = bytearray()
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError(f"closed during the handshake: {bytes(head)!r}")
            head += data
        end = head.index(b"\r\n\r\n") + 4
        lines = bytes(head[:end]).decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {lines[0]!r}")
        accept = next(
            (
                line.split(":", 1)[1].strip()
                for line in lines
                if line.lower().startswith("sec-websocket-accept:")
            ),
            None,
        )
        if accept != websocket_accept(key):
            raise ConnectionError(f"wrong Sec-WebSocket-Accept {accept!r}")
        ws = RawWebSocket(stream)
        ws.received += head[end:]
        yield ws
    finally:
        await trio.aclose_forcefully(stream)


# -- a raw WebSocket backend ---------------------------------------------------------------


@attrs.define(eq=False)
class RawPeer:
    """The backend's side of one WebSocket connection.

    The session reads it (receive_some, receive_until); a test watches it
    from another task with wait_for, which reads nothing itself.
    """

    stream: trio.SocketStream
    path: str
    received: bytearray = attrs.Factory(bytearray)
    eof: bool = False
    _changed: trio.Event = attrs.Factory(trio.Event)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive_some(self) -> bytes:
        if self.eof:
            return b""
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.eof = True
        self.received += data
        self._changed.set()
        self._changed = trio.Event()
        return data

    def frames(self) -> tuple[list[Frame], bytes]:
        return parse_frames(bytes(self.received))

    async def receive_until(self, done: Callable[[list[Frame]], bool]) -> list[Frame]:
        """Read until `done(frames so far)` or the end of the connection."""
        while True:
            frames, _rest = self.frames()
            if done(frames) or self.eof:
                return frames
            await self.receive_some()

    async def wait_for(self, done: Callable[[RawPeer], bool]) -> list[Frame]:
        """Wait (reading nothing) until `done(self)` or the end; the frames so far."""
        while not done(self) and not self.eof:
            await self._changed.wait()
        return self.frames()[0]


RawSession = Callable[[RawPeer], Awaitable[None]]


@attrs.define(eq=False)
class RawWsBackend:
    host: str
    port: int
    peers: list[RawPeer] = attrs.Factory(list)
    _changed: trio.Event = attrs.Factory(trio.Event)

    async def wait_for_peer(self, count: int = 1) -> RawPeer:
        while len(self.peers) < count:
            await self._changed.wait()
        return self.peers[count - 1]

    def _add(self, peer: RawPeer) -> None:
        self.peers.append(peer)
        self._changed.set()
        self._changed = trio.Event()


async def serve_raw_ws_backend(
    host: str,
    port: int,
    session: RawSession,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept WebSocket handshakes on host:port and run `session(peer)` on each.

    Any other request gets a plain 200 (health probes). The peer keeps every
    byte it read after the handshake; the connection closes when `session`
    returns.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    backend = RawWsBackend(host, port)

    async def handler(stream: trio.SocketStream) -> None:
        try:
            head = bytearray()
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(65536)
                if not data:
                    return
                head += data
            end = head.index(b"\r\n\r\n") + 4
            lines = bytes(head[:end]).decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
                for line in lines[1:]
                if ":" in line
            }
            key = headers.get("sec-websocket-key")
            if key is None:
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                )
                return
            await stream.send_all(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {websocket_accept(key)}\r\n\r\n"
                ).encode()
            )
            peer = RawPeer(stream, path)
            peer.received += head[end:]
            backend._add(peer)
            await session(peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(backend)


def describe_frames(frames: Sequence[Frame]) -> str:
    """A short listing for assertion messages."""
    return ", ".join(
        f"{'close' if f.opcode == OP_CLOSE else hex(f.opcode)}"
        f"{'' if f.fin else '(more)'}[{len(f.payload)}]"
        + (f"={f.close_code}" if f.opcode == OP_CLOSE else "")
        for f in frames
    )
