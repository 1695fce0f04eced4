"""Tunnels: the byte relay after `101 Switching Protocols`.

Two pumps move bytes untouched, one per direction, with large reads and
back-pressure (a side that stops reading stops the other side's pump). A
half-close travels: EOF from one side becomes a shutdown of our write side
towards the other. Each pump feeds a FrameTracker, which reads WebSocket
frame headers only, so the tunnel always knows whether a direction stands
at a frame boundary.

A tunnel ends by itself when both sides have closed. It is ended by the
gateway when it has been silent for the idle timeout (the setting's request
timeout) or when a drain deadline passes. Then it closes cleanly, so clients
see 1001 and never 1006:
1. the pumps stop reading; a send in progress always completes (sends are
   shielded, with a deadline) so no frame is cut by the gateway;
2. a direction caught in the middle of a frame relays up to that frame's
   end, and no further;
3. a Close frame with 1001 (Going Away) goes to the client (unmasked) and to
   the backend (masked, as a client must), unless that side already got one;
4. each side gets a moment to answer with its own Close, then both
   connections close.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from appgw import logs
from appgw.websocket import close_frame
from appgw.worker.frames import FrameTracker
from appgw.worker.upstream import RECEIVE_SIZE, abort

if TYPE_CHECKING:
    from appgw.worker.main import Worker

log = logs.log

SEND_BUDGET = 10.0  # seconds one relayed write may take before the side counts as dead
FINISH_FRAME_BUDGET = 5.0  # seconds to relay the rest of a frame caught mid-way
CLOSE_REPLY_BUDGET = 1.0  # seconds each side has to answer our Close
GOING_AWAY = 1001


class _Direction:
    __slots__ = ("src", "dst", "tracker", "masked", "eof", "name", "moved")

    def __init__(self, src: trio.abc.Stream, dst: trio.abc.Stream, masked: bool, name: str) -> None:
        self.src = src
        self.dst = dst
        self.tracker = FrameTracker(masked=masked)
        self.masked = masked  # frames we inject towards dst must be masked
        self.eof = False
        self.name = name
        self.moved = 0  # bytes relayed (observability)


class Tunnel:
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
        self.up = _Direction(client, backend, True, "client->backend")
        self.down = _Direction(backend, client, False, "backend->client")
        self.idle_timeout = idle_timeout
        self.drain_timeout = drain_timeout
        self.label = label
        self.last_activity = trio.current_time()
        self.drain_deadline = math.inf
        self._wake = trio.Event()
        self._pumps = trio.CancelScope()
        self.reason = ""
        self.first_close: _Direction | None = None  # whose Close came first (observability)

    def drain(self, started: float) -> None:
        """The worker is draining: end this tunnel at its drain deadline."""
        self.drain_deadline = min(self.drain_deadline, started + self.drain_timeout)
        self._wake.set()

    def close_now(self) -> None:
        """End this tunnel now, cleanly (the drain deadline has come)."""
        self.drain_deadline = trio.current_time()
        self._wake.set()

    async def run(self, client_rest: bytes, backend_rest: bytes) -> None:
        self._ending = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch)
                with self._pumps:
                    async with trio.open_nursery() as pumps:
                        pumps.start_soon(self._pump, self.up, client_rest)
                        pumps.start_soon(self._pump, self.down, backend_rest)
                # The pumps have stopped (no write is in flight any more).
                if self._ending:
                    await self._close_cleanly()
                nursery.cancel_scope.cancel()
        except* (_SideGone, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # a side broke; both connections are closed below (cancellation goes on up)
        finally:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 1):
                await _close(self.client)
                await _close(self.backend)

    async def _pump(self, way: _Direction, rest: bytes) -> None:
        if rest:
            way.tracker.feed(rest)
            way.moved += len(rest)
            await self._send(way.dst, rest)
        while True:
            try:
                data = await way.src.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                way.eof = True
                await self._half_close(way)
                return
            self.last_activity = trio.current_time()
            way.tracker.feed(data)
            way.moved += len(data)
            if self.first_close is None and way.tracker.close_seen:
                self.first_close = way
            await self._send(way.dst, data)

    async def _send(self, stream: trio.abc.Stream, data: bytes | bytearray | memoryview) -> None:
        # Shielded: cancelling a write half-way would cut a frame. The
        # deadline bounds how long a peer that stopped reading can hold us.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + SEND_BUDGET) as scope:
            try:
                await stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                raise _SideGone() from None
        if scope.cancelled_caught:
            raise _SideGone()

    async def _half_close(self, way: _Direction) -> None:
        """One side sent EOF: pass it on, or end the tunnel.

        The EOF travels as a shutdown of our write side towards the other
        peer. That is only possible on plain TCP (TLS has no half-close), and
        pointless once the WebSocket close handshake is complete; in both
        cases the tunnel ends, so the other peer is not left waiting for a
        close that would never come.
        """
        other = self.down if way is self.up else self.up
        handshake_done = self.up.tracker.close_seen and self.down.tracker.close_seen
        if other.eof or handshake_done or not isinstance(way.dst, trio.SocketStream):
            self._pumps.cancel()
            return
        try:
            await way.dst.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._pumps.cancel()

    async def _watch(self) -> None:
        while True:
            deadline = min(self.last_activity + self.idle_timeout, self.drain_deadline)
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            if now >= self.drain_deadline:
                self.reason = "drain deadline"
                break
            if now >= self.last_activity + self.idle_timeout:
                self.reason = f"idle for {self.idle_timeout:g}s"
                break
        log.info("tunnel %s: closing (%s)", self.label, self.reason)
        self._ending = True
        self._pumps.cancel()

    async def _close_cleanly(self) -> None:
        """Close frames to both sides at frame boundaries, then wait for theirs."""
        async with trio.open_nursery() as nursery:
            for way in (self.up, self.down):
                nursery.start_soon(self._send_close, way)
        with trio.move_on_after(CLOSE_REPLY_BUDGET):
            async with trio.open_nursery() as nursery:
                for way in (self.up, self.down):
                    nursery.start_soon(self._await_close, way)

    async def _send_close(self, way: _Direction) -> None:
        """Relay `way` up to its next frame boundary, then send a Close along it."""
        tracker = way.tracker
        if tracker.broken or tracker.close_seen:
            return
        try:
            with trio.move_on_after(FINISH_FRAME_BUDGET):
                while not tracker.at_boundary and not way.eof:
                    data = await way.src.receive_some(RECEIVE_SIZE)
                    if not data:
                        way.eof = True
                        break
                    cut = tracker.boundary_in(data)
                    piece = data if cut is None else data[:cut]
                    tracker.feed(piece)
                    await self._send(way.dst, piece)
            if tracker.at_boundary and not tracker.close_seen:
                await self._send(way.dst, close_frame(GOING_AWAY, "", masked=way.masked))
        except (_SideGone, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            way.eof = True

    async def _await_close(self, way: _Direction) -> None:
        """Read (and drop) what `way`'s source still sends, up to its Close frame."""
        tracker = way.tracker
        try:
            while not tracker.close_seen and not way.eof and not tracker.broken:
                data = await way.src.receive_some(RECEIVE_SIZE)
                if not data:
                    way.eof = True
                    return
                tracker.feed(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            way.eof = True


class _SideGone(Exception):
    """One side of the tunnel broke or stopped reading."""


async def _close(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
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
) -> Tunnel:
    """Relay until the tunnel ends; the Tunnel, for its account (observe.tunnel_summary)."""
    tunnel = Tunnel(client, backend, idle_timeout, drain_timeout, label)
    worker.tunnels.add(tunnel)
    worker.metrics.tunnels_total += 1
    if worker.draining.is_set():
        tunnel.drain(worker.drain_started)
    try:
        await tunnel.run(client_rest, backend_rest)
    finally:
        worker.tunnels.discard(tunnel)
    return tunnel
