"""A tunnel peer that goes without a Close frame: its end passes on as it came.

By default nothing is added: an EOF reaches the other side as an EOF (a
half-close where the other connection is a socket), after every byte the
side sent; a reset reaches it as a reset, after every byte too; a peer that
stops reading is the gateway's decision (Close 1001). The resets run over
real TCP connections on 127.0.0.1 (a Unix socket pair has no reset); the
rest over socket pairs and in-memory streams, as test_relay_close.py does.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest
import trio
import trio.testing

from appgw.worker.tunnel.direction import Direction
from appgw.worker.tunnel.peer_loss import (
    BOTH,
    HANDSHAKE,
    LOST,
    NO_HALF_CLOSE,
    PASS,
    WAIT,
    after_eof,
)
from appgw.worker.tunnel.tunnel import SEND_BUDGET, Tunnel, TunnelEnd
from tests.support.load import OP_BINARY, OP_CLOSE, OP_TEXT, close_payload, encode_frame
from tests.unit.test_relay_close import (
    DRAIN,
    IDLE,
    KiB,
    Running,
    Side,
    masked,
    start_tunnel,
    stream_pair,
)


@pytest.fixture(params=["memory", "socket"])
def transport(request: pytest.FixtureRequest) -> str:
    """memory: in-memory streams (the pump tasks); socket: socket pairs (the epoll relay)."""
    return str(request.param)


async def tcp_pair(
    a_buffer: int = 0, b_buffer: int = 0
) -> tuple[trio.SocketStream, trio.SocketStream]:
    """Two ends of one TCP connection on 127.0.0.1, with receive buffers if given."""
    listener = trio.socket.socket()
    if b_buffer:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, b_buffer)
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    a = trio.socket.socket()
    if a_buffer:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a_buffer)
    await a.connect(listener.getsockname())
    b, _ = await listener.accept()
    listener.close()
    return trio.SocketStream(a), trio.SocketStream(b)


def reset(stream: trio.abc.Stream) -> None:
    """End a TCP connection with a reset, as a crashed or failing peer does."""
    assert isinstance(stream, trio.SocketStream)
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def send_queue(stream: trio.abc.Stream) -> int:
    import fcntl
    import termios

    assert isinstance(stream, trio.SocketStream)
    out = fcntl.ioctl(stream.socket.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", out)[0])


# A side that reads nothing takes this much at most; the gateway's receive
# buffer takes all the other side sends, so a reset of that side loses none
# of it in the kernel: the test sees whether the gateway relays all it got.
SMALL, LARGE = 4 * KiB, 2048 * KiB


async def start_tcp_tunnel(
    nursery: trio.Nursery, *, collect_client: bool = True, collect_backend: bool = True
) -> Running:
    client_app, client_gw = await tcp_pair(0 if collect_client else SMALL, LARGE)
    backend_gw, backend_app = await tcp_pair(LARGE, 0 if collect_backend else SMALL)
    tunnel = Tunnel(client_gw, backend_gw, IDLE, DRAIN, "test")
    running = Running(tunnel, Side(client_app), Side(backend_app), trio.Event())

    async def run() -> None:
        running.end = await tunnel.run()
        running.ended_at = trio.current_time()
        running.ended.set()

    nursery.start_soon(run)
    if collect_client:
        nursery.start_soon(running.client.collect)
    if collect_backend:
        nursery.start_soon(running.backend.collect)
    await trio.testing.wait_all_tasks_blocked()
    return running


async def until_sent(stream: trio.abc.Stream) -> None:
    """Wait until the kernel delivered all `stream` sent (what a reset would discard)."""
    while send_queue(stream):
        await trio.sleep(0.01)


# -- an EOF ---------------------------------------------------------------------------


async def test_backend_eof_reaches_the_client_as_an_eof_and_no_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    words = b"".join(encode_frame(OP_TEXT, b"frame %d" % n) for n in range(3))
    await t.backend.send(words)
    await t.backend.stream.send_eof()  # type: ignore[attr-defined]
    await t.client.wait_for_eof()
    assert bytes(t.client.received) == words and not t.client.reset
    if transport == "socket":
        # A half-close: the client can still talk to the backend, which still reads.
        assert t.end is None
        late = masked(OP_TEXT, b"still there?")
        await t.client.send(late)
        await t.backend.wait_for_bytes(len(late))
        assert bytes(t.backend.received) == late
        await t.client.stream.aclose()
        await t.backend.wait_for_eof()
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code, t.end.backend_bytes) == ("backend", None, len(words))
    assert t.client.closes() == [] and t.backend.closes() == []
    if transport == "socket":
        assert t.end.reason == (
            "backend ended its connection, passed on as a half-close; then the client did"
        )
    else:
        assert "closed the client's TLS connection" in t.end.reason


async def test_client_eof_reaches_the_backend_as_an_eof_and_no_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    hello = masked(OP_TEXT, b"hello")
    await t.client.send(hello)
    await t.client.stream.send_eof()  # type: ignore[attr-defined]
    await t.backend.wait_for_eof()
    assert bytes(t.backend.received) == hello and not t.backend.reset
    if transport == "socket":
        answer = encode_frame(OP_TEXT, b"an answer to a client that stopped sending")
        await t.backend.send(answer)
        await t.client.wait_for_bytes(len(answer))
        await t.backend.stream.aclose()
        await t.client.wait_for_eof()
        assert bytes(t.client.received) == answer
    await t.ended.wait()
    assert t.end is not None and (t.end.closed_by, t.end.code) == ("client", None)
    assert t.client.closes() == [] and t.backend.closes() == []


async def test_backend_gone_mid_frame_leaves_the_client_exactly_those_bytes(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    frame = encode_frame(OP_BINARY, os.urandom(8 * KiB))
    await t.backend.send(frame[: 3 * KiB])
    await t.backend.stream.aclose()
    await t.client.wait_for_eof()
    assert bytes(t.client.received) == frame[: 3 * KiB] and not t.client.reset
    await t.client.stream.aclose()
    await t.ended.wait()
    assert t.end is not None and (t.end.closed_by, t.end.code) == ("backend", None)


async def test_both_ends_lose_no_byte_still_on_its_way(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Both sides end while the client has not read what the backend sent: it gets it all."""
    t = await start_tcp_tunnel(nursery, collect_client=False)
    big = encode_frame(OP_BINARY, os.urandom(2560 * KiB))  # more than every buffer between

    async def talk_then_end() -> None:
        await t.backend.send(big)
        await t.backend.stream.send_eof()  # type: ignore[attr-defined]

    nursery.start_soon(talk_then_end)
    await t.client.stream.send_eof()  # type: ignore[attr-defined]
    await t.backend.wait_for_eof()  # the client's end reached the backend
    nursery.start_soon(t.client.collect)  # the client reads only now
    await t.client.wait_for_eof()
    assert not t.client.reset and bytes(t.client.received) == big
    await t.ended.wait()
    assert t.end is not None and t.end.closed_by == "client"
    assert t.end.reason == "client ended its connection, passed on as a half-close; then the backend did"


