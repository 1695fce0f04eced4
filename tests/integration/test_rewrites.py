"""Rewrite rule sets and path maps through a real gateway.

The gateway runs the rule set's request rewrites on the headers it sends to
the backend (after its own forwarding headers), URL rewrites before the
exchange, and response rewrites on the way back.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import open_gateway

GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"


def config(gateway_port: int, backend_port: int) -> str:
    return f"""
[listeners.http]
protocol = "http"
address = "{GATEWAY}"
port = {gateway_port}

[pools.app]
servers = ["{A}"]
[pools.api]
servers = ["{B}"]

[settings.app]
port = {backend_port}
[settings.api]
port = {backend_port}
path = "/"

[rewrite_rule_sets.headers]
[[rewrite_rule_sets.headers.rules]]
name = "client-ip"
sequence = 100
request_headers = {{ "X-Client-IP" = "{{var_client_ip}}", "X-Forwarded-Proto" = "" }}
response_headers = {{ "X-Backend" = "", "X-Served-By" = "appgw" }}
[[rewrite_rule_sets.headers.rules]]
name = "mobile"
sequence = 200
conditions = [{{ variable = "http_req_User-Agent", pattern = "(Android|iPhone)", ignore_case = true }}]
request_headers = {{ "X-Device" = "mobile-{{http_req_User-Agent_1}}" }}
url = {{ query_string = "{{var_query_string}}&mobile=1" }}

[path_maps.site]
default_pool = "app"
default_setting = "app"
default_rewrite_rule_set = "headers"
[[path_maps.site.rules]]
name = "api"
paths = ["/api/*"]
pool = "api"
setting = "api"

[rules.site]
listener = "http"
kind = "path"
path_map = "site"
priority = 10
"""


async def test_header_url_and_response_rewrites(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        app, api = await start_http_backends(nursery, [A, B], backend_port, names=["app", "api"])
        async with open_gateway(config(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                plain = await client.get("/echo?q=1", headers=[("User-Agent", "curl/8")])
                mobile = await client.get(
                    "/echo?q=2", headers=[("User-Agent", "Mozilla iPhone OS")]
                )
                routed = await client.get("/api/echo?x=1")
    assert plain.status == 200, plain.text()
    seen = dict((k, v) for k, v in plain.json()["headers"])
    assert seen["x-client-ip"] == "127.0.0.1"
    assert "x-forwarded-proto" not in seen  # removed by the rule set, after the gateway set it
    assert "x-device" not in seen
    assert plain.json()["target"] == "/echo?q=1"
    assert plain.header("x-backend") is None and plain.header("x-served-by") == "appgw"

    seen = dict((k, v) for k, v in mobile.json()["headers"])
    assert seen["x-device"] == "mobile-iPhone"
    assert mobile.json()["target"] == "/echo?q=2&mobile=1"

    # The path rule has no rewrite set; its setting's path override applies.
    assert routed.json()["backend"] == "api"
    assert routed.json()["target"] == "/echo?x=1"  # "/api/" replaced by the override "/"
    assert routed.header("x-served-by") is None
