"""Process titles: what ps shows for the master, the workers and the prober.

The gateway is started through its CLI and the titles are read where ps
reads them, /proc/PID/cmdline, as they change: a reload moves the master
and the new workers to generation 2, and an old worker that still holds a
tunnel shows that it drains until the tunnel ends.
"""

from __future__ import annotations

import signal
from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_ws
from tests.support.gateway import GatewayProcess, gateway_toml, open_gateway
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


def title(pid: int) -> str:
    """The process title as ps shows it ('' once the process is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def titles(gw: GatewayProcess) -> list[str]:
    return sorted(title(pid) for pid in gw.children())


async def test_titles_name_each_process_its_generation_and_a_drain(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port, websocket=True)
        config = gateway_toml(
            servers=[A],
            backend_port=backend_port,
            http_port=gateway_port,
            setting={"connection_draining": True, "drain_timeout": 30},
        )
        async with open_gateway(config, tmp_path, workers=2) as gw:
            master = f"appgw: master (gen 1) -c {gw.config_path}"
            first = sorted(["appgw: prober", "appgw: worker (gen 1)", "appgw: worker (gen 1)"])
            await wait_until(lambda: title(gw.pid) == master, 10, lambda: title(gw.pid))
            await wait_until(lambda: titles(gw) == first, 10, lambda: repr(titles(gw)))

            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws/held") as ws:
                await ws.send_message("before")
                assert await ws.get_message() == "before"
                gw.send_signal(signal.SIGHUP)
                master = f"appgw: master (gen 2) -c {gw.config_path}"
                await wait_until(lambda: title(gw.pid) == master, 20, lambda: title(gw.pid))
                # The old worker without a connection exits; the one holding
                # the tunnel stays, and says it drains.
                during = sorted(
                    [
                        "appgw: prober",
                        "appgw: worker (gen 1, draining)",
                        "appgw: worker (gen 2)",
                        "appgw: worker (gen 2)",
                    ]
                )
                await wait_until(lambda: titles(gw) == during, 20, lambda: repr(titles(gw)))
                await ws.send_message("during")
                assert await ws.get_message() == "during"
            after = sorted(["appgw: prober", "appgw: worker (gen 2)", "appgw: worker (gen 2)"])
            await wait_until(lambda: titles(gw) == after, 20, lambda: repr(titles(gw)))
