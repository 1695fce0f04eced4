"""A tunnel's peer goes away: the other connection ends the same way.

RFC 6455 §7.1.7: an endpoint that fails the WebSocket connection drops
TCP, often with a reset, and its peer must see exactly that; a gateway
that sent a Close of its own would tell the peer the other side closed on
purpose. So nothing is added, and the end travels as it came.

An EOF (after_eof, a pure decision): once every byte the side sent is
written, it is passed on as a half-close (SHUT_WR) and the other
direction goes on; once both directions have ended the tunnel closes both
connections. TLS has no half-close in the gateway's streams: there the
other connection is closed instead (a TCP FIN; the gateway's TLS streams
are HTTPS-compatible and send no close_notify, at a tunnel's end as at any
other).

A reset, or any error reading or writing a side (pass_reset): the gateway

1. relays every byte that side sent: what it holds for the other side, then
   whatever the kernel still hands out before the error (Linux delivers
   what arrived before the reset, then ECONNRESET);
2. waits until the other side's kernel has taken all of it (the socket's
   send queue is empty: a reset discards what is still queued), for at most
   SEND_BUDGET;
3. resets the other connection: SO_LINGER 0, then close. Over TLS no
   close_notify goes out first.

Nothing is added: no Close frame, no padding. What the dead side's peer
gets is what it would get with no gateway in between.

The setting's close_on_peer_loss asks for the gateway's own Close instead
(relay.py: 1014 to the client when the backend went, 1001 to the backend
when the client went, at a frame boundary); after_eof says LOST for that.
"""

from __future__ import annotations

import fcntl
import struct
import termios

import trio

from appgw.errors import STREAM_ERRORS
from appgw.worker.io.endpoint import RECEIVE_SIZE, abort, raw_socket
from appgw.worker.tunnel.direction import Direction, SideGone
from appgw.worker.tunnel.stream_pump import send_all

_BROKE: tuple[type[Exception], ...] = (SideGone, *STREAM_ERRORS)

# What a source's EOF does, once all it sent is written (after_eof).
PASS = "pass"  # pass it on now, a half-close; the other direction goes on
WAIT = "wait"  # the other direction's last bytes go first; their flush ends the tunnel
LOST = "lost"  # close_on_peer_loss: gone without a Close frame; the gateway's Close follows
HANDSHAKE = "handshake"  # the tunnel is over: both Close frames passed
BOTH = "both"  # the tunnel is over: both sides ended
NO_HALF_CLOSE = "no half-close"  # the tunnel is over: the destination is TLS

# How often the send queue is looked at while it drains: from 1 ms, doubling, to this.
_POLL_MAX = 0.05


def after_eof(way: Direction, other: Direction, *, close_on_peer_loss: bool) -> str:
    """What `way`'s source ending means, all it sent written; `other` is the reverse way."""
    tracker = way.tracker
    if close_on_peer_loss and not (tracker.close_seen or tracker.broken):
        return LOST
    if other.eof and other.pending is None:
        return HANDSHAKE if tracker.close_seen else BOTH
    if tracker.close_seen and other.tracker.close_seen:
        return HANDSHAKE
    if not way.passes_eof:
        return HANDSHAKE if tracker.close_seen else NO_HALF_CLOSE
    return WAIT if other.eof else PASS


def eof_reason(outcome: str, first: str, way: Direction, other: Direction) -> str:
    """The log's words for a tunnel that after_eof ended; `first`: who ended first."""
    if outcome == HANDSHAKE:
        return "close handshake"
    if outcome == NO_HALF_CLOSE:
        return (
            f"{way.side} closed the connection without a Close frame; closed the "
            f"{other.side}'s TLS connection (no half-close over TLS)"
        )
    second = other.side if first == way.side else way.side
    return f"{first} ended its connection, passed on as a half-close; then the {second} did"


async def pass_reset(way: Direction, towards: str, budget: float) -> str:
    """`way`'s source broke: relay what it sent, then reset `way`'s destination
    (the `towards` side).

    Returns what was done, for the tunnel's log line.
    """
    delivered = False
    with trio.move_on_after(budget):
        try:
            if way.pending is not None:
                pending, way.pending = way.pending, None
                await send_all(way.dst, pending)
            await _relay_rest(way)
            delivered = await sent_out(way.dst)
        except _BROKE:
            pass  # the other side broke too: it is reset all the same
    abort(way.dst)
    if delivered:
        return f"reset the {towards}'s connection after relaying all it sent"
    return f"reset the {towards}'s connection (it had not taken all that was relayed)"


async def _relay_rest(way: Direction) -> None:
    """What the broken source still hands out before its error, relayed."""
    if way.half_closed:
        return
    while True:
        try:
            data = await way.src.receive_some(RECEIVE_SIZE)
        except STREAM_ERRORS:
            return
        if not data:
            return
        way.tracker.feed(data)
        way.count += len(data)
        await send_all(way.dst, data)


async def sent_out(stream: trio.abc.Stream) -> bool:
    """Wait until the kernel has nothing left to send on `stream`'s socket.

    True once the send queue (sent but not acknowledged, and not sent yet)
    is empty; waits until cancelled otherwise.
    """
    sock = raw_socket(stream)
    if sock is None:
        return True
    delay = 0.001
    while True:
        try:
            queued = _send_queue(sock.fileno())
        except OSError:
            return False
        if queued == 0:
            return True
        await trio.sleep(delay)  # no event tells when the peer acknowledged: look again
        delay = min(delay * 2, _POLL_MAX)


def _send_queue(fd: int) -> int:
    """Bytes in a TCP socket's send queue (SIOCOUTQ: unsent plus unacknowledged)."""
    if fd < 0:
        raise OSError("socket closed")
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0])
