"""The gateway's processes: graceful stop and replacing workers that die."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from tests.support.backends import HttpBackend, start_http_backends
from tests.support.clients import Response, open_http
from tests.support.gateway import GatewayProcess, gateway_toml, open_gateway, wait_pid_gone
from tests.support.ports import wait_for_port_closed

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


def config_for(gateway_port: int, backend_port: int) -> str:
    return gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)


async def served(port: int, target: str = "/echo") -> Response:
    async with open_http(GATEWAY, port) as client:
        return await client.get(target)


async def test_term_finishes_the_request_in_flight_then_exits_0(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    results: list[Response] = []

    async def slow_request() -> None:
        results.append(await served(gateway_port, "/slow?delay=2"))

    with trio.fail_after(40):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config_for(gateway_port, backend_port), tmp_path) as gw:
            async with trio.open_nursery() as clients:
                clients.start_soon(slow_request)
                await backend.wait_for_request("/slow", timeout=10)
                gw.send_signal(signal.SIGTERM)
            returncode = await gw.wait(15)
            assert returncode == 0, gw.log_tail()
        await wait_for_port_closed(GATEWAY, gateway_port, 5)
    assert [r.status for r in results] == [200]
    assert results[0].text().startswith("slow answer")


async def wait_for_new_worker(
    gw: GatewayProcess, port: int, known: set[int], timeout: float
) -> int:
    """A worker pid not in `known`, once one holds the listener."""
    with trio.move_on_after(timeout):
        while True:
            fresh = set(gw.worker_pids(GATEWAY, port)) - known
            if fresh:
                return fresh.pop()
            assert gw.returncode is None, f"the master exited:\n{gw.log_tail()}"
            await trio.sleep(0.05)
    raise AssertionError(f"no new worker after {timeout} s (had {sorted(known)})")


async def kill_worker(gw: GatewayProcess, port: int) -> tuple[int, set[int]]:
    workers = set(gw.worker_pids(GATEWAY, port))
    assert workers, f"no worker processes:\n{gw.log_tail()}"
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    await wait_pid_gone(victim, 10)
    return victim, workers


async def test_killed_worker_is_replaced_and_the_listener_keeps_serving(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        backend: HttpBackend
        [backend] = await start_http_backends(nursery, [A], backend_port)
        config = config_for(gateway_port, backend_port)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            assert (await served(gateway_port)).status == 200
            victim, before = await kill_worker(gw, gateway_port)
            # The other worker answers while the dead one is being replaced.
            for _ in range(4):
                assert (await served(gateway_port)).status == 200
            replacement = await wait_for_new_worker(gw, gateway_port, before, 20)
            assert replacement != victim
            for _ in range(8):
                assert (await served(gateway_port)).status == 200
            assert gw.returncode is None
            assert len(gw.worker_pids(GATEWAY, gateway_port)) >= 2
    assert len(backend.requests_to("/echo")) == 13


async def test_connections_wait_in_the_shared_listener_while_the_only_worker_is_replaced(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        config = config_for(gateway_port, backend_port)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            assert (await served(gateway_port)).status == 200
            _victim, before = await kill_worker(gw, gateway_port)
            # No worker may be accepting now; the master's socket still queues
            # the connection, and the replacement serves it.
            with trio.move_on_after(20) as waiting:
                response = await served(gateway_port)
            assert not waiting.cancelled_caught, "the queued connection was never served"
            assert response.status == 200
            await wait_for_new_worker(gw, gateway_port, before, 20)
            assert (await served(gateway_port)).status == 200
