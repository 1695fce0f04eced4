"""A drain ends its tunnels over the drain window, not all at the deadline.

200 tunnels through one worker, a 10 s drain: a third are silent, a third
have the client sending one frame after another in pieces (mid-frame most
of the time), a third have the backend doing the same. After TERM the
Closes must spread over the window (no 1 s slice holds more than 20% of
them), every one must be the gateway's 1001 at a frame boundary of its
direction (the bytes each side got parse as whole frames ending with that
Close), and none may come after the deadline. Raw sockets on both sides,
so every relayed byte is seen.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.gateway import gateway_toml, open_gateway
from tests.support.load import (
    OP_BINARY,
    OP_CLOSE,
    Frame,
    RawPeer,
    RawWebSocket,
    close_payload,
    describe_frames,
    encode_frame,
    open_raw_ws,
    serve_raw_ws_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
TUNNELS = 200
DRAIN = 10
SLICE_SHARE = 0.2  # no 1 s slice may hold more of the closes than this
LATE = 0.5  # seconds a Close may take from the worker's deadline to the client
PIECE = 700  # bytes a busy side writes at a time: never a whole frame
PAUSE = 0.15  # seconds between its pieces


def busy_stream(*, masked: bool) -> tuple[bytes, int]:
    """Frames to send one after another, and the length of one."""
    frame = encode_frame(OP_BINARY, bytes(range(256)) * 8, mask=masked)
    return frame, len(frame)


def has_close(frames: list[Frame]) -> bool:
    return any(f.opcode == OP_CLOSE for f in frames)


async def send_busily(
    send: Callable[[bytes], Awaitable[None]], got_close: trio.Event, *, masked: bool
) -> None:
    """Send frames in pieces until the Close arrives; then end the frame and answer."""
    frame, size = busy_stream(masked=masked)
    position = 0
    while not got_close.is_set():
        offset = position % size
        piece = (frame[offset:] + frame)[:PIECE]
        await send(piece)
        position += len(piece)
        with trio.move_on_after(PAUSE):
            await got_close.wait()
    offset = position % size
    if offset:
        await send(frame[offset:])  # the rest of this frame
    await send(encode_frame(OP_CLOSE, close_payload(1001), mask=masked))


async def backend_session(peer: RawPeer) -> None:
    got_close = trio.Event()

    async def read() -> None:
        await peer.receive_until(has_close)
        got_close.set()
        await peer.receive_until(lambda frames: False)  # to the end of the connection

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        if peer.path.endswith("/backend-busy"):
            await send_busily(peer.send, got_close, masked=False)
        else:
            await got_close.wait()
            if not peer.eof:
                await peer.send(encode_frame(OP_CLOSE, close_payload(1001)))


@attrs.define
class Client:
    n: int
    kind: str  # "silent", "client-busy", "backend-busy"
    ws: RawWebSocket | None = None
    closed_at: float = math.inf  # when its Close arrived


async def run_client(client: Client, port: int, opened: trio.Event) -> None:
    async with open_raw_ws(GATEWAY, port, f"/ws/{client.n}/{client.kind}") as ws:
        client.ws = ws
        opened.set()
        got_close = trio.Event()

        async def read() -> None:
            await ws.receive_until(has_close)
            client.closed_at = trio.current_time()
            got_close.set()
            await ws.receive_until_eof()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            if client.kind == "client-busy":
                await send_busily(ws.send, got_close, masked=True)
            else:
                await got_close.wait()
                if not ws.eof:
                    await ws.send(encode_frame(OP_CLOSE, close_payload(1001), mask=True))


# Heavy load: never at the same time as another load test (pytest-xdist).
@pytest.mark.xdist_group("load")
@pytest.mark.timeout(120)
async def test_200_tunnels_close_spread_over_a_10s_drain_each_at_a_frame_boundary(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    kinds = ("silent", "client-busy", "backend-busy")
    clients = [Client(n, kinds[n % 3]) for n in range(TUNNELS)]
    with trio.fail_after(100):
        backend = await nursery.start(serve_raw_ws_backend, A, backend_port, backend_session)
        config = gateway_toml(
            servers=[A],
            backend_port=backend_port,
            http_port=gateway_port,
            request_timeout=60,
            setting={"connection_draining": True, "drain_timeout": DRAIN},
        )
        async with open_gateway(config, tmp_path, workers=1, term_timeout=DRAIN + 10) as gw:
            async with trio.open_nursery() as running:
                for client in clients:
                    opened = trio.Event()
                    running.start_soon(run_client, client, gateway_port, opened)
                    await opened.wait()
                await backend.wait_for_peer(TUNNELS)
                log_offset = len(gw.log())
                term = trio.current_time()
                gw.send_signal(signal.SIGTERM)
                await gw.wait_for_log("draining: ", 10, start=log_offset)
            returncode = await gw.wait(10)
    assert returncode == 0, gw.log_tail()

    # Every close is the gateway's 1001, at a frame boundary of each direction.
    problems = []
    by_path = {peer.path: peer for peer in backend.peers}
    for client in clients:
        assert client.ws is not None
        to_client, rest = client.ws.frames()
        closes = [f for f in to_client if f.opcode == OP_CLOSE]
        if rest or not closes or to_client[-1].close_code != 1001 or len(closes) != 1:
            problems.append(f"client {client.n} ({client.kind}) got {describe_frames(to_client)}")
        peer = by_path[f"/ws/{client.n}/{client.kind}"]
        to_backend, rest = peer.frames()
        closes = [f for f in to_backend if f.opcode == OP_CLOSE]
        if rest or len(closes) != 1 or to_backend[-1].close_code != 1001:
            problems.append(
                f"backend of {client.n} ({client.kind}) got {describe_frames(to_backend[-3:])}, "
                f"{len(rest)} bytes more"
            )
    assert problems == [], problems[:10]

    # None outlives the deadline; the closes spread over the window.
    after = sorted(client.closed_at - term for client in clients)
    assert after[0] >= 0 and after[-1] <= DRAIN + LATE, (after[0], after[-1])
    slices = [0] * (DRAIN + 1)
    for seconds in after:
        slices[min(int(seconds), DRAIN)] += 1
    assert max(slices) <= SLICE_SHARE * TUNNELS, slices
    print(f"closes per second of the drain: {slices}")
