"""How a tunnel's bytes move while it runs (the relay phase; relay.py ends it).

Two plain TCP sockets (relay_sockets): no task of the tunnel's own. The
task that made the exchange waits, through trio, on a small epoll set
holding both sockets (level-triggered), asks it what is ready, and serves
that with non-blocking system calls: a read into SCRATCH, a buffer every
tunnel of the worker shares (only one task runs at a time, and nothing
awaits between a read and the write that follows it), then a write of the
same bytes to the other side. What the other side cannot take now is
copied out and kept as `pending`; its direction stops reading until that
is written (back-pressure). One wake-up costs one trio wait, one
epoll_wait, and a read and a write per ready side; an idle tunnel costs
its two sockets, the epoll set and a few small objects.

A TLS side (appgw's TlsStream) runs on the same epoll set: its socket is
read into the SSL object and decrypted as far as it goes (the frame
tracker sees the decrypted bytes), and bytes towards it are encrypted and
written in one system call; what its socket does not take stays queued in
the stream, and the direction stops reading until it is out. After such a
flush, and when the relay starts, a TLS source is read at once: the SSL
object may hold records that epoll cannot know of.

Anything else (relay_streams): one pump task per direction on trio's
stream API, the task that made the exchange watching the deadlines.

Both report to the Tunnel (saw_close, source_ended, eof_due, source_gone,
destination_gone, stalled) and leave when it has an `end`. The deadline of the
tunnel's `scope` is its next timer (idle timeout, drain deadline, a write
stalled for SEND_BUDGET): it is moved earlier by a drain, and checked
lazily when it passes (traffic only records the time of the last byte).
"""

from __future__ import annotations

import math
import os
import select
import socket
from typing import Protocol

import trio

from appgw.errors import STREAM_ERRORS
from appgw.worker.codec.frames import FrameTracker
from appgw.worker.io.endpoint import RECEIVE_SIZE
from appgw.worker.io.tls_stream import TlsStream

SCRATCH = bytearray(RECEIVE_SIZE)  # see the module doc: shared, never held across an await
_SCRATCH_VIEW = memoryview(SCRATCH)
_SCRATCH_LIST = [SCRATCH]


_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_BROKEN = select.EPOLLERR | select.EPOLLHUP
SEND_BUDGET = 10.0  # seconds one relayed write may take before the side counts as stalled
_OFF = -1  # a socket taken out of the epoll set (it hung up; nothing to do on it for now)


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


# -- plain TCP and TLS sockets: one task, non-blocking calls --------------------------------


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


async def relay_sockets(tunnel: Tunnel) -> None:
    up, down = tunnel.up, tunnel.down
    client = tunnel.client
    backend = tunnel.backend
    assert isinstance(client, (trio.SocketStream, TlsStream))
    assert isinstance(backend, (trio.SocketStream, TlsStream))
    cfd = up.src_fd = down.dst_fd = client.socket.fileno()
    bfd = down.src_fd = up.dst_fd = backend.socket.fileno()
    try:
        ready = select.epoll()
    except OSError:  # out of file descriptors: the pumps need none
        await relay_streams(tunnel)
        return
    try:
        ready.register(cfd, 0)
        ready.register(bfd, 0)
        cmask = bmask = 0
        for way in (up, down):
            _start(tunnel, way)
        while tunnel.end is None:
            with trio.CancelScope(deadline=tunnel.deadline()) as tunnel.scope:
                while tunnel.end is None:
                    # Read a side unless what it sent is still waiting; write
                    # a side only while something waits for it.
                    want = (0 if up.eof or up.blocked else _IN) | (_OUT if down.blocked else 0)
                    cmask = _watch(ready, cfd, cmask, want)
                    want = (0 if down.eof or down.blocked else _IN) | (_OUT if up.blocked else 0)
                    bmask = _watch(ready, bfd, bmask, want)
                    await trio.lowlevel.wait_readable(ready)
                    for fd, events in ready.poll(0):
                        if fd == cfd:
                            if _serve(tunnel, events, up, down):
                                ready.unregister(cfd)
                                cmask = _OFF
                        elif _serve(tunnel, events, down, up):
                            ready.unregister(bfd)
                            bmask = _OFF
                        if tunnel.end is not None:
                            break
            tunnel.scope = None
            if tunnel.end is None:
                tunnel.check_timers()
    finally:
        tunnel.scope = None
        ready.close()


