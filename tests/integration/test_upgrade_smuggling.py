"""Upgrade smuggling: no raw channel to a backend past the gateway's routing.

Only a proper WebSocket handshake (GET, `Upgrade: websocket`, `Connection:
upgrade`, `Sec-WebSocket-Version: 13`, a key that is base64 of 16 bytes)
may start an upgrade, and the gateway tunnels only when the backend answers
101 with `Upgrade: websocket` and the matching Sec-WebSocket-Accept.
Anything else from the backend is a 502 and that backend connection is
dropped.

The backend here is scripted to switch far too eagerly: it answers 101 to
anything that carries an Upgrade header. The gateway's routing sends
/internal/* to a redirect, so a request for /internal that reaches the
backend at all went around the routing.
"""

from __future__ import annotations

import base64
import hashlib
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.support.gateway import open_gateway, toml_table
from tests.support.hostile import (
    RawReader,
    ResponseReader,
    ScriptedBackend,
    ended_by_peer,
    handshake_request,
    header,
    open_raw,
    parse_head,
    send_quietly,
    serve_scripted_backend,
    websocket_key,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def routed_config(gateway_port: int, backend_port: int) -> str:
    return "\n".join(
        [
            toml_table(
                "listeners.http", {"protocol": "http", "address": GATEWAY, "port": gateway_port}
            ),
            toml_table("pools.web", {"servers": [A]}),
            toml_table(
                "settings.web", {"port": backend_port, "protocol": "http", "request_timeout": 5}
            ),
            toml_table(
                "redirects.internal",
                {
                    "redirect_type": "found",
                    "target_url": "https://example.invalid/",
                    "include_path": False,
                },
            ),
            toml_table("path_maps.www", {"default_pool": "web", "default_setting": "web"}),
            "[[path_maps.www.rules]]\n"
            'name = "internal"\npaths = ["/internal/*"]\nredirect = "internal"\n',
            toml_table(
                "rules.http",
                {"listener": "http", "kind": "path", "priority": 100, "path_map": "www"},
            ),
        ]
    )


async def eager_backend(
    backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader
) -> None:
    """Switches on any Upgrade header; /bare and /wrong-accept answer broken 101s.

    /refuse answers an upgrade 426 and /ignore answers it 200, both without
    switching (the connection stays HTTP).
    """
    while True:
        head, headers = await backend.read_request(reader)
        target = head.split(b" ", 2)[1]
        key = header(headers, b"sec-websocket-key") or b""
        upgrade = header(headers, b"upgrade")
        if target.startswith(b"/bare"):
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n"
            )
        elif target.startswith(b"/wrong-accept"):
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept_for(b"not the key") + b"\r\n\r\n"
            )
        elif target.startswith(b"/ignore"):
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            continue
        elif target.startswith(b"/refuse"):
            await stream.send_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope")
            continue
        elif upgrade is not None or target.startswith(b"/always-101"):
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                + (upgrade or b"websocket")
                + b"\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_for(key)
                + b"\r\n\r\n"
            )
        else:
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            continue
        # Switched (or claimed to): echo raw bytes until the gateway lets go.
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(b"ECHO:" + data)
        finally:
            backend.peer_closed += 1
            backend.changed()
        return


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int):
    backend = await nursery.start(partial(serve_scripted_backend, A, backend_port, eager_backend))
    async with open_gateway(routed_config(gateway_port, backend_port), tmp_path, workers=1):
        yield gateway_port, backend


async def status_of_exchange(port: int, data: bytes) -> int | None:
    """Send raw bytes on a fresh connection; the status of the answer (None: closed)."""
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        reader.expect(data.split(b" ", 1)[0])
        await send_quietly(stream, data)
        with trio.fail_after(10):
            response = await reader.read()
        return response.status if response else None


NOT_HANDSHAKES = {
    "no Connection: upgrade": handshake_request("/ws", connection=b"keep-alive"),
    "Upgrade: h2c": handshake_request("/ws", upgrade=b"h2c"),
    "Upgrade: websocket2": handshake_request("/ws", upgrade=b"websocket2"),
    "POST": handshake_request("/ws", method="POST"),
    "version 12": handshake_request("/ws", version=b"12"),
    "key not base64": handshake_request("/ws", key=b"!!!!not-base64!!!!!!!=="),
    "key of 15 bytes": handshake_request("/ws", key=base64.b64encode(b"x" * 15)),
    "key of 17 bytes": handshake_request("/ws", key=base64.b64encode(b"x" * 17)),
    "no key": b"GET /ws HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",
    "HTTP/1.0": handshake_request("/ws").replace(b"HTTP/1.1", b"HTTP/1.0", 1),
}


