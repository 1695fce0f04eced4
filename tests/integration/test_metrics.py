"""`appgw metrics`: the workers' counters, summed by the master."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, run_cli

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


async def metrics_json(pid_file: Path, cwd: Path) -> dict:
    result = await run_cli("metrics", "--json", "--pid-file", str(pid_file), cwd=cwd)
    return json.loads(result.output) if result.returncode == 0 else {}


async def test_requests_are_counted_by_status_class_across_workers(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            for _ in range(3):  # three connections: both workers may serve
                async with open_http(GATEWAY, gateway_port) as client:
                    for _ in range(4):
                        assert (await client.get("/echo")).status == 200
                    assert (await client.get("/status/404")).status == 404
            while True:
                data = await metrics_json(gw.pid_file, tmp_path)
                counted = data.get("metrics", {})
                if counted.get("requests_total", 0) >= 15:
                    break
                await trio.sleep(0.2)  # the counters travel with the once-a-second heartbeat
            assert counted["responses_2xx"] == 12
            assert counted["responses_4xx"] == 3
            assert counted["requests_total"] == 15
            assert counted["connections_total"] >= 3
            assert data["workers"] == 2
            text = await run_cli("metrics", "--pid-file", str(gw.pid_file), cwd=tmp_path)
    assert text.returncode == 0, text.output
    assert 'appgw_responses_total{code="2xx"} 12' in text.output
    assert "# TYPE appgw_requests_total counter" in text.output
    assert "appgw_workers 2" in text.output
