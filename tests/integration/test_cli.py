"""The command line: check, and start/status/stop through the pid file."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import (
    gateway_toml,
    open_gateway,
    pid_alive,
    run_cli,
    stop_by_pid_file,
    stop_pid,
    wait_pid_gone,
)
from tests.support.ports import wait_for_port_closed

GATEWAY = "127.0.0.1"
A = "127.0.0.2"

BROKEN = """
[listeners.public]
protocol = "ftp"
port = 70000

[pools.web]
servers = ["127.0.0.2"]

[settings.web]
port = 8080
request_timeout = 0

[rules.main]
listener = "public"
pool = "nowhere"
setting = "web"
colour = "blue"
"""

# Every mistake above, by the key path its error must name.
BROKEN_PATHS = [
    "listeners.public.protocol",
    "listeners.public.port",
    "settings.web.request_timeout",
    "rules.main.pool",
    "rules.main.colour",
]


async def test_check_lists_every_error_with_its_key_path(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(BROKEN)
    with trio.fail_after(30):
        result = await run_cli("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1, result
    missing = [path for path in BROKEN_PATHS if path not in result.output]
    assert not missing, f"errors not reported for {missing}:\n{result}"


async def test_check_accepts_a_good_configuration(tmp_path: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(
        gateway_toml(servers=["127.0.0.2", "127.0.0.3:8081"], backend_port=8080, http_port=8000)
    )
    with trio.fail_after(30):
        result = await run_cli("check", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result


SILENCE = (
    "rule 'http': WebSocket traffic is cut after 20 s of silence (requestTimeout of settings 'web')"
)


async def test_check_and_the_start_log_name_each_rules_websocket_silence_limit(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = tmp_path / "appgw.toml"
    config.write_text(gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port))
    with trio.fail_after(60):
        checked = await run_cli("check", "-c", str(config), cwd=tmp_path)
        assert checked.returncode == 0, checked
        assert SILENCE in checked.output, checked
        assert "Socket.IO (25 s), Jupyter (30 s), Streamlit (30 s)" in checked.output, checked
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            line = next(line for line in gw.log().splitlines() if SILENCE in line)
            assert " WARNING " in line and "raise settings.web.request_timeout" in line, line


async def test_start_status_stop_through_the_pid_file(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = tmp_path / "appgw.toml"
    config.write_text(gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port))
    pid_file = tmp_path / "appgw.pid"
    options = ("-c", str(config), "--workers", "2", "--pid-file", str(pid_file))
    pid: int | None = None
    try:
        with trio.fail_after(60):
            await start_http_backends(nursery, [A], backend_port)
            started = await run_cli("start", *options, cwd=tmp_path)
            assert started.returncode == 0, started
            # start returns once the gateway serves: no waiting here.
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/echo")).status == 200
            pid = int(pid_file.read_text().split()[0])
            assert pid_alive(pid)

            status = await run_cli("status", "--pid-file", str(pid_file), cwd=tmp_path)
            assert status.returncode == 0, status

            stopped = await run_cli("stop", "--pid-file", str(pid_file), cwd=tmp_path)
            assert stopped.returncode == 0, stopped
            await wait_pid_gone(pid, 15)
            await wait_for_port_closed(GATEWAY, gateway_port, 5)

            after = await run_cli("status", "--pid-file", str(pid_file), cwd=tmp_path)
            assert after.returncode != 0, after
    finally:
        with trio.CancelScope(shield=True):
            if pid is not None:
                await stop_pid(pid)
            await stop_by_pid_file(pid_file)
