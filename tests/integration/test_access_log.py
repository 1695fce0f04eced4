"""The access log: one JSON object per line, with Application Gateway's field names.

One gateway, one path map: /echo and /ws to a live pool, /dead/* to a pool
whose server does not listen, /slow to a setting with a 1 s timeout, /old/*
to a redirect. Each kind of exchange leaves its line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http, open_ws, raw_exchange, status_of
from tests.support.gateway import open_gateway, toml_table
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
DEAD = "127.0.0.3"  # nothing listens there

AZURE_FIELDS = {
    "timeStamp",
    "clientIP",
    "clientPort",
    "httpMethod",
    "requestUri",
    "originalRequestUriWithArgs",
    "originalHost",
    "host",
    "userAgent",
    "httpStatus",
    "httpVersion",
    "receivedBytes",
    "sentBytes",
    "timeTaken",
    "sslEnabled",
    "sslProtocol",
    "sslCipher",
    "listenerName",
    "ruleName",
    "backendPoolName",
    "backendSettingName",
    "serverRouted",
    "serverStatus",
    "serverResponseLatency",
    "upstreamSourcePort",
    "transactionId",
    "error_info",
}


def config(gateway_port: int, backend_port: int, access_log: Path) -> str:
    return "\n".join(
        [
            toml_table("gateway", {"access_log": str(access_log)}),
            toml_table(
                "listeners.http", {"protocol": "http", "address": GATEWAY, "port": gateway_port}
            ),
            toml_table("pools.web", {"servers": [A]}),
            toml_table("pools.dead", {"servers": [DEAD]}),
            toml_table("settings.web", {"port": backend_port, "request_timeout": 5}),
            toml_table("settings.hasty", {"port": backend_port, "request_timeout": 1}),
            toml_table(
                "redirects.moved",
                {
                    "redirect_type": "permanent",
                    "target_url": "https://example.invalid/new",
                    "include_path": False,
                },
            ),
            toml_table("path_maps.site", {"default_pool": "web", "default_setting": "web"}),
            '[[path_maps.site.rules]]\nname = "dead"\npaths = ["/dead/*"]\n'
            'pool = "dead"\nsetting = "web"\n',
            '[[path_maps.site.rules]]\nname = "slow"\npaths = ["/slow"]\n'
            'pool = "web"\nsetting = "hasty"\n',
            '[[path_maps.site.rules]]\nname = "old"\npaths = ["/old/*"]\nredirect = "moved"\n',
            toml_table(
                "rules.site",
                {"listener": "http", "kind": "path", "path_map": "site", "priority": 10},
            ),
        ]
    )


def entries(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def line_for(path: Path, match: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    """The first access-log entry whose fields include `match`, once it is written."""

    def found() -> dict[str, Any] | None:
        return next(
            (e for e in entries(path) if all(e.get(k) == v for k, v in match.items())), None
        )

    return await wait_until(found, timeout, f"an access-log entry with {match}")


async def test_access_log_lines_for_each_kind_of_exchange(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    log = tmp_path / "logs" / "access.log"
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port, websocket=True)
        async with open_gateway(config(gateway_port, backend_port, log), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                ok = await client.get(
                    "/echo?x=1",
                    headers=[("User-Agent", "probe/1.0"), ("X-AppGW-Trace-Id", "trace-42")],
                )
                assert ok.status == 200
                assert (await client.get("/dead/page")).status == 502
                assert (await client.get("/old/page")).status == 301
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/slow?delay=3")).status == 504
            rejected = await raw_exchange(
                GATEWAY, gateway_port, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"
            )
            assert status_of(rejected) == 400
            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws/echo") as ws:
                await ws.send_message("hello")
                assert await ws.get_message() == "hello"
                await ws.aclose(code=1000)

            proxied = await line_for(log, {"requestUri": "/echo?x=1"})
            dead = await line_for(log, {"originalRequestUriWithArgs": "/dead/page"})
            redirect = await line_for(log, {"originalRequestUriWithArgs": "/old/page"})
            timeout = await line_for(log, {"originalRequestUriWithArgs": "/slow?delay=3"})
            bad = await line_for(log, {"httpStatus": 400})
            tunnel = await line_for(log, {"httpStatus": 101})

    assert AZURE_FIELDS <= set(proxied), AZURE_FIELDS - set(proxied)
    assert proxied["httpMethod"] == "GET"
    assert proxied["httpStatus"] == 200
    assert proxied["httpVersion"] == "HTTP/1.1"
    assert proxied["clientIP"] == "127.0.0.1"
    assert proxied["userAgent"] == "probe/1.0"
    # The gateway's own trace id, not the one the client sent.
    assert re.fullmatch(r"[0-9a-f]{32}", proxied["transactionId"])
    assert proxied["listenerName"] == "http"
    assert proxied["ruleName"] == "site"
    assert proxied["backendPoolName"] == "web"
    assert proxied["backendSettingName"] == "web"
    assert proxied["serverRouted"] == f"{A}:{backend_port}"
    assert proxied["serverStatus"] == "200"
    assert float(proxied["serverResponseLatency"]) >= 0
    assert int(proxied["upstreamSourcePort"]) > 0
    assert proxied["sslEnabled"] == "off"
    assert proxied["receivedBytes"] > 0 and proxied["sentBytes"] > 0
    assert proxied["timeTaken"] >= 0
    assert proxied["error_info"] == "ERRORINFO_NO_ERROR"
    assert proxied["timeStamp"].endswith("Z")

    assert dead["httpStatus"] == 502
    assert dead["backendPoolName"] == "dead"
    assert dead["error_info"] == "ERRORINFO_UPSTREAM_NO_LIVE"

    assert redirect["httpStatus"] == 301
    assert redirect["ruleName"] == "site"
    assert redirect["backendPoolName"] == ""
    assert redirect["error_info"] == "ERRORINFO_NO_ERROR"

    assert timeout["httpStatus"] == 504
    assert timeout["backendSettingName"] == "hasty"
    assert timeout["serverRouted"] == f"{A}:{backend_port}"
    assert timeout["error_info"] == "ERRORINFO_UPSTREAM_TIMED_OUT"
    assert timeout["timeTaken"] >= 1

    assert bad["error_info"] == "ERRORINFO_INVALID_REQUEST"
    assert bad["clientIP"] == "127.0.0.1"

    assert tunnel["requestUri"] == "/ws/echo"
    assert tunnel["serverStatus"] == "101"
    assert tunnel["tunnelClosedBy"] == "client"
    assert tunnel["tunnelCloseCode"] == 1000
    assert tunnel["tunnelBytesFromClient"] > 0
    assert tunnel["tunnelBytesFromBackend"] > 0
    assert tunnel["tunnelDuration"] >= 0
    assert tunnel["error_info"] == "ERRORINFO_NO_ERROR"