# -- a reset ---------------------------------------------------------------------------


async def test_backend_reset_resets_the_client_after_every_byte(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    t = await start_tcp_tunnel(nursery, collect_client=False)
    frames = b"".join(encode_frame(OP_BINARY, os.urandom(64 * KiB)) for _ in range(8))
    await t.backend.send(frames)  # 512 KiB: the client, not reading, leaves most at the gateway
    await until_sent(t.backend.stream)
    reset(t.backend.stream)
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(t.client.collect)  # the client reads only now
    await t.client.wait_for_eof()
    assert t.client.reset, "the client's connection ended with an EOF, not a reset"
    assert bytes(t.client.received) == frames
    assert t.client.closes() == []
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code) == ("backend", None)
    assert t.end.reason.startswith("backend reset the connection")
    assert "reset the client's connection after relaying all it sent" in t.end.reason


async def test_client_reset_resets_the_backend_after_every_byte(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    t = await start_tcp_tunnel(nursery, collect_backend=False)
    frames = b"".join(masked(OP_BINARY, os.urandom(64 * KiB)) for _ in range(8))
    await t.client.send(frames)
    await until_sent(t.client.stream)
    reset(t.client.stream)
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(t.backend.collect)
    await t.backend.wait_for_eof()
    assert t.backend.reset and bytes(t.backend.received) == frames
    assert t.backend.closes() == []
    await t.ended.wait()
    assert t.end is not None and (t.end.closed_by, t.end.code) == ("client", None)


async def test_a_reset_mid_frame_and_after_a_close_frame_is_still_a_reset(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    t = await start_tcp_tunnel(nursery)
    sent = encode_frame(OP_CLOSE, close_payload(1002)) + encode_frame(OP_TEXT, b"garbage")[:4]
    await t.backend.send(sent)
    await t.client.wait_for_bytes(len(sent))
    reset(t.backend.stream)
    await t.client.wait_for_eof()
    assert t.client.reset and bytes(t.client.received) == sent
    await t.ended.wait()


# -- a peer that stops reading: the gateway's decision ------------------------------------


async def test_backend_that_stops_reading_gets_the_client_1001_from_the_gateway(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    client_app, client_gw = stream_pair("socket")
    backend_gw, backend_app = stream_pair("socket")
    tunnel = Tunnel(client_gw, backend_gw, IDLE, DRAIN, "test")
    client = Side(client_app)
    nursery.start_soon(client.collect)  # the backend reads nothing
    ended: list[TunnelEnd] = []
    done = trio.Event()

    async def run() -> None:
        ended.append(await tunnel.run())
        done.set()

    nursery.start_soon(run)
    start = trio.current_time()
    chunk = masked(OP_BINARY, os.urandom(64 * KiB))
    with trio.move_on_after(SEND_BUDGET * 3):
        while not client.closes():
            await client.send(chunk)
    to_client = await client.wait_for_close()
    assert to_client.close_code == 1001
    assert trio.current_time() - start == pytest.approx(SEND_BUDGET, abs=1)
    await client.send(masked(OP_CLOSE, close_payload(1001)))
    await client.wait_for_eof()
    await backend_app.aclose()
    await done.wait()
    assert (ended[0].closed_by, ended[0].code) == ("gateway", 1001)
    assert ended[0].reason == f"backend took no bytes for {SEND_BUDGET:g}s"


# -- what an EOF means, as a table -------------------------------------------------------


def ways(kind: str) -> tuple[Direction, Direction]:
    client, backend = stream_pair(kind)
    return (
        Direction(client, backend, "client", masked=True),
        Direction(backend, client, "backend", masked=False),
    )


@pytest.mark.parametrize(
    ("transport", "close_on_peer_loss", "closes", "other_eof", "other_pending", "outcome"),
    [
        ("socket", False, (False, False), False, False, PASS),
        ("socket", False, (False, False), True, True, WAIT),
        ("socket", False, (False, False), True, False, BOTH),
        ("socket", False, (True, True), False, False, HANDSHAKE),
        ("socket", False, (True, False), False, False, PASS),
        ("memory", False, (False, False), False, False, NO_HALF_CLOSE),
        ("memory", False, (True, False), False, False, HANDSHAKE),
        ("socket", True, (False, False), False, False, LOST),
        ("memory", True, (False, False), False, False, LOST),
        ("socket", True, (True, False), False, False, PASS),
    ],
)
async def test_after_eof(
    transport: str,
    close_on_peer_loss: bool,
    closes: tuple[bool, bool],
    other_eof: bool,
    other_pending: bool,
    outcome: str,
) -> None:
    way, other = ways(transport)
    close = encode_frame(OP_CLOSE, close_payload(1000))
    if closes[0]:
        way.tracker.feed(masked(OP_CLOSE, close_payload(1000)))
    if closes[1]:
        other.tracker.feed(close)
    other.eof = other_eof
    other.pending = memoryview(b"owed") if other_pending else None
    assert after_eof(way, other, close_on_peer_loss=close_on_peer_loss) == outcome
