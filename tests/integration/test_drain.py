"""Draining: TERM with tunnels and requests open, idle tunnels, frame boundaries.

On TERM the gateway stops accepting, answers in-flight requests with
`Connection: close`, gives an idle keep-alive connection a short grace for
a request already on its way, and keeps tunnels running until the drain
timeout, each ending at its own moment of the drain window (or sooner, once
it goes idle) with a Close frame (1001) to both sides, each at a frame
boundary. An idle tunnel ends the same way. The frame tests
use raw sockets on both sides so they see every byte the gateway relays.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio
import trio_websocket

from tests.support.backends import start_http_backends
from tests.support.clients import open_http, open_ws
from tests.support.gateway import gateway_toml, open_gateway
from tests.support.load import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    Frame,
    RawPeer,
    apply_mask,
    close_payload,
    describe_frames,
    encode_frame,
    frame_header,
    open_raw_ws,
    serve_raw_ws_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
KiB = 1024
MiB = 1024 * KiB


def drain_config(
    gateway_port: int,
    backend_port: int,
    *,
    drain_timeout: int = 2,
    request_timeout: int = 20,
    gateway: dict[str, object] | None = None,
) -> str:
    return gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        request_timeout=request_timeout,
        setting={"connection_draining": True, "drain_timeout": drain_timeout},
        gateway=gateway,
    )


def has_close(frames: list[Frame]) -> bool:
    return any(f.opcode == OP_CLOSE for f in frames)


def closed(peer: RawPeer) -> bool:
    """The backend has received a Close."""
    return has_close(peer.frames()[0])


async def answer_close(peer: RawPeer) -> None:
    """A backend that reads everything and answers a Close with its own."""
    await peer.receive_until(has_close)
    if not peer.eof:
        await peer.send(encode_frame(OP_CLOSE, close_payload(1001)))
    await peer.receive_until(lambda frames: False)  # to the end of the connection


# -- tunnels ----------------------------------------------------------------------


async def test_term_with_tunnels_open_sends_1001_over_the_drain_window_and_exits_0(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    drain_timeout = 2
    closes: list[tuple[int | None, float]] = []
    after_term: list[int] = []

    async def client(n: int, opened: trio.Event, term_sent: trio.Event) -> None:
        async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws/{n}") as ws:
            opened.set()
            count = 0
            try:
                while True:
                    await ws.send_message(f"{n}:{count}")
                    assert await ws.get_message() == f"{n}:{count}"
                    if term_sent.is_set():
                        after_term[n] += 1
                    count += 1
                    # Quicker during the drain: a few exchanges must fit in
                    # it even on a busy machine.
                    await trio.sleep(0.05 if term_sent.is_set() else 0.2)
            except trio_websocket.ConnectionClosed as exc:
                closes.append((exc.reason.code if exc.reason else None, trio.current_time()))

    with trio.fail_after(40):
        await start_http_backends(nursery, [A], backend_port, websocket=True)
        config = drain_config(gateway_port, backend_port, drain_timeout=drain_timeout)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            term_sent = trio.Event()
            async with trio.open_nursery() as clients:
                for n in range(5):
                    after_term.append(0)
                    opened = trio.Event()
                    clients.start_soon(client, n, opened, term_sent)
                    await opened.wait()
                term = trio.current_time()
                gw.send_signal(signal.SIGTERM)
                term_sent.set()
                returncode = await gw.wait(drain_timeout + 5)
                exited = trio.current_time() - term
    assert returncode == 0, gw.log_tail()
    assert exited < drain_timeout + 3, f"exited {exited:.1f} s after TERM"
    assert [code for code, _ in closes] == [1001] * 5
    # The tunnels worked on through the drain, each until its own moment:
    # spread over the window (busy ones never go idle), none past the deadline.
    assert all(n >= 1 for n in after_term), after_term
    moments = sorted(when - term for _code, when in closes)
    assert 0 < moments[0] and moments[-1] <= drain_timeout + 1, moments
    # Two workers, each spreading its own over 90% of the window: with 3
    # and 2 tunnels, the first and last are at least 0.9 s apart.
    assert moments[-1] - moments[0] >= 0.6, moments


async def test_idle_tunnel_gets_1001_on_both_sides(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 1
    with trio.fail_after(30):
        backend = await nursery.start(serve_raw_ws_backend, A, backend_port, answer_close)
        config = drain_config(gateway_port, backend_port, request_timeout=timeout)
        async with open_gateway(config, tmp_path, workers=1):
            reason: trio_websocket.CloseReason | None = None
            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws") as ws:
                silent_since = trio.current_time()
                with trio.fail_after(timeout + 4):
                    try:
                        message = await ws.get_message()
                        raise AssertionError(f"a message on a silent tunnel: {message!r}")
                    except trio_websocket.ConnectionClosed as exc:
                        reason = exc.reason
                silence = trio.current_time() - silent_since
            peer = await backend.wait_for_peer()
            with trio.fail_after(5):
                backend_frames = await peer.wait_for(closed)
    assert reason is not None and reason.code == 1001, reason
    assert timeout - 0.1 <= silence <= timeout + 2, silence
    # The backend got a Close with 1001 too, masked as a client's frames are.
    assert len(backend_frames) == 1, describe_frames(backend_frames)
    assert backend_frames[0].close_code == 1001 and backend_frames[0].masked


async def test_close_on_drain_waits_for_the_end_of_a_client_fragment(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """The client is in the middle of the second fragment of a message when
    the drain deadline comes: the backend gets the whole fragment, then the
    Close, and nothing of the next fragment."""
    first = os.urandom(200 * KiB)
    second = os.urandom(300 * KiB)
    key = os.urandom(4)
    second_frame = encode_masked(OP_CONTINUATION, second, key, fin=False)
    cut = len(frame_header(OP_CONTINUATION, len(second), key=key)) + 100 * KiB
    with trio.fail_after(30):
        backend = await nursery.start(serve_raw_ws_backend, A, backend_port, answer_close)
        config = drain_config(gateway_port, backend_port, drain_timeout=1)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            async with open_raw_ws(GATEWAY, gateway_port) as client:
                await client.send(encode_frame(OP_BINARY, first, fin=False, mask=True))
                await client.send(encode_frame(OP_PING, b"between", mask=True))
                await client.send(second_frame[:cut])
                peer = await backend.wait_for_peer()
                # Everything up to the cut has reached the backend.
                await peer.wait_for(lambda p: len(p.received) >= cut + 200 * KiB)
                gw.send_signal(signal.SIGTERM)
                # The gateway tells the client first (that direction is at a
                # boundary), then waits for the client's fragment to end.
                with trio.fail_after(5):
                    to_client = await client.receive_until(has_close)
                rest = second_frame[cut:]
                last = encode_frame(OP_CONTINUATION, b"never relayed", mask=True)
                await client.send(rest + last)  # one write: the gateway must cut it
                with trio.fail_after(8):
                    to_backend = await peer.wait_for(closed)
                    await client.receive_until_eof()
            assert await gw.wait(10) == 0
    assert [f.close_code for f in to_client] == [1001], describe_frames(to_client)
    assert not to_client[0].masked
    assert [(f.opcode, f.fin) for f in to_backend] == [
        (OP_BINARY, False),
        (OP_PING, True),
        (OP_CONTINUATION, False),
        (OP_CLOSE, True),
    ], describe_frames(to_backend)
    assert to_backend[0].payload == first
    assert to_backend[2].payload == second
    assert to_backend[3].close_code == 1001 and to_backend[3].masked
    _frames, leftover = peer.frames()
    assert leftover == b"", f"{len(leftover)} bytes after the Close"


async def test_close_on_drain_waits_for_the_end_of_a_large_backend_frame(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """The backend streams a 2 MiB continuation frame slowly, past the drain
    deadline: the client gets the whole frame, then the Close, and nothing of
    the fragment the backend sent right behind it."""
    first = b"first fragment"
    big = os.urandom(2 * MiB)
    go = trio.Event()
    piece = 128 * KiB

    async def streaming(peer: RawPeer) -> None:
        await peer.send(
            encode_frame(OP_TEXT, first, fin=False)
            + frame_header(OP_CONTINUATION, len(big), fin=False)
            + big[:piece]
        )
        await go.wait()
        for start in range(piece, len(big) - piece, piece):
            await peer.send(big[start : start + piece])
            await trio.sleep(0.1)  # a slow backend: 16 pieces take 1.6 s
        await peer.send(big[len(big) - piece :] + encode_frame(OP_CONTINUATION, b"late"))
        await answer_close(peer)

    with trio.fail_after(30):
        backend = await nursery.start(serve_raw_ws_backend, A, backend_port, streaming)
        config = drain_config(gateway_port, backend_port, drain_timeout=1)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            async with open_raw_ws(GATEWAY, gateway_port) as client:
                while len(client.received) < piece:
                    await client.receive_some()
                log_offset = len(gw.log())
                gw.send_signal(signal.SIGTERM)
                await gw.wait_for_log("draining", 5, start=log_offset)
                go.set()
                with trio.fail_after(10):
                    await client.receive_until_eof()
                peer = await backend.wait_for_peer()
                with trio.fail_after(5):
                    to_backend = await peer.wait_for(closed)
            assert await gw.wait(10) == 0
    to_client, leftover = client.frames()
    assert [(f.opcode, f.fin) for f in to_client] == [
        (OP_TEXT, False),
        (OP_CONTINUATION, False),
        (OP_CLOSE, True),
    ], describe_frames(to_client)
    assert to_client[0].payload == first
    assert to_client[1].payload == big
    assert to_client[2].close_code == 1001 and not to_client[2].masked
    assert leftover == b"", f"{len(leftover)} bytes after the Close"
    assert [f.close_code for f in to_backend] == [1001]


async def test_idle_close_waits_for_the_end_of_a_fragment(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """The client goes silent in the middle of a fragment: the idle timeout
    ends the tunnel, and the Close reaches the backend after that fragment."""
    timeout = 1
    fragment = os.urandom(64 * KiB)
    key = os.urandom(4)
    frame = encode_masked(OP_CONTINUATION, fragment, key, fin=False)
    half = len(frame) // 2
    with trio.fail_after(30):
        backend = await nursery.start(serve_raw_ws_backend, A, backend_port, answer_close)
        config = drain_config(gateway_port, backend_port, request_timeout=timeout)
        async with open_gateway(config, tmp_path, workers=1):
            async with open_raw_ws(GATEWAY, gateway_port) as client:
                await client.send(encode_frame(OP_TEXT, b"part one", fin=False, mask=True))
                await client.send(frame[:half])
                silent_since = trio.current_time()
                with trio.fail_after(timeout + 4):
                    to_client = await client.receive_until(has_close)
                silence = trio.current_time() - silent_since
                await client.send(frame[half:] + encode_frame(OP_CONTINUATION, b"end", mask=True))
                peer = await backend.wait_for_peer()
                with trio.fail_after(5):
                    to_backend = await peer.wait_for(closed)
    assert timeout - 0.1 <= silence <= timeout + 2, silence
    assert [f.close_code for f in to_client] == [1001], describe_frames(to_client)
    assert [(f.opcode, f.fin) for f in to_backend] == [
        (OP_TEXT, False),
        (OP_CONTINUATION, False),
        (OP_CLOSE, True),
    ], describe_frames(to_backend)
    assert to_backend[1].payload == fragment
    assert to_backend[2].close_code == 1001


def encode_masked(opcode: int, payload: bytes, key: bytes, *, fin: bool) -> bytes:
    """A masked frame with a known key (so a test can cut it where it likes)."""
    return frame_header(opcode, len(payload), fin=fin, key=key) + apply_mask(payload, key)


# -- HTTP connections -----------------------------------------------------------------


async def test_idle_keepalive_connection_is_served_within_the_grace_with_connection_close(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    grace = 2.0
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        config = drain_config(gateway_port, backend_port, gateway={"drain_grace": grace})
        async with open_gateway(config, tmp_path, workers=1) as gw:
            async with (
                open_http(GATEWAY, gateway_port) as client,
                open_http(GATEWAY, gateway_port) as silent,
            ):
                first = await client.get("/echo")
                assert first.status == 200 and first.header("connection") is None
                assert (await silent.get("/echo")).status == 200
                log_offset = len(gw.log())
                term = trio.current_time()
                gw.send_signal(signal.SIGTERM)
                await gw.wait_for_log("draining", 5, start=log_offset)
                # A request that was on its way when the drain began.
                second = await client.get("/echo")
                tail = await client.read_until_closed()
                # The silent connection is closed once the grace is over.
                with trio.fail_after(grace + 3):
                    await silent.read_until_closed()
                closed_after = trio.current_time() - term
            returncode = await gw.wait(5)
    assert second.status == 200
    assert second.header("connection") == "close"
    assert tail == b""
    assert grace - 0.2 <= closed_after <= grace + 2, closed_after
    assert returncode == 0


async def test_in_flight_request_is_answered_with_connection_close(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        config = drain_config(gateway_port, backend_port)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/echo")).status == 200
                await client.send_head("GET", "/slow?delay=1.5")
                await client.end_request()
                await backend.wait_for_request("/slow", 5)
                log_offset = len(gw.log())
                gw.send_signal(signal.SIGTERM)
                await gw.wait_for_log("draining", 5, start=log_offset)
                response = await client.read_response()
                tail = await client.read_until_closed()
            returncode = await gw.wait(5)
    assert response.status == 200
    assert response.text().startswith("slow answer")
    assert response.header("connection") == "close", response.headers
    assert tail == b""
    assert returncode == 0
