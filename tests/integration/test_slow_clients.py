"""A slowloris flood does not starve normal clients (bounded; scripts/fuzz runs longer).

Some 1500 connections each trickle a request head, one byte every half
second, while normal clients make requests on fresh connections. Every
normal request must be answered promptly, the flood connections must be cut
off by the header timeout (and come back, as attackers do), and no worker
may die.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, pid_alive
from tests.support.hostile import FloodStats, open_fds, raise_nofile, slowloris

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
FLOOD = int(os.environ.get("APPGW_FLOOD_CLIENTS", "1500"))
NORMAL_REQUESTS = 40
PROMPT = 1.0  # seconds: the slowest answer a normal client may get


async def test_slowloris_flood_does_not_starve_normal_clients(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    limit = raise_nofile(4 * FLOOD + 1024)  # our ends of the flood, inherited by the gateway
    assert limit >= 2 * FLOOD + 256, f"RLIMIT_NOFILE {limit} is too low for {FLOOD} connections"
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        limits={"header_timeout": 2, "max_connections": FLOOD + 500},
    )
    stats = FloodStats()
    latencies: list[float] = []
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            children = gw.children()
            workers = gw.worker_pids(GATEWAY, gateway_port)
            async with trio.open_nursery() as flood:
                await flood.start(
                    partial(slowloris, GATEWAY, gateway_port, FLOOD, interval=0.5, stats=stats)
                )
                held = sum(open_fds(pid) for pid in workers)
                for n in range(NORMAL_REQUESTS):
                    start = trio.current_time()
                    async with open_http(GATEWAY, gateway_port) as client:
                        with trio.fail_after(10):
                            response = await client.get(f"/echo?n={n}")
                    latencies.append(trio.current_time() - start)
                    assert response.status == 200
                    await trio.sleep(0.05)
                flood.cancel_scope.cancel()
            dead = [pid for pid in children if not pid_alive(pid)]
            assert not dead, f"died under the flood: {dead}\n{gw.log_tail()}"
            assert gw.worker_pids(GATEWAY, gateway_port) == workers
    latencies.sort()
    print(
        f"flood: {stats.opened} opened, {stats.cut_off} cut off, "
        f"{stats.failed_to_connect} failed to connect; gateway fds {held}; "
        f"normal requests: median {latencies[len(latencies) // 2]:.3f} s, max {latencies[-1]:.3f} s"
    )
    assert stats.opened >= FLOOD, stats
    assert held >= FLOOD // 2, f"the flood did not reach the gateway ({held} fds)"
    assert stats.cut_off > 0, "no slow client was cut off by the header timeout"
    assert latencies[-1] < PROMPT, f"slowest normal request took {latencies[-1]:.2f} s"
