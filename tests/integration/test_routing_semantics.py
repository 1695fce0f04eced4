"""Application Gateway v2's routing semantics and forwarded headers, end to end.

Path rules are tried in list order and match case-insensitively; every
forwarded request (WebSocket handshakes included) carries X-Original-URL and
X-AppGW-Trace-Id, the trace id also being the access log's transaction id;
cookie-based affinity sets the cookie and its CORS twin, and either one
pins the client to its server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http, open_ws_at
from tests.support.gateway import open_gateway
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"


def config(gateway_port: int, backend_port: int, access_log: Path) -> str:
    return f"""
[gateway]
access_log = "{access_log}"

[listeners.http]
protocol = "http"
address = "{GATEWAY}"
port = {gateway_port}

[pools.app]
servers = ["{A}"]
[pools.api]
servers = ["{B}"]
[pools.both]
servers = ["{A}", "{B}"]

[settings.app]
port = {backend_port}
[settings.api]
port = {backend_port}
path = "/"
[settings.sticky]
port = {backend_port}
cookie_based_affinity = true
affinity_cookie_name = "Chat"

[path_maps.site]
default_pool = "app"
default_setting = "app"
[[path_maps.site.rules]]
name = "dev"
paths = ["/master-dev*"]
pool = "app"
setting = "app"
[[path_maps.site.rules]]
name = "dev-api"
paths = ["/master-dev/api-core/"]
pool = "api"
setting = "api"
[[path_maps.site.rules]]
name = "api"
paths = ["/api/*"]
pool = "api"
setting = "api"
[[path_maps.site.rules]]
name = "chat"
paths = ["/chat/*"]
pool = "both"
setting = "sticky"

[rules.site]
listener = "http"
kind = "path"
path_map = "site"
priority = 10
"""


async def test_path_rules_list_order_and_case(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_http_backends(nursery, [A, B], backend_port, names=["app", "api"])
        log = tmp_path / "access.log"
        async with open_gateway(config(gateway_port, backend_port, log), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                upper = await client.get("/API/echo?x=1")
                first = await client.get("/master-dev/api-core/")
                default = await client.get("/apix/echo")
    assert upper.status == 200 and upper.header("x-backend") == "api"
    # "/API/" matched "/api/*" and was replaced by the override "/".
    assert upper.json()["target"] == "/echo?x=1"
    # The documentation's example: "/master-dev*" is listed first and wins.
    assert first.header("x-backend") == "app"
    assert default.header("x-backend") == "app"


async def test_original_url_and_trace_id_reach_the_backend_and_the_log(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        (_app, api) = await start_http_backends(
            nursery, [A, B], backend_port, names=["app", "api"], websocket=True
        )
        log = tmp_path / "access.log"
        async with open_gateway(config(gateway_port, backend_port, log), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                forged = [("X-Original-URL", "/admin"), ("X-AppGW-Trace-Id", "0" * 32)]
                response = await client.get("/api/echo?q=%20a", headers=forged)
            async with open_ws_at(GATEWAY, gateway_port, "/api/ws/chat") as ws:
                await ws.send_message("hi")
                assert await ws.get_message() == "hi"
            seen = dict(response.json()["headers"])
            trace = seen["x-appgw-trace-id"]
            await wait_for_text(log, trace)
    assert seen["x-original-url"] == "/api/echo?q=%20a"
    assert re.fullmatch(r"[0-9a-f]{32}", trace) and trace != "0" * 32
    assert [k for k, _ in response.json()["headers"]].count("x-original-url") == 1
    handshake = api.ws.handshakes[-1]
    assert handshake.path == "/ws/chat"
    assert handshake.header("x-original-url") == "/api/ws/chat"
    assert re.fullmatch(r"[0-9a-f]{32}", handshake.header("x-appgw-trace-id") or "")
    line = next(line for line in log.read_text().splitlines() if "/api/echo" in line)
    assert json.loads(line)["transactionId"] == trace


async def wait_for_text(path: Path, text: str) -> None:
    """Wait until `text` is in the file (the access log is written after the answer)."""
    await wait_until(lambda: path.exists() and text in path.read_text(), 10, f"{text!r} in {path}")


async def test_affinity_cookie_and_its_cors_twin(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_http_backends(nursery, [A, B], backend_port, names=["app", "api"])
        log = tmp_path / "access.log"
        async with open_gateway(config(gateway_port, backend_port, log), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                first = await client.get("/chat/echo")
                cookies = first.header_values("set-cookie")
                value = cookies[0].split(";")[0].split("=", 1)[1]
                pinned = first.header("x-backend")
                by_twin = [
                    await client.get("/chat/echo", headers=[("Cookie", f"ChatCORS={value}")])
                    for _ in range(4)
                ]
    assert cookies[0].startswith(f"Chat={value}; Path=/; HttpOnly")
    assert cookies[1] == f"ChatCORS={value}; Path=/; HttpOnly; SameSite=None; Secure"
    assert {r.header("x-backend") for r in by_twin} == {pinned}
    # A request that already carries the cookie gets no new one.
    assert all(not r.header_values("set-cookie") for r in by_twin)
