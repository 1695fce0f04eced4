"""At the descriptor limit: the soft limit raised at start, a pause told once each way.

The gateway starts under a low limit (soft 128, hard 256, set in the child
before it runs). The master raises the soft limit to the hard one, logs the
limit in force and warns that it is below what the configuration needs.
Idle client connections then use up the one worker's descriptors: it
pauses accepting (one log line, however long), the connections beyond its
limit wait in the backlog, and once the idle ones close it serves again
(one more line, with how long and how many accepts were deferred). The
pause and the deferred accepts are counted on /metrics.
"""

from __future__ import annotations

import json
import re
import resource
from pathlib import Path

import trio

from appgw import runfiles
from appgw.metrics import value
from tests.support.admin import sample, wait_for_metrics
from tests.support.backends import start_http_backends
from tests.support.clients import get
from tests.support.gateway import GatewayProcess, gateway_toml, open_gateway, toml_table
from tests.support.hostile import raise_nofile
from tests.support.ports import free_port
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
SOFT, HARD = 128, 256
IDLE = 300  # idle client connections: more than one worker can hold under HARD


def low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


def deferred_so_far(gw: GatewayProcess) -> float:
    """Accepts deferred, from the metrics file the master writes once a second.

    (The admin listener cannot be reached while the worker is out of
    descriptors: its accepts wait too.)
    """
    try:
        document = json.loads(Path(runfiles.metrics_file(str(gw.pid_file))).read_text())
    except (FileNotFoundError, ValueError):
        return 0.0
    return value(document.get("metrics") or {}, "appgw_accepts_deferred_total")


def accept_lines(gw: GatewayProcess) -> list[str]:
    return [line for line in gw.log().splitlines() if "accept on " in line]


async def test_a_pause_at_the_descriptor_limit_is_logged_once_each_way_and_counted(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    raise_nofile(IDLE + 200)  # this test's own end of the connections
    while (admin_port := free_port(GATEWAY)) == gateway_port:
        pass
    idle: list[trio.SocketStream] = []
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        config = gateway_toml(
            servers=[A],
            backend_port=backend_port,
            http_port=gateway_port,
            limits={"header_timeout": 60.0},  # the idle connections outlive the test
        ) + toml_table("gateway.admin", {"port": admin_port})
        async with open_gateway(config, tmp_path, workers=1, preexec_fn=low_limit) as gw:
            log = gw.log()
            assert f"descriptors: limit {HARD} per process (raised from {SOFT})" in log, log
            assert re.search(rf"the limit of {HARD} per process is below the \d+", log), log
            assert (await get(GATEWAY, gateway_port, "/")).status == 200
            try:
                for _ in range(IDLE):
                    idle.append(await trio.open_tcp_stream(GATEWAY, gateway_port))
                await gw.wait_for_log("pausing accepts", 20)
                # The pause goes on: accepts keep being refused and retried.
                await wait_until(lambda: deferred_so_far(gw) >= 5, 20, "accepts deferred")
            finally:
                for stream in idle:
                    await trio.aclose_forcefully(stream)

            async def served_and_said() -> bool:
                assert (await get(GATEWAY, gateway_port, "/")).status == 200
                return "accepting again" in gw.log()

            # The pause ends at the first accept after half a second without a refusal.
            await wait_until(served_and_said, 20, "the pause's end in the log", poll=0.1)
            lines = accept_lines(gw)
            assert len(lines) == 2, "\n".join(lines)
            assert f"accept on {GATEWAY}:{gateway_port}: [Errno 24]" in lines[0], lines
            assert "pausing accepts until descriptors are free" in lines[0], lines
            ended = re.search(r"accepting again after [\d.]+ s paused; (\d+) accept", lines[1])
            assert ended is not None, lines
            deferred = int(ended.group(1))
            assert deferred >= 5, lines
            # Counted on /metrics as logged (the counts come with the next heartbeat).
            samples = await wait_for_metrics(
                admin_port, lambda s: sample(s, "appgw_accepts_deferred_total") >= deferred
            )
            assert sample(samples, "appgw_accepts_deferred_total") == deferred
            assert sample(samples, "appgw_accept_pauses_total") == 1
