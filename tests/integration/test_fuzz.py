"""Random and mutated requests against a live gateway (bounded; scripts/fuzz runs longer).

Many connections at once throw mutated copies of valid requests (and some
pure noise) at a gateway with two workers in front of the test backend,
with a fixed seed so a failure can be replayed. Every answer must be valid
HTTP/1.1 (or the connection just closes), no connection may hang after the
client has ended its side, every worker present at the start must still be
alive at the end, and a normal request must still succeed. The backend is
the recording backend of hostile.py, which survives any request.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, pid_alive, process_state
from tests.support.hostile import run_fuzz, serve_raw_backend

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
SECONDS = float(os.environ.get("APPGW_FUZZ_SECONDS", "6"))
CLIENTS = int(os.environ.get("APPGW_FUZZ_CLIENTS", "24"))
SEED = int(os.environ.get("APPGW_FUZZ_SEED", "20240611"))


# Heavy load: never at the same time as another load test (pytest-xdist).
@pytest.mark.xdist_group("load")
async def test_fuzzed_requests_never_break_a_worker(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        request_timeout=5,
        limits={"header_timeout": 3, "request_timeout": 3, "keepalive_timeout": 3},
    )
    with trio.fail_after(SECONDS + 60):
        await nursery.start(partial(serve_raw_backend, A, backend_port))
        async with open_gateway(config, tmp_path, workers=2) as gw:
            children = gw.children()
            workers = gw.worker_pids(GATEWAY, gateway_port)
            assert len(workers) == 2, workers
            report = await run_fuzz(
                GATEWAY, gateway_port, seconds=SECONDS, clients=CLIENTS, seed=SEED
            )
            dead = [(pid, process_state(pid)) for pid in children if not pid_alive(pid)]
            assert not dead, f"processes died during the fuzz run: {dead}\n{gw.log_tail()}"
            assert gw.worker_pids(GATEWAY, gateway_port) == workers
            for _ in range(4):  # fresh connections reach both workers
                async with open_http(GATEWAY, gateway_port) as client:
                    assert (await client.get("/echo")).status == 200
            assert "Traceback" not in gw.log(), gw.log_tail(60)
    print(
        f"fuzz: {report.connections} connections, {report.responses} responses, "
        f"statuses {dict(sorted(report.statuses.items()))}"
    )
    assert report.connections > 200, report
    assert not report.invalid, "\n".join(report.invalid[:20])
    assert not report.hung, f"{len(report.hung)} connections hung, e.g. {report.hung[:5]}"
