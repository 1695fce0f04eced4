"""How a tunnel ends, over in-memory streams or socket pairs, and a virtual clock.

A Tunnel relays between two stream pairs, trio's in-memory streams (the
relay's pump tasks) or socket pairs (its one-task loop on non-blocking
calls); every test runs on both. The test plays the client
and the backend, collecting every byte each receives. Every test takes the
autojump clock (virtual time that jumps ahead whenever all tasks wait), so
the relay's budgets of several seconds cost nothing. The clean close (idle
timeout, drain deadline, close_now) must send a Close frame with 1001 to
each side at a frame boundary of that direction: after the frame in flight,
before the next one, never in the middle.

A side that goes away without a Close frame has its end passed on as it
came, after every byte it sent: an EOF as a half-close (socket pairs; the
in-memory streams have none, so there the other side's stream is closed),
a reset as a reset, and no frame is added. With the setting's
close_on_peer_loss the other side gets a Close at a frame boundary
instead: 1014 towards the client when the backend went, 1001 towards the
backend when the client went; none if it went in the middle of a frame.
"""

from __future__ import annotations

import logging
import os
import socket
import struct

import attrs
import pytest
import trio
import trio.testing

from appgw.worker.tunnel.drain_spread import DRAIN_SETTLE
from appgw.worker.tunnel.tunnel import (
    CLOSE_REPLY_BUDGET,
    FINISH_FRAME_BUDGET,
    SEND_BUDGET,
    Tunnel,
    TunnelEnd,
)
from tests.support.load import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    Frame,
    apply_mask,
    close_payload,
    describe_frames,
    encode_frame,
    frame_header,
    parse_frames,
)

KiB = 1024
IDLE = 20.0
DRAIN = 30.0


@attrs.define(eq=False)
class Side:
    """The test's end of one side of the tunnel: what it sent and received."""

    stream: trio.abc.Stream
    received: bytearray = attrs.Factory(bytearray)
    eof_at: float | None = None
    reset: bool = False  # the connection ended with ECONNRESET, not an EOF
    _changed: trio.Event = attrs.Factory(trio.Event)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def frames(self) -> tuple[list[Frame], bytes]:
        return parse_frames(bytes(self.received))

    def closes(self) -> list[Frame]:
        return [f for f in self.frames()[0] if f.opcode == OP_CLOSE]

    async def collect(self) -> None:
        while True:
            try:
                data = await self.stream.receive_some(64 * KiB)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.reset = isinstance(exc.__cause__, ConnectionResetError)
                data = b""
            if not data:
                self.eof_at = trio.current_time()
                self._wake()
                return
            self.received += data
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_close(self) -> Frame:
        while not self.closes():
            frames = describe_frames(self.frames()[0])
            assert self.eof_at is None, f"ended without a Close: {frames}"
            await self._changed.wait()
        return self.closes()[0]

    async def wait_for_eof(self) -> None:
        while self.eof_at is None:
            await self._changed.wait()

    async def wait_for_bytes(self, count: int) -> None:
        while len(self.received) < count:
            await self._changed.wait()


@attrs.define(eq=False)
class Running:
    tunnel: Tunnel
    client: Side  # the test as the client
    backend: Side  # the test as the backend
    ended: trio.Event
    ended_at: float | None = None
    end: TunnelEnd | None = None


@pytest.fixture(params=["memory", "socket"])
def transport(request: pytest.FixtureRequest) -> str:
    """memory: trio's in-memory streams (the pump tasks); socket: socket pairs
    (the one-task relay on non-blocking system calls)."""
    return str(request.param)


def stream_pair(transport: str) -> tuple[trio.abc.Stream, trio.abc.Stream]:
    if transport == "memory":
        return trio.testing.memory_stream_pair()
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


async def start_tunnel(
    nursery: trio.Nursery,
    transport: str,
    *,
    idle: float = IDLE,
    drain: float = DRAIN,
    client_rest: bytes = b"",
    backend_rest: bytes = b"",
    close_on_peer_loss: bool = False,
) -> Running:
    client_app, client_gw = stream_pair(transport)
    backend_gw, backend_app = stream_pair(transport)
    tunnel = Tunnel(
        client_gw,
        backend_gw,
        idle,
        drain,
        "test",
        "requestTimeout of settings 'web'",
        close_on_peer_loss=close_on_peer_loss,
    )
    running = Running(tunnel, Side(client_app), Side(backend_app), trio.Event())

    async def run() -> None:
        running.end = await tunnel.run(client_rest, backend_rest)
        running.ended_at = trio.current_time()
        running.ended.set()

    nursery.start_soon(run)
    nursery.start_soon(running.client.collect)
    nursery.start_soon(running.backend.collect)
    await trio.testing.wait_all_tasks_blocked()
    return running


