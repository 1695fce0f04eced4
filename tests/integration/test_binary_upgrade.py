"""Binary upgrade (USR2) under load: a new master takes over the same sockets.

The old master starts a new `appgw run` that inherits the listening
sockets; once the new master's workers are ready it tells the old master to
drain and exit. Clients never see a refused connection or a failed request,
and tunnels on the old workers end at their drain deadline with 1001.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, pid_alive, stop_pid, wait_pid_gone
from tests.support.load import HttpLoad, WsLoad, read_pid, workers_of
from tests.support.ports import wait_for_port_closed

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
DRAIN_TIMEOUT = 2


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
                    await load.start(ws.run, 5)
                    upgraded = trio.current_time()
                    gw.send_signal(signal.SIGUSR2)
                    # The new master takes the pid file, gets ready, and the
                    # old one drains and exits.
                    with trio.fail_after(20):
                        while (new := read_pid(gw.pid_file)) in (None, old):
                            await trio.sleep(0.05)
                    first_ready = gw.log().find("gateway ready")
                    await gw.wait_for_log("gateway ready", 20, start=first_ready + 1)
                    returncode = await gw.wait(DRAIN_TIMEOUT + 15)
                    old_gone = trio.current_time() - upgraded
                    # The new master serves on alone for a while.
                    served_before = len(http.served)
                    with trio.fail_after(10):
                        while len(http.served) < served_before + 50:
                            await trio.sleep(0.05)
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
    assert old_gone < DRAIN_TIMEOUT + 10
    assert not any(pid_alive(p) for p in old_workers)
    assert len(new_workers) == 2 and not set(new_workers) & set(old_workers)
    assert http.refused == [] and ws.refused == [], (http.refused + ws.refused)[:10]
    assert http.failures == [], http.failures[:10]
    assert len(ws.sessions) >= 10  # the first five were drained and reconnected
    codes = {s.code for s in ws.sessions}
    assert codes == {1001}, [(s.client, s.code, s.errors) for s in ws.sessions]
    assert all(not s.errors for s in ws.sessions)
    assert gw.log().count("gateway ready") == 2
