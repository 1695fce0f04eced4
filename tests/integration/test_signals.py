"""The master's signals: TTIN/TTOU, a stalled worker, USR1, INT and QUIT."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio
import trio_websocket

from tests.support.backends import start_http_backends
from tests.support.clients import IncompleteResponse, open_http, open_ws
from tests.support.gateway import (
    GatewayProcess,
    child_pids,
    gateway_toml,
    open_gateway,
    pid_alive,
    run_cli,
    stop_by_pid_file,
    wait_pid_gone,
)
from tests.support.load import HttpLoad, read_pid, workers_of
from tests.support.ports import wait_for_port_closed

GATEWAY = "127.0.0.1"
GET_LINE = '"httpMethod":"GET"'  # in an access-log line
A = "127.0.0.2"


def config_for(gateway_port: int, backend_port: int, **gateway: object) -> str:
    return gateway_toml(
        servers=[A], backend_port=backend_port, http_port=gateway_port, gateway=gateway or None
    )


async def wait_for_workers(gw: GatewayProcess, port: int, count: int, timeout: float) -> list[int]:
    """Wait until exactly `count` live workers hold the listener."""
    with trio.move_on_after(timeout):
        while True:
            workers = workers_of(gw.pid, GATEWAY, port)
            if len(workers) == count:
                return workers
            assert gw.returncode is None, gw.log_tail()
            await trio.sleep(0.05)
    raise AssertionError(
        f"wanted {count} workers, have {workers_of(gw.pid, GATEWAY, port)}:\n{gw.log_tail()}"
    )


async def backend_of_fresh_request(port: int) -> int:
    async with open_http(GATEWAY, port) as client:
        return (await client.get("/")).status


async def test_ttin_and_ttou_change_the_worker_count(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config_for(gateway_port, backend_port), tmp_path, workers=2) as gw:
            load = HttpLoad(GATEWAY, gateway_port)
            async with trio.open_nursery() as clients:
                await clients.start(load.run, 2)
                two = await wait_for_workers(gw, gateway_port, 2, 10)
                # One signal at a time: like any signal, two TTINs sent before
                # the master handles the first count once.
                gw.send_signal(signal.SIGTTIN)
                three = await wait_for_workers(gw, gateway_port, 3, 10)
                assert set(two) < set(three)
                gw.send_signal(signal.SIGTTOU)
                await wait_for_workers(gw, gateway_port, 2, 10)
                gw.send_signal(signal.SIGTTOU)
                one = await wait_for_workers(gw, gateway_port, 1, 10)
                assert set(one) < set(three)
                for retired in set(three) - set(one):  # they drain, then exit
                    await wait_pid_gone(retired, 5)
                offset = len(gw.log())
                gw.send_signal(signal.SIGTTOU)  # never fewer than one
                await gw.wait_for_log("TTOU", 5, start=offset)
                gw.send_signal(signal.SIGTTIN)
                await wait_for_workers(gw, gateway_port, 2, 10)
                await load.stopped()
            workers = workers_of(gw.pid, GATEWAY, gateway_port)
            probers = [p for p in child_pids(gw.pid) if p not in workers]
            assert len(probers) == 1, "exactly one prober besides the workers"
    assert load.failures == [] and load.refused == [], (load.failures + load.refused)[:10]
    assert len(load.served) > 0


async def test_stalled_worker_is_replaced(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    stall = 2
    config = config_for(gateway_port, backend_port, stall_timeout=stall)
    with trio.fail_after(40):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            before = await wait_for_workers(gw, gateway_port, 2, 10)
            victim = before[0]
            stopped = trio.current_time()
            os.kill(victim, signal.SIGSTOP)
            try:
                # The other worker serves while the stalled one is noticed.
                for _ in range(5):
                    assert await backend_of_fresh_request(gateway_port) == 200
                await wait_pid_gone(victim, stall + 5)
                replaced_after = trio.current_time() - stopped
                after = await wait_for_workers(gw, gateway_port, 2, 10)
            finally:
                if pid_alive(victim):
                    os.kill(victim, signal.SIGCONT)
            assert victim not in after and before[1] in after
            for _ in range(5):
                assert await backend_of_fresh_request(gateway_port) == 200
            assert "stalled" in gw.log()
    assert stall - 0.5 <= replaced_after <= stall + 3, replaced_after


async def test_usr1_reopens_the_log_files(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    logs = tmp_path / "logs"
    error_log, access_log = logs / "error.log", logs / "access.log"
    pid_file = tmp_path / "gw.pid"
    config_path = tmp_path / "appgw.toml"
    config_path.write_text(
        config_for(gateway_port, backend_port, error_log=str(error_log), access_log=str(access_log))
    )
    with trio.fail_after(40):
        await start_http_backends(nursery, [A], backend_port)
        started = await run_cli(
            "start",
            "-c",
            str(config_path),
            "--pid-file",
            str(pid_file),
            "--workers",
            "2",
            cwd=tmp_path,
        )
        assert started.returncode == 0, started
        try:
            master = read_pid(pid_file)
            assert master is not None
            assert await backend_of_fresh_request(gateway_port) == 200
            assert "gateway ready" in error_log.read_text()
            await wait_for_text(access_log, GET_LINE, 5)
            children = set(child_pids(master))
            error_log.rename(logs / "error.log.1")
            access_log.rename(logs / "access.log.1")

            os.kill(master, signal.SIGUSR1)
            with trio.fail_after(5):
                while not error_log.exists():
                    await trio.sleep(0.05)
            # Each worker reopens on its own: ask until every one has written
            # to the new access log (a worker's pid shows in nothing else, so
            # wait for as many lines as it takes for both to have served).
            with trio.fail_after(10):
                while not (access_log.exists() and access_log.read_text().count(GET_LINE) >= 4):
                    assert await backend_of_fresh_request(gateway_port) == 200
                    await trio.sleep(0.05)
            old_access = (logs / "access.log.1").read_text().count(GET_LINE)
            for _ in range(10):
                assert await backend_of_fresh_request(gateway_port) == 200
            # Lines from the master go to the new error log too.
            os.kill(master, signal.SIGTTIN)
            await wait_for_text(error_log, "TTIN", 5)
            await wait_for_text(error_log, "worker", 5)
            assert set(child_pids(master)) >= children, (
                "a child died on USR1:\n" + error_log.read_text()
            )
        finally:
            await stop_by_pid_file(pid_file)
    assert "TTIN" not in (logs / "error.log.1").read_text()
    assert "died" not in error_log.read_text(), error_log.read_text()
    # Nothing more went to the renamed access log once every worker reopened.
    assert (logs / "access.log.1").read_text().count(GET_LINE) == old_access


async def wait_for_text(path: Path, text: str, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not (path.exists() and text in path.read_text()):
            await trio.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
async def test_int_and_quit_stop_at_once(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, signum: int
) -> None:
    """A tunnel (30 s drain timeout) and a slow request in flight do not hold a fast stop."""
    outcome: list[str] = []

    async def slow_request() -> None:
        async with open_http(GATEWAY, gateway_port) as client:
            try:
                response = await client.get("/slow?delay=20")
                outcome.append(f"answered {response.status}")
            except (IncompleteResponse, trio.BrokenResourceError) as exc:
                outcome.append(f"cut: {exc}")

    with trio.fail_after(30):
        [backend] = await start_http_backends(nursery, [A], backend_port, websocket=True)
        async with open_gateway(config_for(gateway_port, backend_port), tmp_path, workers=2) as gw:
            children = child_pids(gw.pid)
            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws") as ws:
                await ws.send_message("hi")
                assert await ws.get_message() == "hi"
                async with trio.open_nursery() as clients:
                    clients.start_soon(slow_request)
                    await backend.wait_for_request("/slow", 5)
                    sent = trio.current_time()
                    gw.send_signal(signum)
                    returncode = await gw.wait(10)
                    took = trio.current_time() - sent
                with trio.fail_after(5):
                    try:
                        await ws.get_message()
                        tunnel = "still open"
                    except trio_websocket.ConnectionClosed:
                        tunnel = "closed"
            await wait_for_port_closed(GATEWAY, gateway_port, 2)
            leftovers = [pid for pid in children if pid_alive(pid)]
    assert took < 3, f"fast stop took {took:.1f} s"
    assert returncode == 0, gw.log_tail()
    assert leftovers == []
    assert tunnel == "closed"
    assert len(outcome) == 1 and outcome[0].startswith("cut"), outcome
