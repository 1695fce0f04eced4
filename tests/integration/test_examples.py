"""The sample Application Gateway files in shared/examples: they load with no
"not implemented" warning, and both run.

The ARM template's pool is 127.0.1.4, 127.0.1.5 and the host name localhost,
on backend port 80; its listeners are on frontend ports 80 and 443. The test
runs it with `--bind 127.0.0.9 --port 80=<free> --port 443=<free>` in front
of test backends bound to those three addresses on port 80 (the suite runs
as root).

The multi-site file (az-show-multisite.json) runs the same way, in front of
its chat pool (127.0.2.4 and 127.0.2.5 on port 8080) and its api pool
(localhost, HTTPS on port 443, with the file's own certificate, which its
trusted root certificate verifies). It is tried as a new user would: a path
in capitals reaches the api pool, the affinity cookie comes with its CORS
twin, and the backends see X-Original-URL and X-AppGW-Trace-Id.
"""

from __future__ import annotations

import base64
import errno
import json
import re
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from appgw.config.certs import pfx_to_pem
from tests.support.backends import HttpBackend, serve_http_backend
from tests.support.clients import open_http, open_ws_at
from tests.support.gateway import open_gateway, run_cli
from tests.support.ports import free_port

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "examples"
ARM_TEMPLATE = EXAMPLES / "arm-template-websocket.json"
AZ_SHOW = EXAMPLES / "az-show-multisite.json"
FRONTEND = "127.0.0.9"
POOL = {"127.0.1.4": "pool-1.4", "127.0.1.5": "pool-1.5", "127.0.0.1": "pool-localhost"}
BACKEND_PORT = 80
CHAT_POOL = {"127.0.2.4": "chat-a", "127.0.2.5": "chat-b"}
CHAT_PORT = 8080
API_SERVER, API_PORT = "127.0.0.1", 443  # fqdn localhost, api-settings' port
HEX32 = re.compile(r"[0-9a-f]{32}")
# The examples' fixed addresses and ports: one test at a time (pytest-xdist).
pytestmark = pytest.mark.xdist_group("examples")


@pytest.mark.parametrize("example", [ARM_TEMPLATE, AZ_SHOW], ids=lambda p: p.name)
async def test_example_passes_check(tmp_path: Path, example: Path) -> None:
    assert example.is_file(), f"missing example {example}"
    with trio.fail_after(30):
        result = await run_cli("check", "-c", str(example), cwd=tmp_path)
    assert result.returncode == 0, result
    assert "not implemented" not in result.output, result


def example_ca_context() -> ssl.SSLContext:
    """Trust for the template's certificate (issued for localhost by the example CA).

    The ARM template ships no chain; az-show-multisite.json carries the same
    example CA as a trusted root certificate, so the test verifies against it.
    """
    document = json.loads(AZ_SHOW.read_text())
    roots = document["properties"]["trustedRootCertificates"]
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(cadata=base64.b64decode(roots[0]["properties"]["data"]))
    return context


async def start_pool(nursery: trio.Nursery) -> list[HttpBackend]:
    started = []
    for host, name in POOL.items():
        try:
            backend = await nursery.start(
                partial(serve_http_backend, host, BACKEND_PORT, name=name, websocket=True)
            )
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            pytest.fail(
                f"{host}:{BACKEND_PORT} {reason}: the ARM template's pool needs a backend there"
            )
        started.append(backend)
    return started


async def test_arm_template_runs(nursery: trio.Nursery, tmp_path: Path) -> None:
    assert ARM_TEMPLATE.is_file(), f"missing example {ARM_TEMPLATE}"
    http_port = free_port(FRONTEND)
    while (https_port := free_port(FRONTEND)) == http_port:
        pass
    ports = ["--bind", FRONTEND, "--port", f"80={http_port}", "--port", f"443={https_port}"]
    trust = example_ca_context()
    with trio.fail_after(60):
        pool = await start_pool(nursery)
        async with open_gateway(ARM_TEMPLATE, tmp_path, extra_args=ports):
            # HTTP: one client connection, round robin over the three servers.
            async with open_http(FRONTEND, http_port) as client:
                answers = [(await client.get("/")) for _ in range(6)]
            assert {a.status for a in answers} == {200}
            assert {a.text().strip() for a in answers} == {f"backend {n}" for n in POOL.values()}

            # HTTPS with the template's certificate for localhost.
            async with open_http(
                FRONTEND, https_port, ssl_context=trust, server_hostname="localhost"
            ) as client:
                echo = (await client.get("/echo")).json()
            assert dict(echo["headers"])["x-forwarded-proto"] == "https"

            # WebSocket through both listeners.
            for port, context in ((http_port, None), (https_port, trust)):
                async with open_ws_at(
                    FRONTEND,
                    port,
                    "/ws",
                    ssl_context=context,
                    server_hostname="localhost" if context else None,
                    subprotocols=["superchat"],
                ) as ws:
                    assert ws.subprotocol == "superchat"
                    await ws.send_message("through the template")
                    assert await ws.get_message() == "through the template"
                    await ws.send_message(b"\x01\x02" * 50_000)
                    assert await ws.get_message() == b"\x01\x02" * 50_000
    handshakes = [r for backend in pool for r in backend.requests_to("/ws")]
    assert len(handshakes) == 2


