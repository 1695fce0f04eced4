"""Tunnels: the byte relay after `101 Switching Protocols`.

Bytes move untouched both ways, with back-pressure (a side that does not
take what it is sent stops the reads on the other side). A FrameTracker per
direction reads WebSocket frame headers only, so the tunnel always knows
whether a direction stands at a frame boundary.

How bytes move is tunnel_io.py's. How a tunnel ends (peer_loss.py has the
details of a peer that goes):
- A side ends its connection (EOF): once all it sent is written, the end
  is passed on as it came, a half-close (over TLS, which has none here, a
  close); the tunnel is over once both directions ended, or both Close
  frames passed and a side ended.
- A side's connection breaks (a reset): all it sent is relayed, then the
  other connection is reset. No frame is added either way.
- With the setting's close_on_peer_loss, a side that goes without a Close
  frame gets the other side a Close of the gateway's instead (1014 to the
  client, 1001 to the backend) at that direction's frame boundary.
- The gateway ends it (the idle timeout, the setting's request timeout with
  no byte either way; a drain, each tunnel at its own moment of the drain
  window, drain_spread.py; a side that took no bytes for SEND_BUDGET):
  both sides get a Close with 1001, each at a frame boundary
  (but a side that stopped reading: it takes nothing more). A direction
  caught mid-frame relays up to that frame's end (within
  FINISH_FRAME_BUDGET) and no further. A write in progress always completes
  (sends are shielded, with a deadline), so the gateway never cuts a frame.
In every case each side that got a Close has a moment (CLOSE_REPLY_BUDGET)
to answer, then both connections close, and one line is logged with how
long the tunnel lived, the bytes each way, who closed it and with which
code. Tunnel.run returns the same as a TunnelEnd value (tunnels.py registers
the tunnel with its worker around it).
"""

from __future__ import annotations

import math

import attrs
import trio

from appgw import logs
from appgw.errors import STREAM_ERRORS
from appgw.websocket import close_frame
from appgw.worker.io.endpoint import RECEIVE_SIZE, abort
from appgw.worker.tunnel.direction import SEND_BUDGET, Direction, SideGone, on_epoll
from appgw.worker.tunnel.drain_spread import DrainTurn
from appgw.worker.tunnel.peer_loss import LOST, PASS, WAIT, after_eof, eof_reason, pass_reset
from appgw.worker.tunnel.pump import relay_sockets
from appgw.worker.tunnel.stream_pump import relay_streams, send_all

# A side gone, however it shows.
_SIDE_ERRORS: tuple[type[Exception], ...] = (SideGone, *STREAM_ERRORS)

log = logs.log

FINISH_FRAME_BUDGET = 5.0  # seconds to relay the rest of a frame caught mid-way
CLOSE_REPLY_BUDGET = 1.0  # seconds each side has to answer our Close
GOING_AWAY = 1001
BAD_GATEWAY = 1014  # IANA WebSocket close code registry: the upstream side failed

CLIENT = "client"
BACKEND = "backend"
GATEWAY = "gateway"

