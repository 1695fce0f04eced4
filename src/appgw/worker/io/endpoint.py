"""One side of an exchange as bytes in and out, each way with its deadline.

An `Endpoint` is what the client connection and a backend connection read
and write through. Each has a read deadline and a write deadline
(`time.monotonic()` seconds, INF for none), set per phase of an exchange
("the response head within 20 s", "the next request within 75 s") by
assigning a number: a wait that outlives its deadline raises `Expired`,
which the caller turns into what that phase's timeout means (504, 408, a
quiet close).

Plain TCP connections (no TLS) are read and written with non-blocking
system calls on their socket, as the tunnels are (tunnel_io.py), rather
than through trio's stream API, whose generality costs several
microseconds per call; and their deadlines cost no cancel scope either:
the worker's one `Timer` (timer.py) keeps them, and wakes a wait whose
deadline passed. So a phase with a timeout costs a clock read.

- `read`: other tasks run first (one schedule point, as with trio's own
  receive), then the socket is read; only a read that finds nothing waits
  for the socket to become readable. Under load, what a side waits for
  (the response just asked for, a client's next request) has usually
  arrived by then, and a wait costs more than the read: registering the
  socket with epoll, being woken, being scheduled.
- `write_now`: as much as the socket takes at once, with no await at all;
  `write` sends the rest, waiting for room until the write deadline. A
  write is thus neither a schedule point nor a cancellation point when the
  socket takes it whole: every caller reads next, and the read is both.

TLS connections (appgw's own TlsStream, tls_stream.py) are read and
written the same way: the socket is read directly and fed to the SSL
object, what one write encrypts leaves in one system call, and the waits
and their deadlines are the plain path's (the timer, no cancel scope).
Any other stream goes through trio's stream API, under a cancel scope at
the deadline for each wait.

The socket's descriptor is asked for on every call, never kept: a socket
closed in the meantime reports -1, and the call fails with EBADF instead of
reaching whatever socket took its number.
"""

from __future__ import annotations

import math
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import TYPE_CHECKING

import trio
from trio.lowlevel import (
    checkpoint,
    notify_closing,
    wait_readable,
    wait_writable,
)

from appgw.errors import STREAM_ERRORS
from appgw.worker.io.tls_stream import HandshakePending, TlsStream

if TYPE_CHECKING:
    from appgw.worker.io.timer import Timer

RECEIVE_SIZE = 64 * 1024
# A backend connection reads more at once: a response that is all there (a
# 64 KiB body with its head, say) is read and relayed in one go. Kept under
# glibc's default mmap threshold (128 KiB): a larger read would map and
# unmap its buffer on every read, small responses included.
BACKEND_RECEIVE_SIZE = 120 * 1024
INF = math.inf

Buffer = bytes | bytearray | memoryview
Waiter = Callable[[trio.socket.SocketType], Awaitable[None]]  # wait_readable, wait_writable

__all__ = [
    "BACKEND_RECEIVE_SIZE",
    "INF",
    "RECEIVE_SIZE",
    "STREAM_ERRORS",
    "Endpoint",
    "Expired",
    "TlsStream",
    "abort",
    "raw_socket",
]


class Expired(Exception):
    """A read or write outlived its deadline."""


def _trio_deadline(at: float) -> float:
    """A monotonic deadline on trio's clock."""
    return INF if at == INF else trio.current_time() + (at - monotonic())


