"""A tunnel's bytes over any streams: one pump task per direction on trio's
stream API, the task that made the exchange watching the deadlines (used
where a side is neither plain TCP nor appgw's TLS stream, and when no epoll
set can be had)."""

from __future__ import annotations

import trio

from appgw.errors import STREAM_ERRORS
from appgw.worker.io.endpoint import RECEIVE_SIZE
from appgw.worker.tunnel.direction import SEND_BUDGET, Direction, SideGone, SideStalled, Tunnel

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