# How the relay phase ended (Tunnel.end).
_DONE = "done"  # both sides finished the WebSocket way
_GONE = "gone"  # a side went away without a Close frame (close_on_peer_loss)
_RESET = "reset"  # a side's connection broke: the other is reset after its bytes
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
        "idle_limit",
        "label",
        "started",
        "last_activity",
        "turn",
        "scope",
        "end",
        "reason",
        "gone",
        "closed_by",
        "code",
        "close_on_peer_loss",
        "stalled_way",
    )

    def __init__(
        self,
        client: trio.abc.Stream,
        backend: trio.abc.Stream,
        idle_timeout: float,
        drain_timeout: float,
        label: str,
        idle_limit: str = "",
        *,
        close_on_peer_loss: bool = False,
    ) -> None:
        self.client = client
        self.backend = backend
        self.up = Direction(client, backend, CLIENT, masked=True)
        self.down = Direction(backend, client, BACKEND, masked=False)
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self.idle_limit = idle_limit  # what sets idle_timeout, for the log
        self.label = label
        self.started = self.last_activity = trio.current_time()
        self.turn: DrainTurn | None = None  # set once the worker drains
        self.scope: trio.CancelScope | None = None  # the relay phase's, deadline = next timer
        self.end: str | None = None  # _DONE, _GONE, _RESET or _ENDED once the relay phase is over
        self.reason = ""
        self.gone: Direction | None = None  # _GONE, _RESET: the direction whose source went
        self.closed_by: str | None = None
        self.code: int | None = None
        # The setting's close_on_peer_loss: a Close of the gateway's for a peer that went.
        self.close_on_peer_loss = close_on_peer_loss
        self.stalled_way: Direction | None = None  # whose destination stopped taking bytes

    # -- told from outside -------------------------------------------------------

    def drain(self, started: float, moment: float) -> None:
        """The worker is draining: end this tunnel at `moment`, or sooner if it goes idle."""
        deadline = started + self.drain_timeout
        self.turn = DrainTurn(started, min(moment, deadline), deadline)
        self._reschedule()

    def close_now(self) -> None:
        """End this tunnel now, cleanly (the drain deadline has come)."""
        now = trio.current_time()
        self.turn = DrainTurn(now if self.turn is None else self.turn.began, now, now)
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
        """`way`'s source sent EOF (all it sent before is written). True: pass it on now."""
        way.eof = True
        if self.closed_by is None:
            self.closed_by = way.side
        return self.eof_due(way)

    def eof_due(self, way: Direction) -> bool:
        """`way`'s source ended and all it sent is written. True: pass the EOF on now."""
        other = self.other(way)
        outcome = after_eof(way, other, close_on_peer_loss=self.close_on_peer_loss)
        if outcome == LOST:
            self.source_gone(way, "closed the connection without a Close frame")
        elif outcome not in (PASS, WAIT):
            self._finish(_DONE, eof_reason(outcome, self.closed_by or way.side, way, other))
        return outcome == PASS

    def source_gone(self, way: Direction, what: str) -> None:
        """`way`'s source is gone: it broke (a reset), or, with close_on_peer_loss, ended."""
        way.eof = True
        if self.end is not None:
            return
        if not self.close_on_peer_loss:  # a reset is passed on as a reset
            if self.closed_by is None:
                self.closed_by = way.side
            self.gone = way
            self._finish(_RESET, f"{way.side} {what}")
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

    def stalled(self, way: Direction, what: str) -> None:
        """`way`'s destination took no bytes for SEND_BUDGET: the gateway ends the tunnel."""
        if self.close_on_peer_loss:
            self.destination_gone(way, what)
            return
        self.stalled_way = way
        self._finish(_ENDED, f"{self.other(way).side} {what}", by=GATEWAY)

    def check_timers(self) -> None:
        """The relay phase's deadline passed: end the tunnel, or move the deadline."""
        now = trio.current_time()
        turn = self.turn
        drained = turn and turn.end(now, self.last_activity, at_rest=self._at_rest())
        if drained:
            self._finish(_ENDED, drained, by=GATEWAY)
        elif now >= self.last_activity + self.idle_timeout:
            limit = f" ({self.idle_limit})" if self.idle_limit else ""
            self._finish(_ENDED, f"idle for {self.idle_timeout:g}s{limit}", by=GATEWAY)
        else:
            for way in (self.up, self.down):
                if way.pending is not None and now >= way.stalled_since + SEND_BUDGET:
                    self.stalled(way, f"took no bytes for {SEND_BUDGET:g}s")
                    return

    def deadline(self) -> float:
        turn = self.turn
        return min(
            self.last_activity + self.idle_timeout,
            math.inf if turn is None else turn.next_check(trio.current_time(), self.last_activity),
            self.up.stalled_since + SEND_BUDGET,
            self.down.stalled_since + SEND_BUDGET,
        )

    def _at_rest(self) -> bool:
        """Both directions at a frame boundary, nothing in flight."""
        up, down = self.up, self.down
        both_at_boundary = up.tracker.at_boundary and down.tracker.at_boundary
        return both_at_boundary and up.pending is None and down.pending is None

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
            if rest and way.take_over(rest):
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
        elif self.end == _RESET and self.gone is not None:
            self.reason += "; " + await pass_reset(
                self.gone, self.other(self.gone).side, SEND_BUDGET
            )

    async def _send_close(self, way: Direction, code: int) -> bool:
        """Relay `way` up to its next frame boundary, then send a Close along it."""
        tracker = way.tracker
        if tracker.broken or tracker.close_seen or way.half_closed or way is self.stalled_way:
            return False
        try:
            with trio.move_on_after(FINISH_FRAME_BUDGET):
                if way.pending is not None:
                    pending, way.pending = way.pending, None
                    await send_all(way.dst, pending)
                while not tracker.at_boundary and not way.eof:
                    data = await way.src.receive_some(RECEIVE_SIZE)
                    if not data:
                        way.eof = True
                        break
                    cut = tracker.boundary_in(data)
                    piece = data if cut is None else data[:cut]
                    tracker.feed(piece)
                    way.count += len(piece)
                    await send_all(way.dst, piece)
            if tracker.at_boundary and way.pending is None:
                await send_all(way.dst, close_frame(code, "", masked=way.masked))
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
            self._code_words(),
            end.reason,
            end.client_bytes,
            end.backend_bytes,
        )
        return end

    def _code_words(self) -> str:
        if self.code is not None:
            return str(self.code)
        if self.up.tracker.close_seen or self.down.tracker.close_seen:
            return "1005, no status"  # a Close frame without a status code
        return "no Close"


async def _close_stream(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except STREAM_ERRORS:
        abort(stream)
