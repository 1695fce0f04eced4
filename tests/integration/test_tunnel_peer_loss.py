"""A tunnel's peer that goes away without a Close frame: the other side sees what it
would see with no gateway in between.

Raw sockets on both sides, so the exact bytes and the kind of end are
visible (an EOF, recv returning b"", against a reset, ConnectionResetError).
Each case runs twice against the same raw backend: the client straight to
it, and through the gateway started by its CLI; both runs must give the
same bytes and the same end. The gateway adds no frame either way.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.gateway import CertFiles, gateway_toml, open_gateway
from tests.support.load import (
    OP_BINARY,
    OP_TEXT,
    RawPeer,
    encode_frame,
    frame_header,
    open_raw_ws,
    serve_raw_ws_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
KEY = b"m4sk"


@attrs.frozen
class Seen:
    """What one side of a connection got after the handshake, and how it ended."""

    data: bytes
    reset: bool


def reset(stream: trio.SocketStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def masked(opcode: int, payload: bytes) -> bytes:
    return frame_header(opcode, len(payload), key=KEY) + bytes(
        b ^ KEY[i % 4] for i, b in enumerate(payload)
    )


FRAMES = b"".join(encode_frame(OP_TEXT, b"frame %d" % n) for n in range(3))
BIG = encode_frame(OP_BINARY, bytes(range(256)) * 64)  # 16 KiB
CLIENT_FRAMES = b"".join(masked(OP_TEXT, b"frame %d" % n) for n in range(3))
CLIENT_BIG = masked(OP_BINARY, bytes(range(256)) * 64)

# How the backend goes, after the 101: (what it sends first, then reset or FIN).
BACKEND_ENDS: dict[str, tuple[bytes, bool]] = {
    "reset after the 101": (b"", True),
    "frames then FIN": (FRAMES, False),
    "stops mid-frame": (FRAMES + BIG[:5000], False),
    "frames then reset": (FRAMES, True),
}
CLIENT_ENDS: dict[str, tuple[bytes, bool]] = {
    "reset": (b"", True),
    "frames then FIN": (CLIENT_FRAMES, False),
    "stops mid-frame": (CLIENT_FRAMES + CLIENT_BIG[:5000], False),
    "frames then reset": (CLIENT_FRAMES, True),
}


def config(gateway_port: int, backend_port: int) -> str:
    return gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)


async def client_sees(port: int, host: str) -> Seen:
    async with open_raw_ws(host, port) as ws:
        await ws.receive_until_eof()
        return Seen(bytes(ws.received), ws.reset)


async def backend_sees(peer: RawPeer) -> Seen:
    """Read the peer to its end, telling a reset from an EOF."""
    while True:
        try:
            data = await peer.stream.receive_some(65536)
        except trio.BrokenResourceError as exc:
            return Seen(bytes(peer.received), isinstance(exc.__cause__, ConnectionResetError))
        if not data:
            return Seen(bytes(peer.received), False)
        peer.received += data


@pytest.mark.parametrize("case", list(BACKEND_ENDS))
async def test_a_backend_that_goes_ends_the_client_the_same_way(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, case: str
) -> None:
    sends, resets = BACKEND_ENDS[case]

    async def session(peer: RawPeer) -> None:
        if sends:
            await peer.send(sends)
        if resets:
            reset(peer.stream)  # else the handler's close: a FIN

    with trio.fail_after(60):
        await nursery.start(serve_raw_ws_backend, A, backend_port, session)
        direct = await client_sees(backend_port, A)
        async with open_gateway(config(gateway_port, backend_port), tmp_path) as gw:
            through = await client_sees(gateway_port, GATEWAY)
            await gw.wait_for_log("closed by backend (no Close)", 10)
    assert direct == Seen(sends, resets), "the raw backend does not do what the test says"
    assert through == direct
    log = gw.log()
    assert "sent 1014" not in log
    if resets:
        assert "reset the client's connection after relaying all it sent" in log
    else:
        assert "backend ended its connection, passed on as a half-close; then the client did" in log


@pytest.mark.parametrize("case", list(CLIENT_ENDS))
async def test_a_client_that_goes_ends_the_backend_the_same_way(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, case: str
) -> None:
    sends, resets = CLIENT_ENDS[case]
    seen: list[Seen] = []
    changed = trio.Event()

    async def session(peer: RawPeer) -> None:
        seen.append(await backend_sees(peer))
        changed.set()

    async def go(host: str, port: int) -> Seen:
        nonlocal changed
        changed = trio.Event()
        async with open_raw_ws(host, port) as ws:
            if sends:
                await ws.send(sends)
            stream: trio.SocketStream = ws.stream
            if resets:
                reset(stream)
            else:
                await stream.aclose()
            await changed.wait()
        return seen[-1]

    with trio.fail_after(60):
        await nursery.start(serve_raw_ws_backend, A, backend_port, session)
        direct = await go(A, backend_port)
        async with open_gateway(config(gateway_port, backend_port), tmp_path) as gw:
            through = await go(GATEWAY, gateway_port)
            await gw.wait_for_log("closed by client (no Close)", 10)
    assert direct == Seen(sends, resets)
    assert through == direct
    assert "sent 1001" not in gw.log()


async def test_after_a_backend_fin_the_client_can_still_send(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """A half-close, as the backend did: it still reads what the client sends after."""
    seen: list[Seen] = []
    done = trio.Event()

    async def session(peer: RawPeer) -> None:
        await peer.send(FRAMES)
        await peer.stream.send_eof()
        seen.append(await backend_sees(peer))
        done.set()

    with trio.fail_after(60):
        await nursery.start(serve_raw_ws_backend, A, backend_port, session)
        async with open_gateway(config(gateway_port, backend_port), tmp_path) as gw:
            async with open_raw_ws(GATEWAY, gateway_port) as ws:
                await ws.receive_until_eof()
                assert (bytes(ws.received), ws.reset) == (FRAMES, False)
                await ws.send(CLIENT_FRAMES)
                await ws.stream.send_eof()
                await done.wait()
            await gw.wait_for_log("closed by backend (no Close)", 10)
    assert seen == [Seen(CLIENT_FRAMES, False)]



async def wss_client_sees(port: int, context: ssl.SSLContext) -> tuple[bytes, str]:
    """Through the HTTPS listener: the bytes after the 101, and how the TLS stream ended:
    "close_notify" (a clean TLS end), "reset" or "no close_notify" (TCP ended without one)."""
    stream = await trio.open_ssl_over_tcp_stream(
        GATEWAY, port, ssl_context=context, https_compatible=False
    )
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        await stream.send_all(
            (
                f"GET /ws HTTP/1.1\r\nHost: {GATEWAY}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        received = bytearray()
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError as exc:
                cause = exc.__cause__
                end = "reset" if isinstance(cause, ConnectionResetError) else "no close_notify"
                break
            if not data:
                end = "close_notify"
                break
            received += data
        head, _, rest = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return rest, end
    finally:
        await trio.aclose_forcefully(stream)


@pytest.mark.parametrize(("resets", "end"), [(True, "reset"), (False, "close_notify")])
async def test_over_tls_a_reset_sends_no_close_notify(
    nursery: trio.Nursery,
    tmp_path: Path,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
    client_ssl_context: ssl.SSLContext,
    resets: bool,
    end: str,
) -> None:
    """A backend reset reaches a wss client as a reset of its TCP connection, with no
    close_notify first; a backend FIN as TLS's own clean end, a close_notify and the
    end of the TCP connection (TLS has no half-close here)."""

    async def session(peer: RawPeer) -> None:
        await peer.send(FRAMES)
        if resets:
            reset(peer.stream)

    toml = gateway_toml(servers=[A], backend_port=backend_port, https_port=https_port, cert=cert_files)
    with trio.fail_after(60):
        await nursery.start(serve_raw_ws_backend, A, backend_port, session)
        async with open_gateway(toml, tmp_path) as gw:
            seen = await wss_client_sees(https_port, client_ssl_context)
            await gw.wait_for_log("closed by backend (no Close)", 10)
    assert seen == (FRAMES, end), seen
