"""A tunnel's two directions, and what moving their bytes needs of the tunnel.

Both byte movers (pump.py on an epoll set, stream_pump.py with a task per
direction) work on Directions and report to the Tunnel (tunnel.py) through
the Protocol here: saw_close, source_ended, eof_due, source_gone,
destination_gone, stalled.
"""

from __future__ import annotations

import math
from typing import Protocol

import trio

from appgw.worker.codec.frames import FrameTracker
from appgw.worker.io.tls_stream import TlsStream

SEND_BUDGET = 10.0  # seconds one relayed write may take before the side counts as stalled


class SideGone(Exception):
    """A side of the tunnel broke or stopped reading."""


class SideStalled(SideGone):
    """A side of the tunnel took no bytes for the send budget."""


class Direction:
    """One direction of a tunnel: bytes read from `src`, written to `dst`."""

    __slots__ = (
        "src",
        "dst",
        "side",
        "tracker",
        "masked",
        "eof",
        "half_closed",
        "count",
        "pending",
        "stalled_since",
        "src_fd",
        "dst_fd",
        "src_tls",
        "dst_tls",
    )

    def __init__(
        self, src: trio.abc.Stream, dst: trio.abc.Stream, side: str, *, masked: bool
    ) -> None:
        self.src = src
        self.dst = dst
        self.side = side  # who `src` is: "client" or "backend"
        self.tracker = FrameTracker(masked=masked)
        self.masked = masked  # frames we inject towards dst must be masked
        self.eof = False  # src has ended (EOF, reset)
        self.half_closed = False  # src's EOF was passed on to dst
        self.count = 0  # bytes read from src
        self.pending: memoryview | None = None  # read from src, not yet taken by dst
        self.stalled_since = math.inf  # when dst last took nothing of `pending`
        self.src_fd = -1
        self.dst_fd = -1
        self.src_tls = src if type(src) is TlsStream else None
        self.dst_tls = dst if type(dst) is TlsStream else None

    def take_over(self, rest: bytes) -> bool:
        """Bytes src sent before the tunnel began, to be written first. True: a Close among them."""
        self.tracker.feed(rest)
        self.count += len(rest)
        self.pending = memoryview(rest)
        return self.tracker.close_seen

    @property
    def passes_eof(self) -> bool:
        """Whether src's EOF can travel on as a half-close (only plain TCP has one)."""
        return isinstance(self.dst, trio.SocketStream)

    @property
    def blocked(self) -> bool:
        """Bytes read from src wait for dst to take them (as plain bytes or,
        towards TLS, as records queued in the stream)."""
        if self.pending is not None:
            return True
        dst_tls = self.dst_tls
        return dst_tls is not None and dst_tls.wants_write


def on_epoll(stream: trio.abc.Stream) -> bool:
    """Whether a side can be relayed on the epoll set (plain TCP, appgw's TLS)."""
    return type(stream) is trio.SocketStream or type(stream) is TlsStream


class Tunnel(Protocol):
    """What moving a tunnel's bytes needs of the tunnel (relay.Tunnel): its
    two directions and the decisions taken on what they see."""

    client: trio.abc.Stream
    backend: trio.abc.Stream
    up: Direction  # client -> backend
    down: Direction  # backend -> client
    end: str | None  # set once the relay phase is over
    scope: trio.CancelScope | None  # the relay phase's, deadline = next timer
    last_activity: float

    def deadline(self) -> float: ...
    def check_timers(self) -> None: ...
    def saw_close(self, way: Direction) -> None: ...
    def source_ended(self, way: Direction) -> bool: ...
    def eof_due(self, way: Direction) -> bool: ...
    def source_gone(self, way: Direction, what: str) -> None: ...
    def destination_gone(self, way: Direction, what: str) -> None: ...
    def stalled(self, way: Direction, what: str) -> None: ...