def _watch(ready: select.epoll, fd: int, mask: int, want: int) -> int:
    """Ask epoll for `want` on `fd` (watched for `mask` now); the new mask."""
    if want == mask or (mask == _OFF and not want):
        return mask
    if mask == _OFF:
        ready.register(fd, want)
    else:
        ready.modify(fd, want)
    return want


def _start(tunnel: Tunnel, way: Direction) -> None:
    """Before the first wait: bytes held for a TLS destination become its
    records, and a TLS source is read for what its SSL object holds."""
    if tunnel.end is not None:
        return
    if way.dst_tls is not None and way.pending is not None:
        pending, way.pending = way.pending, None
        _write(tunnel, way, pending)
    if way.src_tls is not None and not way.eof and not way.blocked:
        _read(tunnel, way)


def _serve(tunnel: Tunnel, events: int, reading: Direction, writing: Direction) -> bool:
    """One socket is ready: it is the source of `reading` and the destination of `writing`.

    True: it hung up and there is nothing to do on it until the other side
    moves (epoll reports a hang-up whatever it is asked: stop watching it).
    """
    if writing.blocked and events & (_OUT | _BROKEN):
        _flush(tunnel, writing)
        if tunnel.end is not None:
            return False
    if not reading.eof and not reading.blocked:
        if events & (_IN | _BROKEN):
            _read(tunnel, reading)
    elif not writing.blocked:
        if events & select.EPOLLERR:
            # Nothing can be read or written here now, and the socket has an
            # error (a reset): the side is gone.
            tunnel.source_gone(reading, "reset the connection")
        elif events & select.EPOLLHUP:
            return True
    return False


