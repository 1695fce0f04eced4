"""Metrics: counted by the workers, summed by the master, served on /metrics.

They move with traffic, add up over both workers, and keep their totals
across a reload and a killed worker. `appgw metrics` prints the same text.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import trio

from tests.support.admin import parse_prometheus, sample, wait_for_metrics
from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, run_cli
from tests.support.ports import free_port
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


@pytest.fixture
def admin_port(gateway_port: int) -> int:
    while (port := free_port(GATEWAY)) == gateway_port:
        pass
    return port


def requests(samples, code_class: str) -> float:
    return sample(
        samples,
        "appgw_requests_total",
        listener="http",
        rule="http",
        pool="web",
        code_class=code_class,
    )


def total_requests(samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "appgw_requests_total")


async def traffic(port: int, connections: int, ok: int, missing: int) -> None:
    for _ in range(connections):  # several connections: either worker may take each
        async with open_http(GATEWAY, port) as client:
            for _ in range(ok):
                assert (await client.get("/echo")).status == 200
            for _ in range(missing):
                assert (await client.get("/status/404")).status == 404


async def test_metrics_add_up_over_workers_and_survive_a_reload_and_a_killed_worker(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, admin_port: int
) -> None:
    config = gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    server = f"{A}:{backend_port}"
    with trio.fail_after(90):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config, tmp_path, workers=2, extra_args=["--admin", f"{GATEWAY}:{admin_port}"]
        ) as gw:
            await traffic(gateway_port, connections=3, ok=4, missing=1)
            samples = await wait_for_metrics(admin_port, lambda s: total_requests(s) >= 15)
            assert requests(samples, "2xx") == 12
            assert requests(samples, "4xx") == 3
            assert (
                sample(
                    samples, "appgw_failed_requests_total", listener="http", rule="http", pool="web"
                )
                == 0
            )
            assert (
                sample(
                    samples,
                    "appgw_backend_responses_total",
                    pool="web",
                    server=server,
                    code_class="2xx",
                )
                == 12
            )
            assert (
                sample(
                    samples,
                    "appgw_backend_responses_total",
                    pool="web",
                    server=server,
                    code_class="4xx",
                )
                == 3
            )
            assert (
                sample(samples, "appgw_total_time_seconds_count", listener="http", rule="http")
                == 15
            )
            assert (
                sample(
                    samples,
                    "appgw_total_time_seconds_bucket",
                    listener="http",
                    rule="http",
                    le="+Inf",
                )
                == 15
            )
            assert sample(samples, "appgw_backend_first_byte_seconds_count", pool="web") == 15
            assert sample(samples, "appgw_backend_connect_time_seconds_count", pool="web") >= 1
            assert sample(samples, "appgw_connections_total") >= 3
            assert sample(samples, "appgw_received_bytes_total") > 0
            assert sample(samples, "appgw_sent_bytes_total") > 0
            assert sample(samples, "appgw_workers") == 2
            assert sample(samples, "appgw_generation") == 1
            await wait_for_metrics(
                admin_port, lambda s: sample(s, "appgw_healthy_hosts", pool="web") == 1
            )

            # `appgw metrics` prints the same families.
            text = await run_cli("metrics", "--pid-file", str(gw.pid_file), cwd=tmp_path)
            assert text.returncode == 0, text
            printed = parse_prometheus(text.output)
            assert requests(printed, "2xx") == 12
            raw = await run_cli("metrics", "--json", "--pid-file", str(gw.pid_file), cwd=tmp_path)
            assert json.loads(raw.output)["workers"] == 2

            # A reload: a new generation of workers, the totals go on.
            reload = await run_cli("reload", "--pid-file", str(gw.pid_file), cwd=tmp_path)
            assert reload.returncode == 0, reload
            await traffic(gateway_port, connections=1, ok=1, missing=0)
            samples = await wait_for_metrics(
                admin_port,
                lambda s: total_requests(s) >= 16 and sample(s, "appgw_workers") == 2,
            )
            assert requests(samples, "2xx") == 13
            assert sample(samples, "appgw_generation") == 2
            assert sample(samples, "appgw_config_reloads_total", result="ok") == 1
            assert sample(samples, "appgw_config_reloads_total", result="failed") == 0

            # A killed worker: what it had reported stays counted.
            await wait_until(
                lambda: len(gw.children()) == 3,
                15,
                lambda: f"the old generation gone: two workers, one prober ({gw.children()})",
            )
            victim = max(gw.worker_pids(GATEWAY, gateway_port))
            mark = len(gw.log())
            os.kill(victim, signal.SIGKILL)
            await gw.wait_for_log(f"worker {victim} died unexpectedly", 10, start=mark)
            await gw.wait_for_log("started (generation 2)", 10, start=mark)
            await traffic(gateway_port, connections=1, ok=1, missing=0)
            samples = await wait_for_metrics(admin_port, lambda s: total_requests(s) >= 17)
            assert requests(samples, "2xx") == 14
            assert requests(samples, "4xx") == 3
            assert (
                sample(samples, "appgw_total_time_seconds_count", listener="http", rule="http")
                == 17
            )
