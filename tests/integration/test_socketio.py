"""Socket.IO behind the gateway, with a reload in the middle, without the network.

Two python-socketio servers (aiohttp, each its own process) on 127.0.0.2
and 127.0.0.3 behind one pool with cookie-based affinity; python-socketio
clients connect through the gateway the way Socket.IO does by default,
long polling first and then the WebSocket upgrade. That only works when
every request of a session reaches the server that made it: the affinity
cookie of the first poll must carry the later polls and the upgrade. Then
`appgw reload`: the old generation drains, its tunnels end with 1001
spread over the drain window, and each client reconnects through the new
generation to the same backend as before (its cookie), where its next
calls are answered. The programs: tests/support/sio_apps.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.gateway import appgw_env, gateway_toml, open_gateway
from tests.support.load import reload
from tests.support.ports import wait_for_port
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
B = "127.0.0.3"
CLIENTS = 8
DRAIN = 3
ROOT = Path(__file__).resolve().parents[2]


async def start_program(nursery: trio.Nursery, *args: str, **kwargs: Any) -> trio.Process:
    command = [sys.executable, "-m", "tests.support.sio_apps", *args]
    run = partial(trio.run_process, command, cwd=str(ROOT), env=appgw_env(), check=False)
    return await nursery.start(partial(run, **kwargs))


def events_of(events: list[dict[str, Any]], client: int) -> list[dict[str, Any]]:
    return [e for e in events if e["client"] == client]


def first_backend(events: list[dict[str, Any]], client: int) -> str | None:
    return next((e["backend"] for e in events_of(events, client) if e["event"] == "whoami"), None)


def answered_after_reconnecting(events: list[dict[str, Any]], client: int) -> bool:
    mine = [e["event"] for e in events_of(events, client)]
    if "disconnected" not in mine:
        return False
    after = mine[mine.index("disconnected") :]
    return "connected" in after and "whoami" in after[after.index("connected") :]


@pytest.mark.xdist_group("load")
@pytest.mark.timeout(120)
async def test_socketio_sessions_keep_their_backend_across_a_reload(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    events: list[dict[str, Any]] = []

    async def read(stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for data in stream:
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            events.extend(json.loads(line) for line in lines if line.strip())

    with trio.fail_after(100):
        servers = [
            await start_program(nursery, "server", host, str(backend_port), name)
            for host, name in ((A, "a"), (B, "b"))
        ]
        for host in (A, B):
            await wait_for_port(host, backend_port, 20)
        config = gateway_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            request_timeout=60,  # above Socket.IO's 25 s ping interval
            setting={
                "cookie_based_affinity": True,
                "connection_draining": True,
                "drain_timeout": DRAIN,
            },
            gateway={"affinity_secret": "socket.io test"},
        )
        async with open_gateway(config, tmp_path, workers=2) as gw:
            client = await start_program(
                nursery,
                "client",
                f"http://{GATEWAY}:{gateway_port}",
                str(CLIENTS),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert client.stdout is not None and client.stdin is not None
            nursery.start_soon(read, client.stdout)
            await wait_until(
                lambda: all(first_backend(events, n) for n in range(CLIENTS)),
                30,
                lambda: f"every client answered: {events[-10:]}",
            )
            before = {n: first_backend(events, n) for n in range(CLIENTS)}
            upgraded = {
                e["client"]
                for e in events
                if e["event"] == "whoami" and e["transport"] == "websocket"
            }
            result = await reload(gw)
            assert result.returncode == 0, result
            await wait_until(
                lambda: all(answered_after_reconnecting(events, n) for n in range(CLIENTS)),
                DRAIN + 30,
                lambda: f"every client reconnected and answered: {events[-10:]}",
            )
            await client.stdin.aclose()  # the clients disconnect and exit
            with trio.fail_after(15):
                await client.wait()
            log = gw.log()
        for server in servers:
            server.terminate()

    # Both backends had clients (the pool balances), and every session upgraded.
    assert set(before.values()) == {"a", "b"}, before
    assert upgraded == set(range(CLIENTS)), upgraded
    problems = []
    for n in range(CLIENTS):
        mine = events_of(events, n)
        cut = [e for e in mine if e["event"] == "disconnected"]
        # Only the end of the clients' run disconnects them again.
        if len(cut) not in (1, 2):
            problems.append(f"client {n} was disconnected {len(cut)} times")
        reconnected = mine[[e["event"] for e in mine].index("disconnected") :]
        backends = {e["backend"] for e in reconnected if e["event"] == "whoami"}
        if backends != {before[n]}:
            problems.append(f"client {n} on {before[n]} before the reload, {backends} after")
    assert problems == [], problems
    # The old generation ended each tunnel itself, with 1001, within its window.
    drained = [line for line in log.splitlines() if "closed by gateway (1001): drained" in line]
    assert len(drained) >= CLIENTS, log[-3000:]
