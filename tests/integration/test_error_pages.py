"""Custom error pages through a real gateway.

Pages are fetched when the configuration loads (here from a file and from a
real HTTP server), a listener's page wins over the gateway's, and only the
gateway's own answers are replaced: a backend's 502 passes as it was sent.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http, raw_exchange, status_of
from tests.support.gateway import open_gateway
from tests.support.ports import free_port

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


def config(gateway_port: int, backend_port: int, dead_port: int, page_dir: Path) -> str:
    return f"""
[error_pages]
502 = "{page_dir / "502.html"}"
400 = "file:{page_dir / "400.html"}"

[listeners.site]
protocol = "http"
address = "{GATEWAY}"
port = {gateway_port}
host_names = ["site.example"]
[listeners.site.error_pages]
502 = "http://{A}:{backend_port}/"

[listeners.any]
protocol = "http"
address = "{GATEWAY}"
port = {gateway_port}

[pools.dead]
servers = ["{A}:{dead_port}"]
[pools.live]
servers = ["{A}"]

[settings.s]
port = {backend_port}
[settings.live]
port = {backend_port}
path = "/"

[path_maps.m]
default_pool = "dead"
default_setting = "s"
[[path_maps.m.rules]]
name = "live"
paths = ["/live/*"]
pool = "live"
setting = "live"

[rules.site]
listener = "site"
kind = "path"
path_map = "m"
priority = 10
[rules.any]
listener = "any"
kind = "path"
path_map = "m"
priority = 20
"""


async def test_custom_pages_replace_only_the_gateways_answers(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    (tmp_path / "502.html").write_text("<p>gateway-wide 502</p>")
    (tmp_path / "400.html").write_text("<p>gateway-wide 400</p>")
    dead_port = free_port(A)
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port, names=["a"])
        text = config(gateway_port, backend_port, dead_port, tmp_path)
        async with open_gateway(text, tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                gateway_wide = await client.get("/x", headers=[("Host", "other.example")])
            async with open_http(GATEWAY, gateway_port) as client:
                listener = await client.get("/x", headers=[("Host", "site.example")])
            async with open_http(GATEWAY, gateway_port) as client:
                from_backend = await client.get(
                    "/live/status/502", headers=[("Host", "site.example")]
                )
            bad = await raw_exchange(
                GATEWAY, gateway_port, b"GET / HTTP/1.1\r\nHost: a\r\nBad\r\n\r\n"
            )
    assert gateway_wide.status == 502
    assert gateway_wide.text() == "<p>gateway-wide 502</p>"
    assert gateway_wide.header("content-type") == "text/html; charset=utf-8"
    assert listener.status == 502
    assert listener.text() == "backend a\n"  # fetched from the backend when loading
    assert from_backend.status == 502 and "gateway-wide" not in from_backend.text()
    assert from_backend.header("x-backend") == "a"
    assert status_of(bad) == 400 and bad.endswith(b"<p>gateway-wide 400</p>")
