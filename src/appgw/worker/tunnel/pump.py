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

Anything else (relay_streams, stream_pump.py): one pump task per direction on
trio's stream API, the task that made the exchange watching the deadlines.

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

import trio

from appgw.errors import STREAM_ERRORS
from appgw.worker.io.endpoint import RECEIVE_SIZE
from appgw.worker.io.tls_stream import TlsStream
from appgw.worker.tunnel.direction import Direction, Tunnel
from appgw.worker.tunnel.stream_pump import relay_streams

SCRATCH = bytearray(RECEIVE_SIZE)  # see the module doc: shared, never held across an await
_SCRATCH_VIEW = memoryview(SCRATCH)
_SCRATCH_LIST = [SCRATCH]


_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_BROKEN = select.EPOLLERR | select.EPOLLHUP
_OFF = -1  # a socket taken out of the epoll set (it hung up; nothing to do on it for now)
# -- plain TCP and TLS sockets: one task, non-blocking calls --------------------------------


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
