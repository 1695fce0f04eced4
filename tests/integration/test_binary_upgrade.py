"""Binary upgrade (USR2) under load: a new master takes over the same sockets.

The old master starts a new `appgw run` that inherits the listening
sockets; once the new master's workers are ready it tells the old master to
drain and exit. Clients never see a refused connection or a failed request,
and tunnels on the old workers end within their drain window with 1001; their
clients reconnect to the new master (the test waits until each has).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, pid_alive, stop_pid, wait_pid_gone
from tests.support.load import HttpLoad, WsLoad, read_pid, workers_of
from tests.support.ports import wait_for_port_closed
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
DRAIN_TIMEOUT = 2
WEBSOCKETS = 5


def reconnected(ws: WsLoad, client: int) -> bool:
    """Client `client` had a session closed with 1001 and now has one open that echoes."""
    sessions = [s for s in ws.sessions if s.client == client]
    return (
        len(sessions) >= 2
        and sessions[0].code == 1001
        and sessions[-1].closed is None
        and sessions[-1].echoes > 0
    )


def describe(ws: WsLoad) -> str:
    return "; ".join(f"client {s.client}: code {s.code}, {s.echoes} echoes" for s in ws.sessions)


# Heavy load: never at the same time as another load test (pytest-xdist).
@pytest.mark.xdist_group("load")
async def test_usr2_under_load_hands_over_to_a_new_master(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        setting={"connection_draining": True, "drain_timeout": DRAIN_TIMEOUT},
    )
    new: int | None = None
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port, websocket=True)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            old = gw.pid
            old_workers = workers_of(old, GATEWAY, gateway_port)
            assert len(old_workers) == 2
            http = HttpLoad(GATEWAY, gateway_port)
            ws = WsLoad(f"ws://{GATEWAY}:{gateway_port}/ws")
            try:
                async with trio.open_nursery() as load:
                    await load.start(http.run, 4)
                    await load.start(ws.run, WEBSOCKETS)
                    gw.send_signal(signal.SIGUSR2)
                    # The new master takes the pid file, gets ready, and the
                    # old one drains and exits.
                    with trio.fail_after(20):
                        while (new := read_pid(gw.pid_file)) in (None, old):
                            await trio.sleep(0.05)
                    first_ready = gw.log().find("gateway ready")
                    await gw.wait_for_log("gateway ready", 20, start=first_ready + 1)
                    new_ready = trio.current_time()
                    returncode = await gw.wait(DRAIN_TIMEOUT + 15)
                    drained = trio.current_time() - new_ready
                    # The new master serves on alone for a while.
                    served_before = len(http.served)
                    await wait_until(
                        lambda: len(http.served) >= served_before + 50,
                        10,
                        lambda: (
                            f"50 requests after the handover ({len(http.served) - served_before})"
                        ),
                    )
                    # Every WebSocket client drained off the old master has
                    # reconnected, to the new one, and exchanged a message there.
                    await wait_until(
                        lambda: all(reconnected(ws, n) for n in range(WEBSOCKETS)),
                        10,
                        lambda: f"every client reconnects: {describe(ws)}",
                    )
                    await http.stopped()
                    ws.stop()
                    assert new is not None and pid_alive(new)
                    new_workers = workers_of(new, GATEWAY, gateway_port)
                    async with open_http(GATEWAY, gateway_port) as client:
                        assert (await client.get("/")).status == 200
                    # The last tunnels, on the new master, end with its TERM.
                    os.kill(new, signal.SIGTERM)
                    await wait_pid_gone(new, DRAIN_TIMEOUT + 10)
                await wait_for_port_closed(GATEWAY, gateway_port, 5)
            finally:
                if new is not None and new != old:
                    await stop_pid(new)
    assert returncode == 0, gw.log_tail()
    assert drained < DRAIN_TIMEOUT + 8, (
        f"the old master exited {drained:.1f} s after the new was ready"
    )
    assert not any(pid_alive(p) for p in old_workers)
    assert len(new_workers) == 2 and not set(new_workers) & set(old_workers)
    assert http.refused == [] and ws.refused == [], (http.refused + ws.refused)[:10]
    assert http.failures == [], http.failures[:10]
    assert len(ws.sessions) >= 2 * WEBSOCKETS  # the first ones were drained and reconnected
    codes = {s.code for s in ws.sessions}
    assert codes == {1001}, [(s.client, s.code, s.errors) for s in ws.sessions]
    assert all(not s.errors for s in ws.sessions)
    assert gw.log().count("gateway ready") == 2