async def test_only_a_proper_handshake_upgrades(gateway) -> None:
    port, backend = gateway
    failures = []
    with trio.fail_after(40):
        for variant, request in NOT_HANDSHAKES.items():
            seen = len(backend.heads)
            async with open_raw(GATEWAY, port) as stream:
                reader = ResponseReader(stream)
                reader.expect(request.split(b" ", 1)[0])
                await stream.send_all(request)
                with trio.fail_after(8):
                    response = await reader.read()
            if response is None:
                failures.append(f"{variant}: closed without an answer")
            elif response.status == 101:
                failures.append(f"{variant}: the gateway switched protocols")
            elif response.status not in (200, 400, 405, 426, 501):
                failures.append(f"{variant}: answered {response.status}")
            for head in backend.heads[seen:]:
                _, headers = parse_head(head)
                if header(headers, b"upgrade") is not None:
                    failures.append(f"{variant}: Upgrade reached the backend: {head!r}")
    assert not failures, "\n".join(failures)


async def test_a_proper_handshake_tunnels(gateway) -> None:
    port, backend = gateway
    with trio.fail_after(15):
        async with open_raw(GATEWAY, port) as stream:
            reader = ResponseReader(stream)
            reader.expect()
            await stream.send_all(handshake_request("/ws", key=websocket_key(3)))
            with trio.fail_after(8):
                response = await reader.read()
            assert response is not None and response.status == 101, response
            assert response.header(b"sec-websocket-accept") == accept_for(websocket_key(3))
            await stream.send_all(b"raw frame bytes")
            echoed = bytes(reader.conn.trailing_data[0])
            while len(echoed) < len(b"ECHO:raw frame bytes"):
                echoed += await stream.receive_some(65536)
    assert echoed == b"ECHO:raw frame bytes"


@pytest.mark.parametrize(
    "target,request_bytes",
    [
        ("bare 101", handshake_request("/bare")),
        ("101 with a wrong accept", handshake_request("/wrong-accept")),
        ("101 to a plain GET", b"GET /always-101 HTTP/1.1\r\nHost: g\r\n\r\n"),
    ],
    ids=["bare-101", "wrong-accept", "101-to-plain-get"],
)
async def test_a_bad_101_is_a_502_and_drops_the_backend_connection(
    gateway, target: str, request_bytes: bytes
) -> None:
    port, backend = gateway
    with trio.fail_after(15):
        async with open_raw(GATEWAY, port) as stream:
            reader = ResponseReader(stream)
            reader.expect()
            await stream.send_all(request_bytes)
            with trio.fail_after(8):
                response = await reader.read()
            assert response is not None and response.status == 502, f"{target}: {response}"
            # Bytes sent now must not reach the backend through a tunnel.
            await send_quietly(stream, b"GET /internal/secret HTTP/1.1\r\nHost: g\r\n\r\n")
            await ended_by_peer(stream, 1)
        await backend.wait_for(lambda b: b.peer_closed >= 1, 5)
    assert not any(b"/internal" in head for head in backend.heads), backend.heads


@pytest.mark.parametrize("refusal", ["/refuse", "/ignore"], ids=["426", "200"])
async def test_no_smuggling_through_a_failed_upgrade(gateway, refusal: str) -> None:
    """The classic: an upgrade the backend does not take, and a second request behind it."""
    port, backend = gateway
    smuggled = b"GET /internal/admin HTTP/1.1\r\nHost: g\r\nX-Smuggled: yes\r\n\r\n"
    with trio.fail_after(15):
        async with open_raw(GATEWAY, port) as stream:
            reader = ResponseReader(stream)
            reader.expect()
            await stream.send_all(handshake_request(refusal) + smuggled)
            with trio.fail_after(8):
                first = await reader.read()
            assert first is not None and first.status in (200, 426), first
            second = None
            if first.keep_alive:
                reader.expect()
                with trio.fail_after(8):
                    second = await reader.read()
            else:
                await ended_by_peer(stream, 2)
    # The second request went through routing (a redirect), or nowhere.
    assert second is None or second.status == 302, second
    assert not any(b"/internal" in head for head in backend.heads), [
        h for h in backend.heads if b"/internal" in h
    ]


async def test_a_switched_backend_connection_is_never_pooled(gateway) -> None:
    """After a 502 for a bad 101, the next request gets a fresh backend connection."""
    port, backend = gateway
    with trio.fail_after(15):
        assert await status_of_exchange(port, handshake_request("/wrong-accept")) == 502
        before = backend.connections
        assert await status_of_exchange(port, b"GET /plain HTTP/1.1\r\nHost: g\r\n\r\n") == 200
    assert backend.connections == before + 1
