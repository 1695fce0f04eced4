"""Reload (`appgw reload`) under load: nothing refused, nothing lost, tunnels drained.

The scenario: HTTP keep-alive clients loop requests and 50 WebSocket clients
exchange messages while the configuration is reloaded many times, changing
the pool (between a backend on 127.0.0.2 and one on 127.0.0.3), adding and
removing a listener, or changing nothing. Each reload goes through the
command line, which waits for the new generation. Tunnels of a retired
generation run until their drain deadline (connection draining on, a short
drain timeout) and then end with a Close frame, code 1001; their clients
reconnect to the new generation.

APPGW_TEST_RELOADS sets the number of reloads (default 20).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import GatewayProcess, gateway_toml, open_gateway
from tests.support.load import HttpLoad, WsLoad, WsSession, listener_toml, reload
from tests.support.ports import free_port, wait_for_port, wait_for_port_closed

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
B = "127.0.0.3"
RELOADS = int(os.environ.get("APPGW_TEST_RELOADS", "20"))
WEBSOCKETS = 50
DRAIN_TIMEOUT = 3
PAUSE = 1.0  # seconds of load between two reloads
SETTLE = 0.8  # seconds after a reload by which every new request goes to the new pool
# Seconds after `appgw reload` returned by which a removed listener's port
# refuses connections: the new generation is ready and the old one no longer
# accepts, so a connection that still queued there would never be served.
LISTENER_GONE = 2.0


def reload_config(gateway_port: int, backend_port: int, pool: str, extra_port: int | None) -> str:
    text = gateway_toml(
        servers=[pool],
        backend_port=backend_port,
        http_port=gateway_port,
        setting={"connection_draining": True, "drain_timeout": DRAIN_TIMEOUT},
    )
    if extra_port is not None:
        text += "\n" + listener_toml("extra", extra_port)
    return text


@attrs.define
class Step:
    kind: str  # "pool" | "add" | "remove" | "same"
    pool: str
    extra_port: int | None
    started: float = 0.0
    ended: float = 0.0


def plan_steps(count: int) -> list[Step]:
    """Reloads cycling through: change the pool, add a listener, change the pool,
    remove the listener, change nothing."""
    steps = []
    pool = A
    extra: int | None = None
    kinds = ["pool", "add", "pool", "remove", "same"]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "pool":
            pool = B if pool == A else A
        elif kind == "add":
            extra = free_port(GATEWAY)
        elif kind == "remove":
            extra = None
        steps.append(Step(kind, pool, extra))
    return steps


async def fresh_backend(port: int) -> str | None:
    async with open_http(GATEWAY, port) as client:
        response = await client.get("/")
    assert response.status == 200, response
    return response.header("x-backend")


async def wait_for_pool(port: int, pool: str, timeout: float) -> None:
    """New connections reach `pool`: three in a row."""
    streak = 0
    with trio.fail_after(timeout):
        while streak < 3:
            streak = streak + 1 if await fresh_backend(port) == pool else 0


def closed_at_drain_deadline(session: WsSession, retirements: list[Step]) -> str | None:
    """Why `session` did not end at the drain deadline of the reload that retired it."""
    assert session.closed is not None
    # The generation that served it is retired by the first reload that ends
    # after it opened; or by the next one, if it opened while a reload was
    # under way (the new generation may already accept before the command
    # returns). A little slack allows for a connection accepted just as its
    # worker was told to drain.
    later = [s for s in retirements if s.ended > session.opened - 0.3]
    if not later:
        return "closed without a reload"
    possible = later[:2] if session.opened > later[0].started - 0.3 else later[:1]
    drain_started = session.closed - DRAIN_TIMEOUT
    for step in possible:
        if step.started - 0.2 <= drain_started <= step.ended + 1.0:
            return None
    windows = ", ".join(f"{s.started:.2f}-{s.ended:.2f}" for s in possible)
    return (
        f"opened at {session.opened:.2f}, closed at {session.closed:.2f}: not "
        f"{DRAIN_TIMEOUT} s after the reload that retired it ({windows})"
    )


@pytest.mark.timeout(60 + RELOADS * (PAUSE + 2.5) + DRAIN_TIMEOUT)
async def test_reloads_under_load_lose_nothing_and_drain_tunnels_with_1001(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    steps = plan_steps(RELOADS)
    budget = 30 + RELOADS * (PAUSE + 2.5) + DRAIN_TIMEOUT
    listener_problems: list[str] = []
    with trio.fail_after(budget):
        await start_http_backends(nursery, [A, B], backend_port, websocket=True)
        config = reload_config(gateway_port, backend_port, A, None)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            http = HttpLoad(GATEWAY, gateway_port)
            ws = WsLoad(f"ws://{GATEWAY}:{gateway_port}/ws")
            async with trio.open_nursery() as load:
                await load.start(http.run, 4)
                await load.start(ws.run, WEBSOCKETS)
                assert await fresh_backend(gateway_port) == A
                async with trio.open_nursery() as checks:
                    extra: int | None = None
                    for step in steps:
                        await reload_step(
                            gw, gateway_port, backend_port, step, extra, checks, listener_problems
                        )
                        extra = step.extra_port
                        await trio.sleep(PAUSE)  # load runs on the new generation for a while
                    # (the checks that removed listeners' ports close end here)
                await http.stopped()
                ws.stop()
                # Graceful stop with the last generation's tunnels open: they
                # too end at the drain deadline with 1001.
                term = trio.current_time()
                gw.send_signal(signal.SIGTERM)
                returncode = await gw.wait(DRAIN_TIMEOUT + 10)
                stopped = trio.current_time() - term
    print(
        f"{len(http.served)} requests on {http.connections} connections, "
        f"{len(ws.sessions)} WebSocket sessions, {RELOADS} reloads"
    )

    assert http.refused == [] and ws.refused == [], (http.refused + ws.refused)[:10]
    assert http.failures == [], http.failures[:10]
    assert returncode == 0, gw.log_tail()
    assert stopped < DRAIN_TIMEOUT + 5, f"TERM took {stopped:.1f} s"
    # Traffic followed the pool of each reload.
    for step, after in zip(steps, [*steps[1:], None], strict=True):
        end = after.started if after is not None else term
        seen = http.backends_between(step.ended + SETTLE, end)
        assert seen <= {step.pool}, f"after the reload to {step.pool}: {seen}"
    # Every WebSocket exchanged messages, stayed open until its drain
    # deadline (of the reload that retired its generation, or of the final
    # TERM) and then received a Close frame with 1001.
    assert len(ws.sessions) >= 2 * WEBSOCKETS
    retirements = [*steps, Step("term", "", None, term, term)]
    problems = []
    for session in ws.sessions:
        if session.errors:
            problems.append(f"client {session.client}: {session.errors}")
        if session.code != 1001:
            problems.append(f"client {session.client}: close code {session.code}")
        if session.echoes == 0:
            problems.append(f"client {session.client}: no message exchanged")
        why = closed_at_drain_deadline(session, retirements)
        if why:
            problems.append(f"client {session.client}: {why}")
    assert problems == [], problems[:20]
    # Removed listeners stopped accepting once their reload was done.
    assert listener_problems == []


async def reload_step(
    gw: GatewayProcess,
    gateway_port: int,
    backend_port: int,
    step: Step,
    previous: int | None,
    nursery: trio.Nursery,
    listener_problems: list[str],
) -> None:
    gw.config_path.write_text(reload_config(gateway_port, backend_port, step.pool, step.extra_port))
    step.started = trio.current_time()
    result = await reload(gw)
    step.ended = trio.current_time()
    assert result.returncode == 0, result
    await wait_for_pool(gateway_port, step.pool, 5)
    if step.kind == "add":
        assert step.extra_port is not None
        await wait_for_port(GATEWAY, step.extra_port, 2)
        assert await fresh_backend(step.extra_port) == step.pool
    elif step.kind == "remove" and previous is not None:
        nursery.start_soon(expect_port_closed, previous, listener_problems)


async def expect_port_closed(port: int, problems: list[str]) -> None:
    try:
        await wait_for_port_closed(GATEWAY, port, LISTENER_GONE)
    except trio.TooSlowError:
        problems.append(
            f"removed listener on port {port} still accepted connections "
            f"{LISTENER_GONE} s after the reload"
        )


async def test_invalid_config_on_reload_keeps_the_old_one_serving(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        await start_http_backends(nursery, [A, B], backend_port)
        good = reload_config(gateway_port, backend_port, A, None)
        async with open_gateway(good, tmp_path, workers=1) as gw:
            async with open_http(GATEWAY, gateway_port) as kept:
                assert (await kept.get("/")).header("x-backend") == A
                # Two errors in the new file (and a pool change that must not
                # take effect).
                bad = (
                    reload_config(gateway_port, backend_port, B, None).replace(
                        "request_timeout = 20", "request_timeout = 0"
                    )
                    + '\n[pools.orphan]\nservers = ["127.0.0.9"]\nbogus = 1\n'
                )
                gw.config_path.write_text(bad)
                log_offset = len(gw.log())
                result = await reload(gw)
                assert result.returncode != 0, result
                assert "settings.web.request_timeout" in result.output, result
                assert "pools.orphan.bogus" in result.output, result
                await gw.wait_for_log("settings.web.request_timeout", 5, start=log_offset)
                # The old configuration goes on serving, old and new connections.
                assert (await kept.get("/")).header("x-backend") == A
                for _ in range(3):
                    assert await fresh_backend(gateway_port) == A
                # A good file again: the reload goes through.
                gw.config_path.write_text(reload_config(gateway_port, backend_port, B, None))
                result = await reload(gw)
                assert result.returncode == 0, result
                await wait_for_pool(gateway_port, B, 5)
            assert gw.returncode is None


async def test_removed_listener_stops_accepting_while_old_tunnels_drain(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    extra_port = free_port(GATEWAY)
    with trio.fail_after(40):
        await start_http_backends(nursery, [A], backend_port, websocket=True)
        config = reload_config(gateway_port, backend_port, A, extra_port)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            assert await fresh_backend(extra_port) == A
            ws = WsLoad(f"ws://{GATEWAY}:{gateway_port}/ws")
            async with trio.open_nursery() as load:
                # A tunnel keeps the old generation draining for DRAIN_TIMEOUT.
                await load.start(ws.run, 1)
                gw.config_path.write_text(reload_config(gateway_port, backend_port, A, None))
                result = await reload(gw)
                assert result.returncode == 0, result
                reloaded = trio.current_time()
                problems: list[str] = []
                await expect_port_closed(extra_port, problems)
                refused_after = trio.current_time() - reloaded
                ws.stop()
            assert gw.returncode is None
    assert problems == [], gw.log_tail()
    assert refused_after < DRAIN_TIMEOUT
    # The tunnel itself was drained as usual.
    assert [s.code for s in ws.sessions] == [1001]
