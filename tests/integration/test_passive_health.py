"""Passive health through a real gateway: a server that refuses connections
is passed over at once, long before the probes mark it down, its failures
are logged once per interval with a count, and `appgw health` shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import GatewayProcess, open_gateway, run_cli, toml_table
from tests.support.health import basic_rule, http_listener
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"  # nothing listens on B


def config(gateway_port: int, dead_port: int, backend_port: int) -> str:
    return "\n".join(
        [
            http_listener("mixed", gateway_port),
            http_listener("dead", dead_port),
            toml_table("pools.mixed", {"servers": [A, B]}),
            toml_table("pools.dead", {"servers": [B]}),
            # The default probe: B is not marked down for a long while.
            toml_table("settings.web", {"port": backend_port}),
            basic_rule("mixed", listener="mixed", pool="mixed", setting="web", priority=1),
            basic_rule("dead", listener="dead", pool="dead", setting="web", priority=2),
        ]
    )


async def health(gw: GatewayProcess, cwd: Path, *args: str) -> str:
    result = await run_cli("health", *args, "--pid-file", str(gw.pid_file), cwd=cwd)
    assert result.returncode == 0, result
    return result.output


async def test_a_refusing_server_is_passed_over_logged_once_and_shown(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, https_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        text = config(gateway_port, https_port, backend_port)
        async with open_gateway(text, tmp_path, workers=1) as gw:
            async with open_http(GATEWAY, gateway_port) as client:
                answers = [await client.get("/") for _ in range(20)]
            async with open_http(GATEWAY, https_port) as client:
                refused = await client.get("/")

            # The master publishes the workers' back-offs with their heartbeats.
            async def published() -> tuple[str, Any] | None:
                shown = await health(gw, tmp_path)
                document = json.loads(await health(gw, tmp_path, "--json"))
                return (shown, document) if "passed over until" in shown else None

            shown, document = await wait_until(published, 30, "B shown passed over")
            log = gw.log_path.read_text()
    assert [a.status for a in answers] == [200] * 20
    assert {a.header("x-backend") for a in answers} == {A}
    assert refused.status == 502
    # One line for B, not one per request that could have tried it.
    lines = [
        line
        for line in log.splitlines()
        if "WARNING" in line and f"connect to {B}:{backend_port}" in line
    ]
    assert len(lines) == 1 and "passed over for 10s" in lines[0], lines
    rows = [line for line in shown.splitlines() if line.strip().startswith(f"{B}:")]
    assert len(rows) == 2  # in both pools
    assert all("passed over until" in row and "Connection refused" in row for row in rows), rows
    servers = [
        server
        for pool in document["backendAddressPools"]
        for setting in pool["backendHttpSettingsCollection"]
        for server in setting["servers"]
        if server["address"] == B
    ]
    assert servers and all(s["passive"] and s["passive"]["failures"] >= 1 for s in servers)
