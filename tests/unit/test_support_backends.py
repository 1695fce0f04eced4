"""The test kit itself: backends, echo server, clients and helpers, without a gateway.

When a gateway test fails, these say whether the backend or client it used
behaves as the test assumes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket

from tests.support import backends, clients, gateway, ports, wsecho
from tests.support.backends import pattern_blocks, pattern_sha256, serve_http_backend
from tests.support.clients import IncompleteResponse, open_http, open_ws

MiB = 1024 * 1024


async def start_backend(nursery: trio.Nursery, **kwargs: Any) -> backends.HttpBackend:
    return await nursery.start(
        lambda task_status: serve_http_backend("127.0.0.2", 0, task_status=task_status, **kwargs)
    )


# -- payloads -------------------------------------------------------------------


def test_pattern_is_deterministic_and_seeded() -> None:
    size = 3 * backends.BLOCK + 17
    data = b"".join(pattern_blocks(size, seed=7))
    assert len(data) == size
    assert data == b"".join(pattern_blocks(size, seed=7))
    assert data != b"".join(pattern_blocks(size, seed=8))
    assert pattern_sha256(size, 7) == hashlib.sha256(data).hexdigest()


# -- HTTP backend ---------------------------------------------------------------


async def test_root_names_instance_and_keeps_connection_alive(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery, name="alpha")
        async with open_http(backend.host, backend.port) as client:
            for _ in range(3):
                response = await client.get("/")
                assert response.status == 200
                assert response.text() == "backend alpha\n"
                assert response.header("x-backend") == "alpha"
                assert client.reusable
        assert backend.connections == 1
        assert len(backend.requests) == 3
        assert backend.connections_used_by("/") == {1}


async def test_echo_reports_method_headers_and_body(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery, name="e")
        async with open_http(backend.host, backend.port) as client:
            response = await client.request(
                "PUT", "/echo?x=1", headers=[("X-Test", "yes")], body=b"hello"
            )
        document = response.json()
        assert document["method"] == "PUT"
        assert document["target"] == "/echo?x=1"
        assert ["x-test", "yes"] in document["headers"]
        assert document["body_bytes"] == 5
        assert backend.last_request is not None
        assert backend.last_request.header("X-Test") == "yes"
        assert backend.last_request.path == "/echo"


@pytest.mark.parametrize("chunked", [False, True])
async def test_upload_streams_either_framing(nursery: trio.Nursery, chunked: bool) -> None:
    size = 5 * MiB + 3
    with trio.fail_after(20):
        backend = await start_backend(nursery)
        async with open_http(backend.host, backend.port) as client:
            response = await client.request(
                "POST",
                "/upload",
                body=pattern_blocks(size, seed=3),
                chunked=chunked,
                content_length=None if chunked else size,
            )
        document = response.json()
        assert document["bytes"] == size
        assert document["sha256"] == pattern_sha256(size, 3)
        assert document["framing"] == ("chunked" if chunked else "content-length")


@pytest.mark.parametrize("chunked", [False, True])
async def test_download_streams_either_framing(nursery: trio.Nursery, chunked: bool) -> None:
    size = 5 * MiB + 11
    with trio.fail_after(20):
        backend = await start_backend(nursery)
        digest = hashlib.sha256()
        async with open_http(backend.host, backend.port) as client:
            response = await client.request(
                "GET", f"/download?size={size}&seed=9&chunked={int(chunked)}", sink=digest.update
            )
        assert response.status == 200
        assert response.body_bytes == size
        assert digest.hexdigest() == pattern_sha256(size, 9)
        if chunked:
            assert response.header("transfer-encoding") == "chunked"
        else:
            assert response.header("content-length") == str(size)


async def test_status_and_slow(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery)
        async with open_http(backend.host, backend.port) as client:
            assert (await client.get("/status/503")).status == 503
            no_content = await client.get("/status/204")
            assert no_content.status == 204 and no_content.body == b""
            assert (await client.get("/nowhere")).status == 404
            start = trio.current_time()
            assert (await client.get("/slow?delay=0.3")).status == 200
            assert trio.current_time() - start >= 0.3


async def test_garbage_is_not_http(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery)
        async with open_http(backend.host, backend.port) as client:
            with pytest.raises(IncompleteResponse) as info:
                await client.get("/garbage")
        assert info.value.status is None


async def test_close_mid_body_aborts(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery)
        async with open_http(backend.host, backend.port) as client:
            head_and_body = client.request("GET", "/close-mid-body", sink=lambda _data: None)
            with pytest.raises(IncompleteResponse) as info:
                await head_and_body
        assert info.value.status == 200
        assert info.value.received < backends.CLOSE_MID_BODY_LENGTH


async def test_silent_backend_never_answers(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        silent = await nursery.start(backends.serve_silent_backend, "127.0.0.2", 0)
        async with open_http(silent.host, silent.port) as client:
            await client.send_head("GET", "/")
            await client.end_request()
            with trio.move_on_after(0.5) as waited:
                await client.read_response()
            assert waited.cancelled_caught
        assert silent.connections == 1
        assert silent.bytes_received > 0


async def test_backend_over_tls(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with trio.fail_after(10):
        backend = await nursery.start(
            lambda task_status: serve_http_backend(
                "127.0.0.1", 0, name="tls", ssl_context=server_ssl_context, task_status=task_status
            )
        )
        async with open_http(backend.host, backend.port, ssl_context=client_ssl_context) as client:
            assert (await client.get("/")).text() == "backend tls\n"


async def test_wait_for_request(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery)

        async def later() -> None:
            async with open_http(backend.host, backend.port) as client:
                await client.get("/slow?delay=0.2")

        nursery.start_soon(later)
        seen = await backend.wait_for_request("/slow", timeout=5)
        assert seen.method == "GET"


async def test_stop_closes_the_port(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery)
        await ports.wait_for_port(backend.host, backend.port, 5)
        backend.stop()
        await ports.wait_for_port_closed(backend.host, backend.port, 5)


# -- WebSocket ------------------------------------------------------------------


async def check_echo(url: str, ssl_context: ssl.SSLContext | None = None) -> None:
    async with open_ws(url, ssl_context=ssl_context, subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "superchat"
        await ws.send_message("hello")
        assert await ws.get_message() == "hello"
        await ws.send_message(b"\x00\x01binary")
        assert await ws.get_message() == b"\x00\x01binary"
        await ws.send_message("close:4001:bye")
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
        assert info.value.reason is not None
        assert (info.value.reason.code, info.value.reason.reason) == (4001, "bye")


async def test_ws_echo_server(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = await nursery.start(wsecho.serve_ws_echo, "127.0.0.2", 0)
        await check_echo(f"ws://{server.host}:{server.port}/chat")
        assert server.handshakes[0].path == "/chat"
        assert server.handshakes[0].subprotocol == "superchat"


async def test_ws_echo_server_without_common_subprotocol(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = await nursery.start(wsecho.serve_ws_echo, "127.0.0.2", 0)
        async with open_ws(f"ws://{server.host}:{server.port}/", subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
            await ws.send_message("x")
            assert await ws.get_message() == "x"


async def test_http_backend_hands_upgrades_to_echo(nursery: trio.Nursery) -> None:
    with trio.fail_after(20):
        backend = await start_backend(nursery, name="ws", websocket=True)
        await check_echo(f"ws://{backend.host}:{backend.port}/ws")
        async with open_ws(f"ws://{backend.host}:{backend.port}/ws/big") as ws:
            big = os.urandom(16 * MiB)
            await ws.send_message(big)
            assert await ws.get_message() == big
        handshake = backend.requests_to("/ws")[0]
        assert handshake.header("upgrade") == "websocket"
        assert handshake.header("sec-websocket-protocol") == "chat, superchat"
        assert backend.ws is not None and backend.ws.messages >= 3


async def test_http_backend_upgrade_after_plain_request_on_same_connection(
    nursery: trio.Nursery,
) -> None:
    # A gateway may send a handshake on a backend connection it reused.
    with trio.fail_after(10):
        backend = await start_backend(nursery, websocket=True)
        stream = await trio.open_tcp_stream(backend.host, backend.port)
        client = clients.HttpClient(stream, f"{backend.host}:{backend.port}")
        assert (await client.get("/")).status == 200
        async with trio.open_nursery() as inner:
            ws = await trio_websocket.wrap_client_stream(inner, stream, backend.host, "/ws")
            await ws.send_message("again")
            assert await ws.get_message() == "again"
            await ws.aclose()
        assert backend.connections == 1


async def test_http_backend_answers_upgrade_outside_ws_paths_as_http(
    nursery: trio.Nursery,
) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery, websocket=True)
        async with open_http(backend.host, backend.port) as client:
            response = await client.get(
                "/echo",
                headers=[
                    ("Connection", "Upgrade"),
                    ("Upgrade", "websocket"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                ],
            )
            assert response.status == 200
            assert (await client.get("/")).status == 200


# -- clients, ports, gateway helpers -----------------------------------------------


async def test_raw_exchange_and_status_of(nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        backend = await start_backend(nursery)
        raw = await clients.raw_exchange(
            backend.host, backend.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert clients.status_of(raw) == 200
        with pytest.raises(ValueError):
            clients.status_of(b"garbage")


async def test_free_port_is_common_to_hosts_and_wait_for_port() -> None:
    port = ports.free_port("127.0.0.2", "127.0.0.3")
    for host in ("127.0.0.2", "127.0.0.3"):
        with socket.socket() as s:
            s.bind((host, port))
    with trio.fail_after(5):
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.2")
        await ports.wait_for_port("127.0.0.2", port, 2)
        await listeners[0].aclose()
        await ports.wait_for_port_closed("127.0.0.2", port, 2)


def test_free_ports_differ_and_stay_below_the_ephemeral_range() -> None:
    """No client socket's ephemeral port can take a chosen port before it is bound."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chosen = [ports.free_port("127.0.0.1") for _ in range(20)]
    assert len(set(chosen)) == len(chosen), chosen
    assert all(ports.LOWEST <= port < ephemeral for port in chosen), chosen