def multisite_certificate(directory: Path) -> ssl.SSLContext:
    """A server context with the multi-site file's own certificate (for localhost)."""
    document = json.loads(AZ_SHOW.read_text())
    certificate = document["properties"]["sslCertificates"][0]["properties"]
    cert_pem, key_pem = pfx_to_pem(
        base64.b64decode(certificate["data"]), certificate.get("password")
    )
    (directory / "api.pem").write_bytes(cert_pem)
    (directory / "api-key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "api.pem", directory / "api-key.pem")
    return context


async def bind_backend(nursery: trio.Nursery, host: str, port: int, **options: Any) -> HttpBackend:
    try:
        backend: HttpBackend = await nursery.start(
            partial(serve_http_backend, host, port, **options)
        )
    except OSError as exc:
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
        pytest.fail(f"{host}:{port} {reason}: the multi-site file's pool needs a backend there")
    return backend


async def test_multisite_behaves_as_documented(nursery: trio.Nursery, tmp_path: Path) -> None:
    http_port = free_port(FRONTEND)
    while (https_port := free_port(FRONTEND)) == http_port:
        pass
    ports = ["--bind", FRONTEND, "--port", f"80={http_port}", "--port", f"443={https_port}"]
    trust = example_ca_context()
    with trio.fail_after(60):
        chat = [
            await bind_backend(nursery, host, CHAT_PORT, name=name, websocket=True)
            for host, name in CHAT_POOL.items()
        ]
        api = await bind_backend(
            nursery, API_SERVER, API_PORT, name="api", ssl_context=multisite_certificate(tmp_path)
        )
        async with open_gateway(AZ_SHOW, tmp_path, extra_args=ports):
            # www.contoso.com: "/API/x" matches the path rule "/api/*" (path
            # rules are case-insensitive); the override "/v2/" replaces "/API/".
            async with open_http(
                FRONTEND,
                https_port,
                ssl_context=trust,
                server_hostname="www.contoso.com",
                authority="www.contoso.com",
            ) as client:
                to_api = await client.get("/API/x?q=1")
                client_ip = client.local_address[0]
            assert to_api.header("x-backend") == "api"
            seen = api.requests_to("/v2/")[-1]
            assert seen.target == "/v2/x?q=1"
            assert seen.header("host") == "localhost"  # pickHostNameFromBackendAddress
            assert seen.header("x-original-url") == "/API/x?q=1"
            assert HEX32.fullmatch(seen.header("x-appgw-trace-id") or "")
            assert seen.header("x-client-ip") == client_ip  # the api-headers rewrite

            # chat.contoso.com: ChatAffinity and its CORS twin; either pins the client.
            async with open_http(
                FRONTEND,
                https_port,
                ssl_context=trust,
                server_hostname="chat.contoso.com",
                authority="chat.contoso.com",
            ) as client:
                first = await client.get("/echo")
                cookies = first.header_values("set-cookie")
                value = cookies[0].split(";")[0].split("=", 1)[1]
                by_twin = [
                    await client.get("/echo", headers=[("Cookie", f"ChatAffinityCORS={value}")])
                    for _ in range(4)
                ]
            assert first.status == 200
            assert cookies == [
                f"ChatAffinity={value}; Path=/; HttpOnly; Secure",
                f"ChatAffinityCORS={value}; Path=/; HttpOnly; SameSite=None; Secure",
            ]
            assert {r.header("x-backend") for r in by_twin} == {first.header("x-backend")}
            headers = dict(first.json()["headers"])
            assert headers["x-original-url"] == "/echo"
            assert HEX32.fullmatch(headers["x-appgw-trace-id"])

            # A WebSocket handshake carries them too.
            async with open_ws_at(
                FRONTEND,
                https_port,
                "/ws/room?id=7",
                ssl_context=trust,
                server_hostname="chat.contoso.com",
            ) as ws:
                await ws.send_message("hello")
                assert await ws.get_message() == "hello"
    handshake = next(b.ws.handshakes[-1] for b in chat if b.ws and b.ws.handshakes)
    assert handshake.header("x-original-url") == "/ws/room?id=7"
    assert HEX32.fullmatch(handshake.header("x-appgw-trace-id") or "")
