"""WebSocket through a real gateway process: echo, handshake, close, idle timeout.

The pool's server is a test backend on 127.0.0.2 that answers HTTP and hands
upgrades under /ws to a trio-websocket echo (supporting the subprotocol
"superchat"). Clients are trio-websocket, h11 for exact handshakes, and the
`websockets` and aiohttp libraries as third-party clients.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
import trio
import trio_websocket
import websockets.sync.client

from tests.support.backends import HttpBackend, start_http_backends
from tests.support.clients import open_http, open_ws
from tests.support.gateway import CertFiles, gateway_toml, open_gateway

MiB = 1024 * 1024
GATEWAY = "127.0.0.1"
A = "127.0.0.2"
HANDSHAKE = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]


def ws_config(
    gateway_port: int,
    backend_port: int,
    *,
    https_port: int | None = None,
    cert: CertFiles | None = None,
    request_timeout: int = 20,
) -> str:
    return gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        https_port=https_port,
        cert=cert,
        request_timeout=request_timeout,
    )


async def start_ws_backend(nursery: trio.Nursery, port: int) -> HttpBackend:
    [backend] = await start_http_backends(nursery, [A], port, websocket=True, names=["ws"])
    return backend


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_echo_text_binary_and_16mib(
    nursery: trio.Nursery,
    tmp_path: Path,
    gateway_port: int,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
    client_ssl_context: ssl.SSLContext,
    scheme: str,
) -> None:
    big = os.urandom(16 * MiB + 5)
    big_text = "é" * (8 * MiB + 3)  # 16 MiB of UTF-8
    port = gateway_port if scheme == "ws" else https_port
    context = client_ssl_context if scheme == "wss" else None
    config = ws_config(gateway_port, backend_port, https_port=https_port, cert=cert_files)
    with trio.fail_after(90):
        backend = await start_ws_backend(nursery, backend_port)
        async with open_gateway(config, tmp_path):
            async with open_ws(
                f"{scheme}://{GATEWAY}:{port}/ws/echo?room=1",
                ssl_context=context,
                extra_headers=[(b"Origin", b"https://app.example.test")],
            ) as ws:
                await ws.send_message("hello")
                assert await ws.get_message() == "hello"
                await ws.send_message(b"\x00\xffbinary\x00")
                assert await ws.get_message() == b"\x00\xffbinary\x00"
                await ws.send_message(big)
                assert await ws.get_message() == big
                await ws.send_message(big_text)
                assert await ws.get_message() == big_text
    handshake = backend.requests_to("/ws")[-1]
    assert handshake.target == "/ws/echo?room=1"
    assert handshake.header("origin") == "https://app.example.test"
    assert handshake.header("sec-websocket-version") == "13"
    assert handshake.header("sec-websocket-key")
    assert handshake.header("x-forwarded-proto") == ("http" if scheme == "ws" else "https")


async def test_subprotocol_negotiation_passes_through(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        backend = await start_ws_backend(nursery, backend_port)
        async with open_gateway(ws_config(gateway_port, backend_port), tmp_path):
            url = f"ws://{GATEWAY}:{gateway_port}/ws"
            async with open_ws(url, subprotocols=["chat", "superchat"]) as ws:
                assert ws.subprotocol == "superchat"
                await ws.send_message("x")
                assert await ws.get_message() == "x"
            async with open_ws(url, subprotocols=["chat"]) as ws:
                assert ws.subprotocol is None
    offered = [r.header("sec-websocket-protocol") for r in backend.requests_to("/ws")]
    assert offered == ["chat, superchat", "chat"]


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_backend_close_code_and_reason_reach_the_client(
    nursery: trio.Nursery,
    tmp_path: Path,
    gateway_port: int,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
    client_ssl_context: ssl.SSLContext,
    scheme: str,
) -> None:
    port = gateway_port if scheme == "ws" else https_port
    config = ws_config(gateway_port, backend_port, https_port=https_port, cert=cert_files)
    server_closed = trio.Event()
    with trio.fail_after(30):
        await start_ws_backend(nursery, backend_port)
        async with open_gateway(config, tmp_path):
            async with open_ws(
                f"{scheme}://{GATEWAY}:{port}/ws",
                ssl_context=client_ssl_context,
                server_closed=server_closed,
            ) as ws:
                await ws.send_message("close:4001:bye")
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await ws.get_message()
                # The backend ended its connection after the close handshake;
                # the client must see its own end promptly, as without the
                # gateway (a client otherwise waits for its close timeout).
                with trio.move_on_after(2):
                    await server_closed.wait()
                assert server_closed.is_set(), "the gateway kept the client connection open"
    assert info.value.reason is not None
    assert (info.value.reason.code, info.value.reason.reason) == (4001, "bye")


async def test_idle_timeout_closes_a_silent_tunnel(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 1
    with trio.fail_after(30):
        await start_ws_backend(nursery, backend_port)
        config = ws_config(gateway_port, backend_port, request_timeout=timeout)
        async with open_gateway(config, tmp_path):
            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws") as ws:
                await ws.send_message("last words")
                assert await ws.get_message() == "last words"
                silent_since = trio.current_time()
                with trio.fail_after(timeout + 3):
                    with pytest.raises(trio_websocket.ConnectionClosed) as info:
                        await ws.get_message()
                silence = trio.current_time() - silent_since
    assert silence >= timeout * 0.9, f"closed after {silence:.2f} s of silence"
    # The gateway should end it with a Close frame (1001); a dropped TCP
    # connection shows as 1006. Either way the tunnel is closed in time.
    assert info.value.reason is not None


async def test_tunnel_with_traffic_outlives_the_idle_timeout(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 1
    with trio.fail_after(30):
        await start_ws_backend(nursery, backend_port)
        config = ws_config(gateway_port, backend_port, request_timeout=timeout)
        async with open_gateway(config, tmp_path):
            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws") as ws:
                start = trio.current_time()
                n = 0
                # At least 8 exchanges, over at least 3.5 idle timeouts.
                while n < 8 or trio.current_time() - start < 3.5 * timeout:
                    await ws.send_message(f"tick {n}")
                    assert await ws.get_message() == f"tick {n}"
                    n += 1
                    await trio.sleep(timeout / 4)  # pacing the traffic, well inside the timeout
                await ws.send_message("still here")
                assert await ws.get_message() == "still here"


async def test_non_101_answer_is_an_ordinary_response(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_ws_backend(nursery, backend_port)
        async with open_gateway(ws_config(gateway_port, backend_port), tmp_path):
            # The backend answers handshakes outside /ws as plain HTTP.
            async with open_http(GATEWAY, gateway_port) as client:
                response = await client.get("/echo", HANDSHAKE)
                assert response.status == 200
                forwarded = dict(response.json()["headers"])
                assert forwarded.get("upgrade") == "websocket"
                assert forwarded.get("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
                if client.reusable:  # an ordinary response: the connection stays HTTP
                    assert (await client.get("/echo")).status == 200
            with pytest.raises(trio_websocket.ConnectionRejected) as info:
                async with open_ws(f"ws://{GATEWAY}:{gateway_port}/status/403"):
                    pass
    assert info.value.status_code == 403


async def test_h2c_upgrade_is_not_forwarded(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        backend = await start_ws_backend(nursery, backend_port)
        async with open_gateway(ws_config(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                response = await client.get(
                    "/echo",
                    [
                        ("Connection", "Upgrade, HTTP2-Settings"),
                        ("Upgrade", "h2c"),
                        ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
                    ],
                )
    assert response.status == 200
    received = backend.requests_to("/echo")[-1]
    assert received.header("upgrade") is None
    assert received.header("http2-settings") is None


async def test_third_party_clients(
    nursery: trio.Nursery,
    tmp_path: Path,
    gateway_port: int,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
    client_ssl_context: ssl.SSLContext,
) -> None:
    big = os.urandom(2 * MiB)

    def with_websockets(url: str) -> tuple[str | None, object, object]:
        with websockets.sync.client.connect(
            url,
            ssl=client_ssl_context if url.startswith("wss") else None,
            subprotocols=["superchat"],  # type: ignore[list-item]
            proxy=None,
            max_size=None,
            open_timeout=10,
            close_timeout=3,
        ) as ws:
            ws.send("from websockets")
            text = ws.recv(timeout=10)
            ws.send(big)
            data = ws.recv(timeout=10)
            return ws.subprotocol, text, data

    def with_aiohttp(url: str) -> tuple[str | None, object]:
        async def main() -> tuple[str | None, object]:
            async with aiohttp.ClientSession(trust_env=False) as session:
                async with session.ws_connect(url, protocols=["superchat"], max_msg_size=0) as ws:
                    await ws.send_str("from aiohttp")
                    message = await ws.receive(timeout=10)
                    return ws.protocol, message.data

        return asyncio.run(main())

    config = ws_config(gateway_port, backend_port, https_port=https_port, cert=cert_files)
    with trio.fail_after(60):
        await start_ws_backend(nursery, backend_port)
        async with open_gateway(config, tmp_path):
            for url in (f"ws://{GATEWAY}:{gateway_port}/ws", f"wss://{GATEWAY}:{https_port}/ws"):
                result = await trio.to_thread.run_sync(with_websockets, url)
                assert result == ("superchat", "from websockets", big), url
            aio = await trio.to_thread.run_sync(with_aiohttp, f"ws://{GATEWAY}:{gateway_port}/ws")
            assert aio == ("superchat", "from aiohttp")