def _read(tunnel: Tunnel, way: Direction) -> None:
    if way.src_tls is not None:
        _read_tls(tunnel, way, way.src_tls)
        return
    try:
        count = os.readv(way.src_fd, _SCRATCH_LIST)
    except BlockingIOError:
        return
    except OSError as exc:
        tunnel.source_gone(way, f"reset the connection ({exc.strerror})")
        return
    if not count:
        if tunnel.source_ended(way):
            _pass_eof(tunnel, way)
        return
    tunnel.last_activity = trio.current_time()
    data = _SCRATCH_VIEW[:count]
    tracker = way.tracker
    seen = tracker.close_seen
    tracker.feed(data)
    way.count += count
    if tracker.close_seen is not seen:
        tunnel.saw_close(way)
    if way.dst_tls is not None:
        _write(tunnel, way, data)
        return
    try:
        sent = os.write(way.dst_fd, data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        tunnel.destination_gone(way, f"reset the connection ({exc.strerror})")
        return
    if sent < count:
        way.pending = memoryview(bytes(data[sent:]))
        way.stalled_since = tunnel.last_activity
        if tunnel.scope is not None:
            tunnel.scope.deadline = min(tunnel.scope.deadline, tunnel.deadline())


def _read_tls(tunnel: Tunnel, way: Direction, tls: TlsStream) -> None:
    """Decrypt what the socket and the SSL object hold, passing it on, until
    nothing is left or the destination stops taking it."""
    while not way.blocked and tunnel.end is None:
        try:
            data = tls.read_now(RECEIVE_SIZE)
        except STREAM_ERRORS as exc:
            tunnel.source_gone(way, f"reset the connection ({exc})")
            return
        if data is None:
            return
        if not data:
            if tunnel.source_ended(way):
                _pass_eof(tunnel, way)
            return
        tunnel.last_activity = trio.current_time()
        tracker = way.tracker
        seen = tracker.close_seen
        tracker.feed(data)
        way.count += len(data)
        if tracker.close_seen is not seen:
            tunnel.saw_close(way)
        _write(tunnel, way, data)


def _write(tunnel: Tunnel, way: Direction, data: bytes | memoryview) -> None:
    """`data` towards `way`'s destination now; what it does not take waits."""
    tls = way.dst_tls
    if tls is None:
        try:
            sent = os.write(way.dst_fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            tunnel.destination_gone(way, f"reset the connection ({exc.strerror})")
            return
        if sent == len(data):
            return
        way.pending = memoryview(bytes(data[sent:]))
    else:
        try:
            tls.encrypt(data)
            if tls.flush_now():
                return
        except STREAM_ERRORS as exc:
            tunnel.destination_gone(way, f"reset the connection ({exc})")
            return
    way.stalled_since = trio.current_time()
    if tunnel.scope is not None:
        tunnel.scope.deadline = min(tunnel.scope.deadline, tunnel.deadline())


def _flush(tunnel: Tunnel, way: Direction) -> None:
    tls = way.dst_tls
    if tls is not None:
        try:
            done = tls.flush_now()
        except STREAM_ERRORS as exc:
            tunnel.destination_gone(way, f"reset the connection ({exc})")
            return
        tunnel.last_activity = trio.current_time()
        if not done:
            way.stalled_since = tunnel.last_activity
            return
        way.stalled_since = math.inf
        _unblocked(tunnel, way)
        return
    pending = way.pending
    assert pending is not None
    try:
        sent = os.write(way.dst_fd, pending)
    except BlockingIOError:
        return
    except OSError as exc:
        tunnel.destination_gone(way, f"reset the connection ({exc.strerror})")
        return
    tunnel.last_activity = trio.current_time()  # bytes moving count as traffic
    if sent < len(pending):
        way.pending = pending[sent:]
        way.stalled_since = tunnel.last_activity
        return
    way.pending = None
    way.stalled_since = math.inf
    _unblocked(tunnel, way)


def _unblocked(tunnel: Tunnel, way: Direction) -> None:
    """All `way` read is out: its EOF may follow, or a TLS source go on."""
    if way.eof:
        if not way.half_closed and tunnel.eof_due(way):
            _pass_eof(tunnel, way)
    elif way.src_tls is not None:
        _read(tunnel, way)  # records its SSL object may hold


def _pass_eof(tunnel: Tunnel, way: Direction) -> None:
    """Shut our write side towards `way`'s destination, once all it was sent is out."""
    if way.pending is not None:
        return  # after the flush
    way.half_closed = True
    dst = way.dst
    assert isinstance(dst, trio.SocketStream)
    try:
        dst.socket.shutdown(socket.SHUT_WR)
    except OSError as exc:
        tunnel.destination_gone(way, f"reset the connection ({exc.strerror})")


# -- any streams: a pump task per direction ------------------------------------------------


async def send_all(stream: trio.abc.Stream, data: bytes | bytearray | memoryview) -> None:
    """Write `data` whole, or raise SideGone (SideStalled: not within SEND_BUDGET).

    Shielded: cancelling a write half-way would cut a frame. The deadline
    bounds how long a peer that stopped reading can hold the tunnel.
    """
    with trio.CancelScope(shield=True, deadline=trio.current_time() + SEND_BUDGET) as scope:
        try:
            await stream.send_all(data)
        except STREAM_ERRORS as exc:
            raise SideGone(str(exc) or type(exc).__name__) from None
    if scope.cancelled_caught:
        raise SideStalled()


async def relay_streams(tunnel: Tunnel) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump, tunnel, tunnel.up)
        nursery.start_soon(_pump, tunnel, tunnel.down)
        while tunnel.end is None:
            with trio.CancelScope(deadline=tunnel.deadline()) as tunnel.scope:
                await trio.sleep_forever()
            tunnel.scope = None
            if tunnel.end is None:
                tunnel.check_timers()
        # A pump cancelled here is waiting to read, or at the end of a write
        # (writes are shielded): no frame is cut.
        nursery.cancel_scope.cancel()


async def _pump(tunnel: Tunnel, way: Direction) -> None:
    try:
        if way.pending is not None:
            pending, way.pending = way.pending, None
            await send_all(way.dst, pending)
        tracker = way.tracker
        while tunnel.end is None:
            try:
                data = await way.src.receive_some(RECEIVE_SIZE)
            except STREAM_ERRORS as exc:
                tunnel.source_gone(way, f"reset the connection ({exc})")
                return
            if not data:
                if tunnel.source_ended(way):
                    way.half_closed = True
                    try:
                        await way.dst.send_eof()  # type: ignore[attr-defined]
                    except STREAM_ERRORS as exc:
                        tunnel.destination_gone(way, f"reset the connection ({exc})")
                return
            tunnel.last_activity = trio.current_time()
            seen = tracker.close_seen
            tracker.feed(data)
            way.count += len(data)
            if tracker.close_seen is not seen:
                tunnel.saw_close(way)
            await send_all(way.dst, data)
    except SideStalled:
        tunnel.stalled(way, "stopped taking bytes")
    except SideGone as exc:
        tunnel.destination_gone(way, f"reset the connection ({exc})")