class Endpoint:
    """A connection's bytes both ways, with a read and a write deadline."""

    __slots__ = (
        "stream",
        "sock",
        "tls",
        "raw",
        "size",
        "read_at",
        "write_at",
        "armed",
        "timer",
        "_scope",
    )

    def __init__(self, stream: trio.abc.Stream, timer: Timer, size: int = RECEIVE_SIZE) -> None:
        self.stream = stream
        self.size = size  # the most one read takes
        # Plain TCP: read and written directly; None for TLS.
        self.sock: trio.socket.SocketType | None = (
            stream.socket if type(stream) is trio.SocketStream else None
        )
        # appgw's TLS: its socket read and written directly too.
        self.tls: TlsStream | None = stream if type(stream) is TlsStream else None
        # The socket this endpoint waits on (plain or TLS); None otherwise.
        self.raw = self.sock or (self.tls.socket if self.tls is not None else None)
        self.read_at = INF
        self.write_at = INF
        self.armed = INF  # when the timer looks at this endpoint next
        self.timer = timer
        self._scope: trio.CancelScope | None = None  # a TLS wait's

    # -- deadlines -----------------------------------------------------------

    def read_within(self, seconds: float) -> None:
        self.read_by(monotonic() + seconds)

    def read_by(self, at: float) -> None:
        self.read_at = at
        self._moved(at)
        if self._scope is not None:  # a TLS read is waiting: its scope moves too
            self._scope.deadline = _trio_deadline(at)

    def write_within(self, seconds: float) -> None:
        self.write_by(monotonic() + seconds)

    def write_by(self, at: float) -> None:
        self.write_at = at
        self._moved(at)

    def no_deadlines(self) -> None:
        self.read_at = self.write_at = INF

    def _moved(self, at: float) -> None:
        if at < self.armed and self.raw is not None:
            self.timer.arm(self, at)

    def expire(self) -> None:
        """Wake this endpoint's waits (the timer: a deadline passed)."""
        sock = self.raw
        if sock is not None and sock.fileno() >= 0:
            notify_closing(sock)

    async def wait_ready(self, wait: Waiter, writing: bool) -> None:
        """Wait until the socket is ready, or raise Expired at the deadline."""
        sock = self.raw
        assert sock is not None
        while True:
            if (self.write_at if writing else self.read_at) <= monotonic():
                raise Expired("write" if writing else "read")
            try:
                await wait(sock)
                return
            except trio.ClosedResourceError:
                if sock.fileno() < 0:
                    raise
                # The timer woke every wait on this socket: a deadline passed
                # (this one, or the other direction's), or it moved.

    # -- reading -------------------------------------------------------------

    async def read(self) -> bytes:
        """Up to `size` bytes; b"" at the end of the stream.

        The other tasks run first (a schedule point, as with trio's own
        receive): by then what this side waits for (a response just asked
        for, the next request of a kept-alive connection) has usually
        arrived, and is read without registering a wait; otherwise the read
        waits for the socket to become readable.
        """
        sock = self.sock
        if sock is None:
            if self.tls is not None:
                return await self._tls_read(self.tls)
            return await self._stream_read()
        await checkpoint()
        while True:
            try:
                return os.read(sock.fileno(), self.size)
            except BlockingIOError:
                pass
            await self.wait_ready(wait_readable, False)

    async def _tls_read(self, tls: TlsStream) -> bytes:
        """As `read`, decrypting: a handshake not done yet is done on the way
        (its messages written), under the read deadline."""
        await checkpoint()
        while True:
            data = tls.read_now(self.size)
            if data is not None:
                return data
            if tls.wants_write:
                await self.wait_ready(wait_writable, False)  # (the read deadline applies)
            else:
                await self.wait_ready(wait_readable, False)

    async def _stream_read(self) -> bytes:
        with trio.CancelScope(deadline=_trio_deadline(self.read_at)) as self._scope:
            try:
                return bytes(await self.stream.receive_some(self.size))
            finally:
                self._scope = None
        raise Expired("read")

    # -- writing -------------------------------------------------------------

    def write_now(self, data: Buffer) -> int:
        """Write what a plain socket takes now, without waiting: how much it
        took (0 for TLS, which only `write_rest` writes)."""
        if self.sock is None:
            return 0
        try:
            return os.write(self.sock.fileno(), data)
        except BlockingIOError:
            return 0

    async def write_rest(self, data: Buffer) -> None:
        """Write all of `data`, waiting for room until the write deadline."""
        tls = self.tls
        if tls is not None:
            self._encrypt(tls, data)
            await self.tls_flush(tls)
            return
        if self.sock is None:
            with trio.CancelScope(deadline=_trio_deadline(self.write_at)) as scope:
                await self.stream.send_all(data)
            if scope.cancelled_caught:
                raise Expired("write")
            return
        view = memoryview(data)
        while view:
            await self.wait_ready(wait_writable, True)
            view = view[self.write_now(view) :]

    def _encrypt(self, tls: TlsStream, data: Buffer) -> None:
        try:
            tls.encrypt(data)
        except HandshakePending:  # never here: every exchange reads first
            raise trio.BrokenResourceError("TLS: a write before the handshake") from None

    async def tls_flush(self, tls: TlsStream) -> None:
        """Send what the TLS stream holds, waiting for room within the write deadline."""
        while not tls.flush_now():
            await self.wait_ready(wait_writable, True)

    async def write(self, data: Buffer, within: float, then: Buffer = b"") -> None:
        """Write all of `data`, and `then` after it in the same system call
        (a body behind its head is not copied): only a write that has to
        wait gets a deadline, `within` seconds."""
        sock = self.sock
        tls = self.tls
        if tls is not None:
            # Everything encrypted for this write leaves in one system call.
            self._encrypt(tls, data)
            if then:
                self._encrypt(tls, then)
            if tls.flush_now():
                return
            self.write_within(within)
            await self.tls_flush(tls)
            self.write_at = INF
            return
        if not then:
            sent = self.write_now(data)
            if sent == len(data):
                return
            rest: Buffer = memoryview(data)[sent:]
        elif sock is None:
            rest = bytes(data) + then  # TLS: one record
        else:
            try:
                sent = os.writev(sock.fileno(), (data, then))
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                rest = bytes(memoryview(data)[sent:]) + then
            else:
                rest = memoryview(then)[sent - len(data) :]
                if not rest:
                    return
        self.write_within(within)
        await self.write_rest(rest)
        self.write_at = INF


def raw_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    if type(stream) is TlsStream:
        return stream.socket
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


def abort(stream: trio.abc.Stream) -> None:
    """Close a connection with a reset, so the peer cannot take it for a clean end."""
    sock = raw_socket(stream)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    try:
        if sock is not None:
            sock.close()
    except OSError:
        pass