def test_gateway_toml_shape(cert_files: gateway.CertFiles) -> None:
    text = gateway.gateway_toml(
        servers=["127.0.0.2", "127.0.0.3"],
        backend_port=8080,
        http_port=8000,
        https_port=8443,
        cert=cert_files,
        request_timeout=2,
        limits={"connect_timeout": 1},
    )
    config = tomllib.loads(text)
    assert config["listeners"]["http"] == {"protocol": "http", "address": "127.0.0.1", "port": 8000}
    assert config["listeners"]["https"]["certificate"] == "site"
    assert config["certificates"]["site"]["cert"] == str(cert_files.cert)
    assert config["pools"]["web"]["servers"] == ["127.0.0.2", "127.0.0.3"]
    assert config["settings"]["web"] == {"port": 8080, "protocol": "http", "request_timeout": 2}
    assert config["gateway"]["limits"] == {"connect_timeout": 1}
    assert {r["listener"] for r in config["rules"].values()} == {"http", "https"}
    assert cert_files.key.read_bytes().startswith(b"-----BEGIN")


def test_process_helpers_see_children_and_listening_sockets() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        port = listener.getsockname()[1]
        inodes = gateway.listening_inodes("127.0.0.2", port)
        assert inodes == {os.fstat(listener.fileno()).st_ino}
        assert inodes <= gateway.socket_inodes_of(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in gateway.child_pids(os.getpid())
        assert gateway.pid_alive(child.pid)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not gateway.pid_alive(child.pid)
    assert child.pid not in gateway.child_pids(os.getpid())


async def test_open_gateway_reports_a_gateway_that_cannot_start(tmp_path: Path) -> None:
    # Whatever state the CLI is in, a configuration that does not parse never
    # becomes ready: open_gateway must say so with the log, not hang.
    with trio.fail_after(40):
        with pytest.raises(gateway.GatewayNotReady):
            async with gateway.open_gateway("this is [not toml", tmp_path, ready_timeout=20):
                pass


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
async def test_server_close_ends_the_client_connection_promptly(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    tls: bool,
) -> None:
    # What a client sees without a gateway: the reference for the gateway tests.
    with trio.fail_after(10):
        backend = await nursery.start(
            lambda task_status: serve_http_backend(
                "127.0.0.1",
                0,
                websocket=True,
                ssl_context=server_ssl_context if tls else None,
                task_status=task_status,
            )
        )
        server_closed = trio.Event()
        scheme = "wss" if tls else "ws"
        async with open_ws(
            f"{scheme}://127.0.0.1:{backend.port}/ws",
            ssl_context=client_ssl_context,
            server_closed=server_closed,
        ) as ws:
            await ws.send_message("close:4001:bye")
            with pytest.raises(trio_websocket.ConnectionClosed):
                await ws.get_message()
            with trio.fail_after(2):
                await server_closed.wait()
