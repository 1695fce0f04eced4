"""With `close_on_peer_loss`, a tunnel whose peer dies gets the other side a Close frame.

The peer that dies is a real process killed with SIGKILL, so its
connection ends as the kernel ends it, with no Close frame. With the
setting's `close_on_peer_loss = true`, a backend that dies reaches the
client as a Close with 1014 (Bad Gateway); a client that dies reaches the
backend as a Close with 1001 (Going Away). Either way the gateway logs the
tunnel's end once, with who closed it and the code. (Without the option the
end passes on as it came: test_tunnel_peer_loss.py.)

The clients here are the `websockets` library: clients built on wsproto
(trio-websocket among them) refuse 1014 as a reserved code they do not know.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio
import websockets.exceptions
import websockets.sync.client

from tests.support.gateway import CertFiles, gateway_toml, open_gateway
from tests.support.load import (
    OP_CLOSE,
    OP_TEXT,
    Frame,
    RawPeer,
    describe_frames,
    serve_raw_ws_backend,
)
from tests.support.peers import open_backend_process, open_client_process

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


def config(gateway_port: int, backend_port: int, https_port: int, cert: CertFiles) -> str:
    return gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        https_port=https_port,
        cert=cert,
        setting={"close_on_peer_loss": True},
    )


def hold_until_closed(url: str, context: ssl.SSLContext | None, opened: trio.Event) -> int | None:
    """Echo once, then wait for the end; the code of the Close frame received, if any."""
    with websockets.sync.client.connect(
        url, ssl=context, proxy=None, open_timeout=10, close_timeout=3
    ) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        trio.from_thread.run_sync(opened.set)
        try:
            message = ws.recv(timeout=20)
        except websockets.exceptions.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
        raise AssertionError(f"a message from a dead backend: {message!r}")


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_a_killed_backend_reaches_the_client_as_1014(
    tmp_path: Path,
    gateway_port: int,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
    client_ssl_context: ssl.SSLContext,
    scheme: str,
) -> None:
    port = gateway_port if scheme == "ws" else https_port
    url = f"{scheme}://{GATEWAY}:{port}/ws"
    context = client_ssl_context if scheme == "wss" else None
    codes: list[int | None] = []
    opened = trio.Event()

    async def client() -> None:
        codes.append(await trio.to_thread.run_sync(hold_until_closed, url, context, opened))

    with trio.fail_after(60):
        async with open_backend_process(A, backend_port) as backend:
            async with open_gateway(
                config(gateway_port, backend_port, https_port, cert_files), tmp_path
            ) as gw:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client)
                    await opened.wait()
                    backend.kill()
                await gw.wait_for_log("closed by backend (1014)", 10)
    # Without the gateway's Close the client would report 1006 (no Close frame received).
    assert codes == [1014]
    assert (
        "backend closed the connection without a Close frame; sent 1014 to the client" in gw.log()
    )


async def test_a_killed_client_reaches_the_backend_as_1001(
    nursery: trio.Nursery,
    tmp_path: Path,
    gateway_port: int,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
) -> None:
    def closed(peer: RawPeer) -> bool:
        return any(f.opcode == OP_CLOSE for f in peer.frames()[0])

    async def until_closed(peer: RawPeer) -> None:
        await peer.receive_until(lambda frames: any(f.opcode == OP_CLOSE for f in frames))

    with trio.fail_after(60):
        backend = await nursery.start(serve_raw_ws_backend, A, backend_port, until_closed)
        async with open_gateway(
            config(gateway_port, backend_port, https_port, cert_files), tmp_path
        ) as gw:
            async with open_client_process(f"ws://{GATEWAY}:{gateway_port}/ws") as client:
                peer = await backend.wait_for_peer()
                await peer.wait_for(lambda p: len(p.frames()[0]) >= 1)  # the client's "hello"
                client.kill()
                frames: list[Frame] = await peer.wait_for(closed)
            await gw.wait_for_log("closed by client (1001)", 10)
    assert [f.opcode for f in frames] == [OP_TEXT, OP_CLOSE], describe_frames(frames)
    assert frames[0].payload == b"hello"
    assert frames[1].close_code == 1001 and frames[1].masked
    assert (
        "client closed the connection without a Close frame; sent 1001 to the backend" in gw.log()
    )