def masked(opcode: int, payload: bytes, *, fin: bool = True, key: bytes = b"k3y!") -> bytes:
    """A client's (masked) frame with a fixed key, so tests can cut it anywhere."""
    return frame_header(opcode, len(payload), fin=fin, key=key) + apply_mask(payload, key)


# -- when the clean close happens ------------------------------------------------------


async def test_idle_tunnel_gets_1001_on_both_sides(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    start = trio.current_time()
    t = await start_tunnel(nursery, transport, idle=5)
    to_client = await t.client.wait_for_close()
    closed_at = trio.current_time() - start
    to_backend = await t.backend.wait_for_close()
    assert closed_at == pytest.approx(5, abs=0.01)
    assert (to_client.close_code, to_client.masked) == (1001, False)
    assert (to_backend.close_code, to_backend.masked) == (1001, True)
    # Nobody answers: both connections close once the reply budget is spent.
    await t.ended.wait()
    assert t.ended_at is not None
    assert t.ended_at - start == pytest.approx(5 + CLOSE_REPLY_BUDGET, abs=0.01)
    await t.client.wait_for_eof()
    await t.backend.wait_for_eof()


async def test_traffic_keeps_a_tunnel_open_past_the_idle_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport, idle=5)
    for n in range(10):
        await trio.sleep(2)
        await t.client.send(masked(OP_TEXT, f"tick {n}".encode()))
        await t.backend.wait_for_bytes(
            sum(len(masked(OP_TEXT, f"tick {i}".encode())) for i in range(n + 1))
        )
    assert t.client.closes() == [] and t.backend.closes() == []
    start = trio.current_time()
    await t.client.wait_for_close()
    assert trio.current_time() - start == pytest.approx(5, abs=0.01)


async def test_drain_closes_a_busy_tunnel_at_its_moment(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport, drain=7)
    started = trio.current_time()
    t.tunnel.drain(started, started + 4)
    sent = 0
    while not t.client.closes():
        # The backend keeps talking (never DRAIN_SETTLE quiet): the tunnel
        # keeps relaying until its moment.
        frame = encode_frame(OP_TEXT, b"news")
        await t.backend.send(frame)
        sent += len(frame)
        await trio.sleep(0.5)
    closed_at = trio.current_time() - started
    frames, rest = t.client.frames()
    assert 4 <= closed_at <= 4.6
    assert rest == b""
    assert [f.opcode for f in frames[:-1]] == [OP_TEXT] * (len(frames) - 1)
    assert frames[-1].close_code == 1001
    assert (await t.backend.wait_for_close()).close_code == 1001
    await t.ended.wait()
    assert t.end is not None and t.end.reason == "drained: its turn 4.0s into the drain"


async def test_drain_moment_never_passes_the_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport, drain=3)
    started = trio.current_time()
    t.tunnel.drain(started, started + 60)
    await t.client.wait_for_close()
    assert trio.current_time() - started == pytest.approx(3, abs=0.01)


