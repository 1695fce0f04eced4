"""Framed messages between the master and its children.

Each child has one AF_UNIX stream socketpair to the master. A message is one
JSON object on one line. The master side is synchronous and never blocks
(non-blocking sends with a bounded per-child outbox); the child side is
trio. Either side tolerates a peer that died: EOF or a broken pipe ends the
channel, it does not raise into the caller's main loop.
"""

from __future__ import annotations

import errno
import json
import socket
from collections import deque
from typing import Any

import trio

Message = dict[str, Any]


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class LineDecoder:
    """Splits a byte stream into JSON messages; bad lines are dropped."""

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
                    self._buffer.clear()
                return messages
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                messages.append(message)


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
