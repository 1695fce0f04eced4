"""Messages between the master and its children, and the channels that carry them.

Each child has one AF_UNIX stream socketpair to the master. A message is a
typed value (an attrs frozen class below); on the wire it is one JSON object
on one line, its kind under "type":

    {"type":"ready"}                      child -> master: serving
    {"type":"heartbeat","metrics":{...}}  worker -> master, every second
    {"type":"health","snapshot":{...}}    prober -> master -> workers
    {"type":"boot-error","error":"..."}   child -> master: it cannot start

encode() and decode() are the only places that know this format. A line
that is not a valid message (bad JSON, an unknown type, a missing or
mistyped field) is dropped and logged, never raised into a loop.

The master side is synchronous and never blocks (non-blocking sends with a
bounded per-child outbox); the child side is trio. Either side tolerates a
peer that died: EOF or a broken pipe ends the channel, it does not raise
into the caller's main loop.
"""

from __future__ import annotations

import errno
import json
import socket
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import trio
from attrs import frozen
from attrs.validators import deep_mapping, instance_of

from appgw import logs

log = logs.log

_JSON_OBJECT = deep_mapping(key_validator=instance_of(str), mapping_validator=instance_of(dict))


@frozen
class Ready:
    """A child serves: a worker accepts, the prober probes."""

    TYPE: ClassVar[str] = "ready"


@frozen
class Heartbeat:
    """A worker's event loop is alive; its counters so far."""

    TYPE: ClassVar[str] = "heartbeat"
    metrics: Mapping[str, Any] = attrs.field(factory=dict, validator=_JSON_OBJECT)


@frozen
class Health:
    """The prober's snapshot of every server's health (HealthTable.snapshot)."""

    TYPE: ClassVar[str] = "health"
    snapshot: Mapping[str, Any] = attrs.field(validator=_JSON_OBJECT)


@frozen
class BootFailure:
    """A child cannot start, and why (it exits with BOOT_ERROR next)."""

    TYPE: ClassVar[str] = "boot-error"
    error: str = attrs.field(validator=instance_of(str))


Message = Ready | Heartbeat | Health | BootFailure

_KINDS: dict[str, Any] = {kind.TYPE: kind for kind in (Ready, Heartbeat, Health, BootFailure)}


def encode(message: Message) -> bytes:
    """One line of JSON, newline included."""
    fields = attrs.asdict(message, recurse=False)
    return json.dumps({"type": message.TYPE, **fields}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Message:
    """The message on one line (without its newline); ValueError if it is none."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    name = data.pop("type", None)
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError("unknown message type")
    try:
        return kind(**data)
    except TypeError as exc:  # a missing or unexpected field, or a mistyped one
        raise ValueError(str(exc)) from None


class LineDecoder:
    """Splits a byte stream into messages; lines that are none are dropped."""

    def __init__(self, max_line: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self._max_line:
                    log.warning("dropping an IPC line longer than %d bytes", self._max_line)
                    self._buffer.clear()
                return messages
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            try:
                messages.append(decode(line))
            except ValueError as exc:
                log.warning("dropping a malformed IPC message (%s): %.200r", exc, line)


class MasterChannel:
    """The master's end of a child's socketpair: non-blocking, never waits."""

    # A child that stops reading must not make the master hoard memory: beyond
    # this many pending messages the oldest are dropped. Health snapshots are
    # superseded by the next one anyway, and commands are resent by the
    # master's loop while they still apply.
    MAX_PENDING = 64

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._outbox: deque[bytes] = deque()
        self._partial = b""
        self._decoder = LineDecoder()
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: Message) -> None:
        if self.closed:
            return
        self._outbox.append(encode(message))
        while len(self._outbox) > self.MAX_PENDING:
            self._outbox.popleft()
        self.flush()

    @property
    def wants_write(self) -> bool:
        return not self.closed and bool(self._partial or self._outbox)

    def flush(self) -> None:
        while not self.closed and (self._partial or self._outbox):
            if not self._partial:
                self._partial = self._outbox.popleft()
            try:
                sent = self.sock.send(self._partial)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            self._partial = self._partial[sent:]

    def receive(self) -> list[Message] | None:
        """Messages that arrived; None once the child's end is closed."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return []
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return []
            data = b""
        if not data:
            self.close()
            return None
        return self._decoder.feed(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class ChildChannel:
    """A child's end of its socketpair, for use inside trio."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._decoder = LineDecoder()
        self._send_lock = trio.Lock()

    async def send(self, message: Message, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        """Send one message; False if the master is gone or not reading."""
        with trio.move_on_after(timeout):
            async with self._send_lock:
                try:
                    await self._stream.send_all(encode(message))
                    return True
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return False
        return False

    async def receive(self) -> list[Message] | None:
        """The next batch of messages; None once the master's end is closed."""
        while True:
            try:
                data = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            messages = self._decoder.feed(data)
            if messages:
                return messages

    async def aclose(self) -> None:
        await self._stream.aclose()


def socketpair() -> tuple[socket.socket, socket.socket]:
    """(master end, child end), both inheritable across fork only by design."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
