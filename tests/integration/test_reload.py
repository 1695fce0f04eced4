"""Reload (`appgw reload`) under load: nothing refused, nothing lost, tunnels drained.

The scenario: HTTP keep-alive clients loop requests and 50 WebSocket clients
exchange messages while the configuration is reloaded many times, changing
the pool (between a backend on 127.0.0.2 and one on 127.0.0.3), adding and
removing a listener, or changing nothing. Each reload goes through the
command line, which waits for the new generation. Tunnels of a retired
generation run on through the drain (connection draining on, a short drain
timeout), each until its own moment of the drain window, and then end with
a Close frame, code 1001; their clients reconnect to the new generation.

APPGW_TEST_RELOADS sets the number of reloads (default 10: every kind of
reload twice, each from a state the other cycle does not start from).
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import GatewayProcess, gateway_toml, open_gateway
from tests.support.load import (
    HttpLoad,
    Served,
    WsLoad,
    WsSession,
    generation_workers,
    listener_toml,
    reload,
    retired_workers,
    wait_for_draining,
)
from tests.support.ports import free_port, wait_for_port, wait_for_port_closed

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
B = "127.0.0.3"
RELOADS = int(os.environ.get("APPGW_TEST_RELOADS", "10"))
WEBSOCKETS = 50
DRAIN_TIMEOUT = 3
PAUSE = 0.5  # seconds of load between two reloads (what is checked does not depend on it)
# Seconds a Close frame sent in a drain window may take to reach its
# client. Far below what would otherwise end a tunnel: the worker's own
# budget after the deadline (8 s), after which it closes without a Close
# frame (1006), and the idle timeout (request_timeout, 20 s).
LATE = 2.5
EVENT = 15.0  # budget for one event a step waits for (a worker drains, a port opens)


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
    started: float = 0.0  # the configuration written, before `appgw reload`
    ended: float = 0.0  # `appgw reload` returned: the new generation is ready
    drained: float = 0.0  # every worker of the old generation was seen draining


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


def closed_in_drain_window(session: WsSession, retirements: list[Step]) -> str | None:
    """Why `session` did not end within the drain window of the reload that retired it.

    Only the order of events is used. The worker that served the session
    accepted it between `connecting` and `opened`, while it still accepted:
    before it drained, so its generation was retired by a step that drained
    after `connecting`; and after the step that started its generation
    began. That step retired it and began its drain between its `started`
    and its `drained`: the Close comes at the tunnel's moment of the drain
    window, after the drain began and at most DRAIN_TIMEOUT later (plus
    LATE to reach the client).
    """
    assert session.closed is not None
    possible = [
        step
        for i, step in enumerate(retirements)
        if step.drained >= session.connecting
        and (i == 0 or retirements[i - 1].started <= session.opened)
    ]
    if not possible:
        return "closed without a reload"
    for step in possible:
        if step.started <= session.closed <= step.drained + DRAIN_TIMEOUT + LATE:
            return None
    windows = ", ".join(f"{s.started:.2f}-{s.drained:.2f}" for s in possible)
    return (
        f"opened at {session.opened:.2f}, closed at {session.closed:.2f}: not within "
        f"{DRAIN_TIMEOUT} s of the drain of the reload that retired it ({windows})"
    )


def off_the_new_pool(served: list[Served], step: Step, end: float) -> list[str]:
    """Requests after `step`'s drain that did not go to its pool, unless allowed.

    Once a worker drains it takes at most one more request on each of its
    keep-alive connections (one already on its way), answers it with
    `Connection: close` and closes. So after the drain was seen, a request
    may still reach the old pool only as the first request of its
    connection from then on, closing it; every other one goes to the new
    pool.
    """
    problems = []
    seen: set[int] = set()
    for s in sorted(served, key=lambda s: s.started):
        if not step.drained <= s.started <= end:
            continue
        first = s.connection not in seen
        seen.add(s.connection)
        if s.backend != step.pool and not (first and s.closed):
            problems.append(
                f"request at {s.started:.2f} on connection {s.connection} went to "
                f"{s.backend} after the reload to {step.pool} (drained {step.drained:.2f})"
            )
    return problems


STEP_BUDGET = 8.0  # seconds one reload step may take on a busy machine, PAUSE included


# Heavy load: never at the same time as another load test (pytest-xdist).
@pytest.mark.xdist_group("load")
@pytest.mark.timeout(60 + RELOADS * STEP_BUDGET + DRAIN_TIMEOUT)
async def test_reloads_under_load_lose_nothing_and_drain_tunnels_with_1001(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    steps = plan_steps(RELOADS)
    budget = 30 + RELOADS * STEP_BUDGET + DRAIN_TIMEOUT
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
                extra: int | None = None
                generation = 1
                for step in steps:
                    generation = await reload_step(gw, gateway_port, backend_port, step, extra)
                    extra = step.extra_port
                    await trio.sleep(PAUSE)  # load runs on the new generation for a while
                await http.stopped()
                ws.stop()
                # Graceful stop with the last generation's tunnels open: they
                # too end at the drain deadline with 1001.
                last = generation_workers(gw.log(), generation)
                offset = len(gw.log())
                term = Step("term", "", None, trio.current_time())
                gw.send_signal(signal.SIGTERM)
                term.ended = term.drained = await wait_for_draining(gw, last, offset, EVENT)
                returncode = await gw.wait(DRAIN_TIMEOUT + 10)
    print(
        f"{len(http.served)} requests on {http.connections} connections, "
        f"{len(ws.sessions)} WebSocket sessions, {RELOADS} reloads"
    )

    assert http.refused == [] and ws.refused == [], (http.refused + ws.refused)[:10]
    assert http.failures == [], http.failures[:10]
    assert returncode == 0, gw.log_tail()
    # Traffic followed the pool of each reload once the old generation drained.
    for step, after in zip(steps, [*steps[1:], None], strict=True):
        end = after.started if after is not None else term.started
        assert http.backends_between(step.ended, end) >= {step.pool}
        problems = off_the_new_pool(http.served, step, end)
        assert problems == [], problems[:10]
    # Every WebSocket exchanged messages, stayed open into the drain window
    # (of the reload that retired its generation, or of the final TERM) and
    # then received a Close frame with 1001, by the window's end.
    assert len(ws.sessions) >= 2 * WEBSOCKETS
    retirements = [*steps, term]
    problems = []
    for session in ws.sessions:
        if session.errors:
            problems.append(f"client {session.client}: {session.errors}")
        if session.code != 1001:
            problems.append(f"client {session.client}: close code {session.code}")
        if session.echoes == 0:
            problems.append(f"client {session.client}: no message exchanged")
        why = closed_in_drain_window(session, retirements)
        if why:
            problems.append(f"client {session.client}: {why}")
    assert problems == [], problems[:20]


async def reload_step(
    gw: GatewayProcess, gateway_port: int, backend_port: int, step: Step, previous: int | None
) -> int:
    """One reload, through to the old generation draining; the new generation's number."""
    gw.config_path.write_text(reload_config(gateway_port, backend_port, step.pool, step.extra_port))
    offset = len(gw.log())
    step.started = trio.current_time()
    result = await reload(gw)
    step.ended = trio.current_time()
    assert result.returncode == 0, result
    generation = re.search(r"generation (\d+)", result.output)
    assert generation is not None, result
    # The master retired the old workers before it reported the reload done.
    retired = retired_workers(gw.log(), offset)
    assert retired, gw.log()[offset:]
    step.drained = await wait_for_draining(gw, retired, offset, EVENT)
    await wait_for_pool(gateway_port, step.pool, EVENT)
    if step.kind == "add":
        assert step.extra_port is not None
        await wait_for_port(GATEWAY, step.extra_port, EVENT)
        assert await fresh_backend(step.extra_port) == step.pool
    elif step.kind == "remove" and previous is not None:
        # Its workers drained, nobody holds the socket any more: refused,
        # long before the drained tunnels end (DRAIN_TIMEOUT).
        await wait_for_port_closed(GATEWAY, previous, DRAIN_TIMEOUT)
    return int(generation.group(1))


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
                [tunnel] = ws.sessions
                gw.config_path.write_text(reload_config(gateway_port, backend_port, A, None))
                result = await reload(gw)
                assert result.returncode == 0, result
                # Refused while the old generation still drains that tunnel
                # (it runs until its deadline, DRAIN_TIMEOUT after the drain).
                await wait_for_port_closed(GATEWAY, extra_port, EVENT)
                still_open = tunnel.closed is None
                ws.stop()
            assert gw.returncode is None
    assert still_open, f"the port was refused only after the tunnel ended:\n{gw.log_tail()}"
    # The tunnel itself was drained as usual.
    assert [s.code for s in ws.sessions] == [1001]
