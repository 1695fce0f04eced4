"""A slowloris flood does not starve normal clients (bounded; scripts/fuzz runs longer).

Some 1500 connections each trickle a request head, one byte a second, while normal clients make requests on fresh connections. Every
normal request must be answered promptly, the flood connections must be cut
off by the header timeout (and come back, as attackers do), and no worker
may die.

The normal requests go on until the flood has reached the gateway, at least
NORMAL_REQUESTS were made, and flood connections are being cut off: so they
are answered while the gateway holds the flood and while it cuts it off,
however fast or slow the machine runs them. The flood runs in a process of
its own (tests/support/flood_process.py), so the normal requests' times are
the gateway's, not this test's event loop catching up with the flood.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.flood_process import open_flood
from tests.support.gateway import gateway_toml, open_gateway, pid_alive
from tests.support.hostile import open_fds, raise_nofile
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
FLOOD = int(os.environ.get("APPGW_FLOOD_CLIENTS", "1500"))
NORMAL_REQUESTS = 40
CUT_OFF = 50  # flood connections seen cut off before the normal requests stop
HEADER_TIMEOUT = 5  # long enough for the whole flood to connect before the first cut-off
# Normal clients are answered promptly: half of them within PROMPT seconds
# of connecting, and every one sooner than the header timeout (no normal
# client waits as long as the gateway lets a slow one hold on), including
# those made while the whole flood is cut off at once and reconnects. The
# connect itself is not timed: on a machine busy enough that the flood's
# reconnects fill the accept queue, the kernel drops SYNs and the client
# retries after 1 s, 3 s ..., whatever the gateway does.
PROMPT = 1.0


# Heavy load: never at the same time as another load test (pytest-xdist).
@pytest.mark.xdist_group("load")
@pytest.mark.timeout(150)
async def test_slowloris_flood_does_not_starve_normal_clients(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    limit = raise_nofile(4 * FLOOD + 1024)  # our ends of the flood, inherited by the gateway
    assert limit >= 2 * FLOOD + 256, f"RLIMIT_NOFILE {limit} is too low for {FLOOD} connections"
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        limits={"header_timeout": HEADER_TIMEOUT, "max_connections": FLOOD + 500},
    )
    latencies: list[float] = []  # from connected to answered
    connects: list[float] = []
    with trio.fail_after(100):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            children = gw.children()
            workers = gw.worker_pids(GATEWAY, gateway_port)

            def held() -> int:
                return sum(open_fds(pid) for pid in workers)

            # The flood runs in a process of its own: in this one, a normal
            # request's time would include this loop's lag behind the flood.
            async with open_flood(
                GATEWAY, gateway_port, FLOOD, interval=1.0, directory=tmp_path
            ) as flood:
                await wait_until(
                    lambda: held() >= FLOOD // 2,
                    30,
                    lambda: f"the flood reaches the gateway (it holds {held()} fds)",
                )
                n = 0
                while n < NORMAL_REQUESTS or flood.stats().cut_off < CUT_OFF:
                    start = trio.current_time()
                    async with open_http(GATEWAY, gateway_port) as client:
                        connected = trio.current_time()
                        with trio.fail_after(10):
                            response = await client.get(f"/echo?n={n}")
                    connects.append(connected - start)
                    latencies.append(trio.current_time() - connected)
                    assert response.status == 200
                    n += 1
                    await trio.sleep(0.05)  # pacing the normal clients
                stats = flood.stats()
            dead = [pid for pid in children if not pid_alive(pid)]
            assert not dead, f"died under the flood: {dead}\n{gw.log_tail()}"
            assert gw.worker_pids(GATEWAY, gateway_port) == workers
    latencies.sort()
    connects.sort()
    print(
        f"flood: {stats.opened} opened, {stats.cut_off} cut off (the first after "
        f"{stats.shortest_hold:.2f} s), {stats.failed_to_connect} failed to connect; "
        f"normal requests: {len(latencies)}, median {latencies[len(latencies) // 2]:.3f} s, "
        f"max {latencies[-1]:.3f} s; connecting took at most {connects[-1]:.3f} s"
    )
    assert stats.opened >= FLOOD, stats
    # Cut off by the header timeout, not sooner (max_connections leaves room
    # for the whole flood): a connection ends only after its head ran late.
    assert stats.shortest_hold is not None and stats.shortest_hold >= HEADER_TIMEOUT, stats
    median = latencies[len(latencies) // 2]
    assert median < PROMPT, f"half the normal requests took over {median:.2f} s"
    assert latencies[-1] < HEADER_TIMEOUT, f"slowest normal request took {latencies[-1]:.2f} s"