async def test_a_silent_tunnel_is_not_closed_before_its_moment(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    started = trio.current_time()
    t.tunnel.drain(started, started + 12)
    await t.client.wait_for_close()
    assert trio.current_time() - started == pytest.approx(12, abs=0.01)
    assert (await t.backend.wait_for_close()).close_code == 1001


async def test_a_tunnel_that_goes_idle_at_a_frame_boundary_is_closed_then(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    started = trio.current_time()
    t.tunnel.drain(started, started + 20)
    await trio.sleep(2)
    question = masked(OP_TEXT, b"question")
    await t.client.send(question)
    await t.backend.wait_for_bytes(len(question))
    answer = encode_frame(OP_TEXT, b"answer")
    await trio.sleep(0.3)  # the answer comes a little later: it still passes
    await t.backend.send(answer)
    answered = trio.current_time()
    to_client = await t.client.wait_for_close()
    assert trio.current_time() - answered == pytest.approx(DRAIN_SETTLE, abs=0.01)
    assert [f.opcode for f in t.client.frames()[0]] == [OP_TEXT, OP_CLOSE]
    assert to_client.close_code == 1001
    assert (await t.backend.wait_for_close()).close_code == 1001
    await t.ended.wait()
    assert t.end is not None and t.end.reason.startswith("drained: idle at a frame boundary")


async def test_a_tunnel_stopped_mid_frame_is_not_idle_and_ends_at_the_frame_end(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    started = trio.current_time()
    t.tunnel.drain(started, started + 6)
    frame = masked(OP_BINARY, b"x" * 1000)
    await t.client.send(frame[:300])  # then nothing for a while, mid-frame
    await t.backend.wait_for_bytes(300)
    await trio.sleep(5)
    assert t.backend.closes() == []  # quiet, but not at a boundary: not idle
    await trio.sleep(1.5)  # its moment has come: the client's direction waits for the frame
    assert t.backend.closes() == []
    await t.client.send(frame[300:] + masked(OP_TEXT, b"never relayed"))
    to_backend = await t.backend.wait_for_close()
    frames, rest = t.backend.frames()
    assert [f.opcode for f in frames] == [OP_BINARY, OP_CLOSE] and rest == b""
    assert to_backend.close_code == 1001


async def test_close_now_is_prompt_and_answers_end_the_tunnel_early(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    start = trio.current_time()
    t.tunnel.close_now()
    await t.client.wait_for_close()
    await t.backend.wait_for_close()
    # Both sides answer at once: the tunnel does not wait out the reply budget.
    await t.client.send(masked(OP_CLOSE, close_payload(1001)))
    await t.backend.send(encode_frame(OP_CLOSE, close_payload(1001)))
    await t.ended.wait()
    assert t.ended_at is not None
    assert t.ended_at - start < CLOSE_REPLY_BUDGET / 2


# -- where the Close goes: frame boundaries ----------------------------------------------


async def test_close_waits_for_the_end_of_a_backend_frame_in_flight(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    big = os.urandom(100 * KiB)
    t = await start_tunnel(nursery, transport)
    await t.backend.send(frame_header(OP_BINARY, len(big)) + big[: 10 * KiB])
    await t.client.wait_for_bytes(10 * KiB)
    t.tunnel.close_now()
    # The backend direction was at a boundary: its Close goes at once.
    assert (await t.backend.wait_for_close()).close_code == 1001
    await trio.sleep(1)  # the frame is still incomplete: no Close for the client yet
    assert t.client.closes() == []
    await t.backend.send(big[10 * KiB :] + encode_frame(OP_TEXT, b"after the frame"))
    await t.client.wait_for_close()
    frames, rest = t.client.frames()
    assert [(f.opcode, len(f.payload)) for f in frames] == [(OP_BINARY, len(big)), (OP_CLOSE, 2)], (
        describe_frames(frames)
    )
    assert frames[0].payload == big
    assert rest == b""


async def test_close_goes_between_the_fragments_of_a_client_message(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    first, second = os.urandom(50 * KiB), os.urandom(80 * KiB)
    second_frame = masked(OP_CONTINUATION, second, fin=False)
    cut = 30 * KiB
    t = await start_tunnel(nursery, transport)
    head = masked(OP_BINARY, first, fin=False) + masked(OP_PING, b"between")
    await t.client.send(head + second_frame[:cut])
    await t.backend.wait_for_bytes(len(head) + cut)
    t.tunnel.close_now()
    assert (await t.client.wait_for_close()).close_code == 1001
    await trio.sleep(1)
    assert t.backend.closes() == []
    last = masked(OP_CONTINUATION, b"the end")
    await t.client.send(second_frame[cut:] + last)  # one write; the gateway cuts it
    to_backend = await t.backend.wait_for_close()
    frames, rest = t.backend.frames()
    assert [(f.opcode, f.fin) for f in frames] == [
        (OP_BINARY, False),
        (OP_PING, True),
        (OP_CONTINUATION, False),
        (OP_CLOSE, True),
    ], describe_frames(frames)
    assert (frames[0].payload, frames[2].payload) == (first, second)
    assert to_backend.masked and to_backend.close_code == 1001
    assert rest == b""


async def test_a_header_split_across_reads_is_finished_before_the_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    payload = os.urandom(70 * KiB)  # a 64-bit length: a 10-byte header
    frame = encode_frame(OP_BINARY, payload)
    t = await start_tunnel(nursery, transport)
    await t.backend.send(frame[:5])  # half a header
    await t.client.wait_for_bytes(5)
    t.tunnel.close_now()
    await trio.sleep(1)
    assert t.client.closes() == []
    await t.backend.send(frame[5:])
    await t.client.wait_for_close()
    frames, rest = t.client.frames()
    assert [f.opcode for f in frames] == [OP_BINARY, OP_CLOSE]
    assert frames[0].payload == payload and rest == b""


async def test_bytes_read_before_the_tunnel_count_for_the_boundary(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    """Bytes the handshake parser read past the 101 (half a frame) are relayed first."""
    payload = os.urandom(20 * KiB)
    frame = encode_frame(OP_BINARY, payload)
    t = await start_tunnel(nursery, transport, backend_rest=frame[:100])
    await t.client.wait_for_bytes(100)
    t.tunnel.close_now()
    await trio.sleep(1)
    assert t.client.closes() == []
    await t.backend.send(frame[100:])
    await t.client.wait_for_close()
    frames, rest = t.client.frames()
    assert [f.opcode for f in frames] == [OP_BINARY, OP_CLOSE] and rest == b""


async def test_a_frame_never_finished_gets_no_close_only_the_end(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    await t.client.send(masked(OP_BINARY, os.urandom(10 * KiB))[: 4 * KiB])
    await t.backend.wait_for_bytes(4 * KiB)
    start = trio.current_time()
    t.tunnel.close_now()
    assert (await t.client.wait_for_close()).close_code == 1001
    await t.backend.wait_for_eof()
    # A Close inside the frame would corrupt it: the backend only sees the end.
    assert t.backend.closes() == []
    assert len(t.backend.received) == 4 * KiB
    assert t.backend.eof_at is not None
    # It waited FINISH_FRAME_BUDGET for the rest of the frame, then the reply budget.
    assert t.backend.eof_at - start == pytest.approx(
        FINISH_FRAME_BUDGET + CLOSE_REPLY_BUDGET, abs=0.01
    )


async def test_a_side_that_already_closed_gets_no_second_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    await t.backend.send(encode_frame(OP_CLOSE, close_payload(1000, "bye")))
    assert (await t.client.wait_for_close()).close_code == 1000
    t.tunnel.close_now()
    assert (await t.backend.wait_for_close()).close_code == 1001
    await t.ended.wait()
    assert [f.close_code for f in t.client.closes()] == [1000]


# -- a side that goes away, with close_on_peer_loss: the gateway's Close -------------


async def test_backend_eof_without_close_gets_the_client_1014(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport, close_on_peer_loss=True)
    await t.backend.send(encode_frame(OP_TEXT, b"last words"))
    await t.client.wait_for_bytes(12)
    await t.backend.stream.aclose()
    to_client = await t.client.wait_for_close()
    assert (to_client.close_code, to_client.masked) == (1014, False)
    frames, rest = t.client.frames()
    assert [f.opcode for f in frames] == [OP_TEXT, OP_CLOSE] and rest == b""
    await t.client.send(masked(OP_CLOSE, close_payload(1014)))  # the client answers
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code) == ("backend", 1014)
    assert (t.end.client_bytes, t.end.backend_bytes) == (0, 12)
    assert "without a Close frame" in t.end.reason and "sent 1014 to the client" in t.end.reason


async def test_backend_gone_mid_frame_leaves_the_client_no_close(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    """A Close inside the frame would not parse, padding would be made-up data:
    the client's connection just ends (its stack reports 1006, which is true)."""
    t = await start_tunnel(nursery, transport, close_on_peer_loss=True)
    frame = encode_frame(OP_BINARY, os.urandom(8 * KiB))
    await t.backend.send(frame[: 3 * KiB])
    await t.client.wait_for_bytes(3 * KiB)
    await t.backend.stream.aclose()
    await t.client.wait_for_eof()
    assert t.client.closes() == [] and len(t.client.received) == 3 * KiB
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code) == ("backend", None)
    assert "mid-frame" in t.end.reason


async def test_client_eof_without_close_gets_the_backend_1001(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport, close_on_peer_loss=True)
    hello = masked(OP_TEXT, b"hello")
    await t.client.send(hello)
    await t.backend.wait_for_bytes(len(hello))
    await t.client.stream.aclose()
    to_backend = await t.backend.wait_for_close()
    assert (to_backend.close_code, to_backend.masked) == (1001, True)
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code) == ("client", 1001)
    assert t.end.client_bytes == len(hello)
    assert t.client.closes() == []  # nothing is sent towards the side that went


async def test_backend_reset_gets_the_client_1014(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    t = await start_tunnel(nursery, "socket", close_on_peer_loss=True)
    await t.client.send(masked(OP_TEXT, b"unread by the backend"))
    await trio.testing.wait_all_tasks_blocked()
    stream = t.backend.stream
    assert isinstance(stream, trio.SocketStream)
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()
    assert (await t.client.wait_for_close()).close_code == 1014
    await t.ended.wait()
    assert t.end is not None and t.end.closed_by == "backend"


async def test_backend_that_stops_reading_counts_as_gone(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    client_app, client_gw = stream_pair("socket")
    backend_gw, backend_app = stream_pair("socket")
    tunnel = Tunnel(client_gw, backend_gw, IDLE, DRAIN, "test", close_on_peer_loss=True)
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
    assert to_client.close_code == 1014
    assert trio.current_time() - start == pytest.approx(SEND_BUDGET, abs=1)
    await client.wait_for_eof()
    await backend_app.aclose()
    await done.wait()
    assert ended[0].closed_by == "backend" and "took no bytes" in ended[0].reason


# -- the close handshake, and what the tunnel reports -----------------------------------


async def test_close_handshake_ends_the_tunnel_and_reports_who_closed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport)
    start = trio.current_time()
    question = masked(OP_TEXT, b"question")
    await t.client.send(question)
    await t.backend.wait_for_bytes(len(question))
    await trio.sleep(3)
    goodbye = encode_frame(OP_CLOSE, close_payload(4000, "done"))
    await t.backend.send(goodbye)
    assert (await t.client.wait_for_close()).close_code == 4000
    reply = masked(OP_CLOSE, close_payload(4000))
    await t.client.send(reply)
    assert (await t.backend.wait_for_close()).close_code == 4000
    await t.backend.stream.aclose()  # the server ends the TCP connection
    await t.client.wait_for_eof()
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code) == ("backend", 4000)
    assert (t.end.client_bytes, t.end.backend_bytes) == (len(question) + len(reply), len(goodbye))
    assert t.end.duration == pytest.approx(trio.current_time() - start, abs=0.01)
    assert t.end.duration >= 3
    assert t.end.reason == "close handshake"


async def test_a_half_close_after_a_close_frame_passes_through(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    t = await start_tunnel(nursery, "socket")
    await t.backend.send(encode_frame(OP_CLOSE, close_payload(1000)))
    backend = t.backend.stream
    assert isinstance(backend, trio.SocketStream)
    await backend.send_eof()
    await t.client.wait_for_eof()  # the client sees the server's end ...
    assert [f.close_code for f in t.client.closes()] == [1000]
    await t.client.send(masked(OP_CLOSE, close_payload(1000)))  # ... and can still answer
    assert (await t.backend.wait_for_close()).close_code == 1000
    await t.ended.wait()
    assert t.end is not None and (t.end.closed_by, t.end.code) == ("backend", 1000)


async def test_the_gateway_closing_is_reported_as_such(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, transport: str
) -> None:
    t = await start_tunnel(nursery, transport, idle=5)
    await t.ended.wait()
    assert t.end is not None
    assert (t.end.closed_by, t.end.code) == ("gateway", 1001)
    assert t.end.reason == "idle for 5s (requestTimeout of settings 'web')"


async def test_a_close_frame_without_a_status_code_is_logged_as_1005(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="appgw")
    t = await start_tunnel(nursery, transport)
    await t.client.send(masked(OP_CLOSE, b""))
    await t.backend.wait_for_close()
    await t.backend.send(encode_frame(OP_CLOSE, b""))
    await t.client.wait_for_close()
    await t.backend.stream.aclose()
    await t.ended.wait()
    assert t.end is not None and (t.end.closed_by, t.end.code) == ("client", None)
    lines = [r.getMessage() for r in caplog.records if "ended after" in r.getMessage()]
    assert len(lines) == 1 and "closed by client (1005, no status): close handshake" in lines[0]
