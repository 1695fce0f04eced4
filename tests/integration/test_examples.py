"""The sample Application Gateway files in shared/examples: they load, and the ARM template runs.

The ARM template's pool is 127.0.1.4, 127.0.1.5 and the host name localhost,
on backend port 80; its listeners are on frontend ports 80 and 443. The test
runs it with `--bind 127.0.0.9 --port 80=<free> --port 443=<free>` in front
of test backends bound to those three addresses on port 80 (the suite runs
as root).
"""

from __future__ import annotations

import base64
import errno
import json
import ssl
from functools import partial
from pathlib import Path

import pytest
import trio

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


@pytest.mark.parametrize("example", [ARM_TEMPLATE, AZ_SHOW], ids=lambda p: p.name)
async def test_example_passes_check(tmp_path: Path, example: Path) -> None:
    assert example.is_file(), f"missing example {example}"
    with trio.fail_after(30):
        result = await run_cli("check", "-c", str(example), cwd=tmp_path)
    assert result.returncode == 0, result


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
