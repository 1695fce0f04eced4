"""Tunnels: the byte relay after `101 Switching Protocols`.

Bytes move untouched both ways, with back-pressure (a side that does not
take what it is sent stops the reads on the other side). A FrameTracker per
direction reads WebSocket frame headers only, so the tunnel always knows
whether a direction stands at a frame boundary.

How bytes move (tunnel_io.py). Between two plain TCP sockets, the usual
case, a tunnel has no task of its own: it runs in the task that made the
exchange, which waits on a small epoll set holding both sockets, reads what
is ready into a scratch buffer the worker shares, and writes it on at once.
Only bytes a peer cannot take yet are kept, until it can. An idle tunnel
holds no buffer and no task beyond that one. Where TLS is involved, two
pump tasks move the bytes through trio's stream API instead.

How a tunnel ends:
- The close handshake: each side's Close frame is relayed; once both have
  passed and a side ends its connection, the tunnel closes both. A side
  that ends its connection after its own Close frame has its half-close
  passed on (plain TCP) so the other can still answer.
- A side that goes away without a Close frame (EOF, reset, a write that
  fails or stalls for SEND_BUDGET): the other side gets a Close frame at the
  frame boundary of that direction, 1014 (Bad Gateway) towards the client
  when the backend went, 1001 (Going Away) towards the backend when the
  client went. If the dead side stopped in the middle of a frame, the rest
  of that frame will never come and nothing the gateway could add (padding,
  a Close inside the frame) would parse as what the peer was sent: the
  other connection is then closed without a Close frame, which its
  WebSocket stack reports as 1006, an abnormal closure, and that is the
  truth. The log line says which it was.
- The gateway ends it (the idle timeout, the setting's request timeout with
  no byte either way; or a drain deadline): both sides get a Close with
  1001, each at a frame boundary. A direction caught mid-frame relays up to
  that frame's end (within FINISH_FRAME_BUDGET) and no further. A write in
  progress always completes (sends are shielded, with a deadline), so the
  gateway never cuts a frame.
In every case each side that got a Close has a moment (CLOSE_REPLY_BUDGET)
to answer, then both connections close, and one line is logged with how
long the tunnel lived, the bytes each way, who closed it and with which
code. relay_tunnel returns the same as a TunnelEnd value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import trio

from appgw import logs
from appgw.websocket import close_frame
from appgw.worker.streams import RECEIVE_SIZE, abort
from appgw.worker.tunnel_io import (
    STREAM_ERRORS,
    Direction,
    SideGone,
    on_epoll,
    relay_sockets,
    relay_streams,
)

if TYPE_CHECKING:
    from appgw.worker.main import Worker

# A side gone, however it shows.
_SIDE_ERRORS: tuple[type[Exception], ...] = (SideGone, *STREAM_ERRORS)

log = logs.log

SEND_BUDGET = 10.0  # seconds one relayed write may take before the side counts as dead
FINISH_FRAME_BUDGET = 5.0  # seconds to relay the rest of a frame caught mid-way
CLOSE_REPLY_BUDGET = 1.0  # seconds each side has to answer our Close
GOING_AWAY = 1001
BAD_GATEWAY = 1014  # IANA WebSocket close code registry: the upstream side failed

CLIENT = "client"
BACKEND = "backend"
GATEWAY = "gateway"

# How the relay phase ended (Tunnel.end).
_DONE = "done"  # both sides finished the WebSocket way
_GONE = "gone"  # a side went away without a Close frame
_ENDED = "ended"  # the gateway ends it: idle timeout or drain deadline


@attrs.frozen
class TunnelEnd:
    """How a tunnel ended, for the access log and the metrics."""

    duration: float  # seconds from the 101 to both connections closed
    client_bytes: int  # bytes the client sent through the tunnel
    backend_bytes: int  # bytes the backend sent through the tunnel
    closed_by: str  # "client", "backend" or "gateway": who ended the session first
    code: int | None  # the first Close frame's status code (whoever sent it), None if none
    reason: str  # what happened, in words


class Tunnel:
    __slots__ = (
        "client",
        "backend",
        "up",
        "down",
        "idle_timeout",
        "drain_timeout",
        "label",
        "started",
        "last_activity",
        "drain_deadline",
        "scope",
        "end",
        "reason",
        "gone",
        "closed_by",
        "code",
    )

    def __init__(
        self,
        client: trio.abc.Stream,
        backend: trio.abc.Stream,
        idle_timeout: float,
        drain_timeout: float,
        label: str,
    ) -> None:
        self.client = client
        self.backend = backend
        self.up = Direction(client, backend, CLIENT, masked=True)
        self.down = Direction(backend, client, BACKEND, masked=False)
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self.label = label
        self.started = self.last_activity = trio.current_time()
        self.drain_deadline = math.inf
        self.scope: trio.CancelScope | None = None  # the relay phase's, deadline = next timer
        self.end: str | None = None  # _DONE, _GONE or _ENDED once the relay phase is over
        self.reason = ""
        self.gone: Direction | None = None  # for _GONE: the direction whose source went
        self.closed_by: str | None = None
        self.code: int | None = None

    # -- told from outside -------------------------------------------------------

    def drain(self, started: float) -> None:
        """The worker is draining: end this tunnel at its drain deadline."""
        self.drain_deadline = min(self.drain_deadline, started + self.drain_timeout)
        self._reschedule()

    def close_now(self) -> None:
        """End this tunnel now, cleanly (the drain deadline has come)."""
        self.drain_deadline = trio.current_time()
        self._reschedule()

    # -- what the relay loops report ----------------------------------------------

    def other(self, way: Direction) -> Direction:
        return self.down if way is self.up else self.up

    def saw_close(self, way: Direction) -> None:
        """`way`'s tracker has just seen its first Close frame."""
        if self.closed_by is None:
            self.closed_by = way.side
        if self.code is None:
            self.code = way.tracker.close_code

    def source_ended(self, way: Direction) -> bool:
        """`way`'s source sent EOF. True: pass it on to the destination now."""
        way.eof = True
        other = self.other(way)
        tracker = way.tracker
        if not (tracker.close_seen or tracker.broken):
            self.source_gone(way, "closed the connection without a Close frame")
            return False
        if other.eof or (tracker.close_seen and other.tracker.close_seen) or not way.passes_eof:
            self._finish(_DONE, "close handshake" if tracker.close_seen else "both sides ended")
            return False
        if self.closed_by is None:
            self.closed_by = way.side
        return True

    def source_gone(self, way: Direction, what: str) -> None:
        """`way`'s source is gone: it ended, broke, or stopped taking bytes."""
        way.eof = True
        if self.end is not None:
            return
        if way.tracker.close_seen:  # it had said goodbye: a normal end
            self._finish(_DONE, "close handshake" if self.other(way).tracker.close_seen else what)
            return
        if self.closed_by is None:
            self.closed_by = way.side
        self.gone = way
        self._finish(_GONE, f"{way.side} {what}")

    def destination_gone(self, way: Direction, what: str) -> None:
        self.source_gone(self.other(way), what)

    def check_timers(self) -> None:
        """The relay phase's deadline passed: end the tunnel, or move the deadline."""
        now = trio.current_time()
        if now >= self.drain_deadline:
            self._finish(_ENDED, "drain deadline", by=GATEWAY)
        elif now >= self.last_activity + self.idle_timeout:
            self._finish(_ENDED, f"idle for {self.idle_timeout:g}s", by=GATEWAY)
        else:
            for way in (self.up, self.down):
                if way.pending is not None and now >= way.stalled_since + SEND_BUDGET:
                    self.destination_gone(way, f"took no bytes for {SEND_BUDGET:g}s")
                    return

    def deadline(self) -> float:
        return min(
            self.last_activity + self.idle_timeout,
            self.drain_deadline,
            self.up.stalled_since + SEND_BUDGET,
            self.down.stalled_since + SEND_BUDGET,
        )

    def _reschedule(self) -> None:
        if self.scope is not None:
            self.scope.deadline = min(self.scope.deadline, self.deadline())

    def _finish(self, end: str, reason: str, *, by: str | None = None) -> None:
        if self.end is not None:
            return
        self.end = end
        self.reason = reason
        if self.closed_by is None:
            self.closed_by = by
        if self.scope is not None:
            self.scope.cancel()

    # -- the whole tunnel -----------------------------------------------------------

    def take_over(self, client_rest: bytes, backend_rest: bytes) -> None:
        """Bytes either side sent right behind the handshake: they are relayed first."""
        for way, rest in ((self.up, client_rest), (self.down, backend_rest)):
            if rest:
                way.tracker.feed(rest)
                way.count += len(rest)
                way.pending = memoryview(rest)
                if way.tracker.close_seen:
                    self.saw_close(way)

    async def run(self, client_rest: bytes = b"", backend_rest: bytes = b"") -> TunnelEnd:
        self.take_over(client_rest, backend_rest)
        client_rest = backend_rest = b""  # held by the directions until written, no longer
        try:
            try:
                if on_epoll(self.client) and on_epoll(self.backend):
                    await relay_sockets(self)
                else:
                    await relay_streams(self)
                await self._close()
            except* _SIDE_ERRORS:
                pass  # a side broke while closing; both connections are closed below
        finally:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 1):
                await _close_stream(self.client)
                await _close_stream(self.backend)
        return self._result()

    async def _close(self) -> None:
        """After the relay phase: Close frames as the ending asks, then wait for answers."""
        if self.end == _ENDED:
            async with trio.open_nursery() as nursery:
                for way in (self.up, self.down):
                    nursery.start_soon(self._send_close, way, GOING_AWAY)
            with trio.move_on_after(CLOSE_REPLY_BUDGET):
                async with trio.open_nursery() as nursery:
                    for way in (self.up, self.down):
                        nursery.start_soon(self._await_close, way)
        elif self.end == _GONE and self.gone is not None:
            way = self.gone
            code = BAD_GATEWAY if way.side == BACKEND else GOING_AWAY
            towards = self.other(way).side
            if await self._send_close(way, code):
                self.reason += f"; sent {code} to the {towards}"
                with trio.move_on_after(CLOSE_REPLY_BUDGET):
                    await self._await_close(self.other(way))
            elif way.tracker.broken:
                self.reason += f"; not WebSocket framing, no Close for the {towards}"
            else:
                self.reason += f"; it stopped mid-frame, no Close for the {towards}"

    async def _send_close(self, way: Direction, code: int) -> bool:
        """Relay `way` up to its next frame boundary, then send a Close along it."""
        tracker = way.tracker
        if tracker.broken or tracker.close_seen:
            return False
        try:
            with trio.move_on_after(FINISH_FRAME_BUDGET):
                if way.pending is not None:
                    pending, way.pending = way.pending, None
                    await self.send(way.dst, pending)
                while not tracker.at_boundary and not way.eof:
                    data = await way.src.receive_some(RECEIVE_SIZE)
                    if not data:
                        way.eof = True
                        break
                    cut = tracker.boundary_in(data)
                    piece = data if cut is None else data[:cut]
                    tracker.feed(piece)
                    way.count += len(piece)
                    await self.send(way.dst, piece)
            if tracker.at_boundary and way.pending is None:
                await self.send(way.dst, close_frame(code, "", masked=way.masked))
                if self.code is None:
                    self.code = code
                return True
        except _SIDE_ERRORS:
            way.eof = True
        return False

    async def _await_close(self, way: Direction) -> None:
        """Read (and drop) what `way`'s source still sends, up to its Close frame."""
        tracker = way.tracker
        try:
            while not tracker.close_seen and not way.eof and not tracker.broken:
                data = await way.src.receive_some(RECEIVE_SIZE)
                if not data:
                    way.eof = True
                    return
                tracker.feed(data)
        except STREAM_ERRORS:
            way.eof = True

    async def send(self, stream: trio.abc.Stream, data: bytes | bytearray | memoryview) -> None:
        """Write `data` whole, or raise SideGone.

        Shielded: cancelling a write half-way would cut a frame. The deadline
        bounds how long a peer that stopped reading can hold the tunnel.
        """
        with trio.CancelScope(shield=True, deadline=trio.current_time() + SEND_BUDGET) as scope:
            try:
                await stream.send_all(data)
            except STREAM_ERRORS:
                raise SideGone() from None
        if scope.cancelled_caught:
            raise SideGone()

    def _result(self) -> TunnelEnd:
        if self.end is None:  # cancelled from outside: the worker stopped at once
            self.end, self.reason = _ENDED, "worker stopped"
        end = TunnelEnd(
            duration=trio.current_time() - self.started,
            client_bytes=self.up.count,
            backend_bytes=self.down.count,
            closed_by=self.closed_by or GATEWAY,
            code=self.code,
            reason=self.reason,
        )
        log.info(
            "tunnel %s: ended after %.1fs, closed by %s (%s): %s; %d bytes from the client, "
            "%d from the backend",
            self.label,
            end.duration,
            end.closed_by,
            end.code if end.code is not None else "no Close",
            end.reason,
            end.client_bytes,
            end.backend_bytes,
        )
        return end


async def _close_stream(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except STREAM_ERRORS:
        abort(stream)


async def relay_tunnel(
    worker: Worker,
    client: trio.abc.Stream,
    client_rest: bytes,
    backend: trio.abc.Stream,
    backend_rest: bytes,
    *,
    idle_timeout: float,
    drain_timeout: float,
    label: str,
) -> TunnelEnd:
    """Relay between client and backend until the tunnel ends; how it ended."""
    tunnel = Tunnel(client, backend, idle_timeout, drain_timeout, label)
    worker.tunnels.add(tunnel)
    worker.metrics.tunnels_total += 1
    if worker.draining.is_set():
        tunnel.drain(worker.drain_started)
    tunnel.take_over(client_rest, backend_rest)
    client_rest = backend_rest = b""  # held by the tunnel until written, no longer
    try:
        return await tunnel.run()
    finally:
        worker.tunnels.discard(tunnel)
