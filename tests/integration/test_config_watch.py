"""Config watch: the master reloads when its configuration file changes.

`--watch` on `run` and `start`, or `gateway.watch = true`: an edited file is
applied like a HUP, a broken one changes nothing and is logged, and the
symlink swap by which Kubernetes updates a mounted ConfigMap is noticed.
Each test waits for the master's log line or its state file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import trio

from appgw import runfiles
from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import (
    gateway_toml,
    open_gateway,
    pid_alive,
    run_cli,
    stop_by_pid_file,
    wait_pid_gone,
)
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
B = "127.0.0.3"
APPLIED = "reload complete: generation 2 ready"


def config_for(gateway_port: int, backend_port: int, pool: str, **gateway: object) -> str:
    return gateway_toml(
        servers=[pool], backend_port=backend_port, http_port=gateway_port, gateway=gateway or None
    )


async def fresh_backend(port: int) -> str | None:
    async with open_http(GATEWAY, port) as client:
        response = await client.get("/")
    assert response.status == 200, response
    return response.header("x-backend")


async def wait_for_pool(port: int, pool: str) -> None:
    """New connections reach `pool`: three in a row."""
    streak = 0
    while streak < 3:
        streak = streak + 1 if await fresh_backend(port) == pool else 0


def state_of(pid_file: Path) -> dict[str, object]:
    try:
        return json.loads(Path(runfiles.state_file(str(pid_file))).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def replace_file(path: Path, text: str) -> None:
    """Write a new version the way editors do: a new file renamed over the old."""
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    os.replace(new, path)


async def test_an_edited_file_is_applied(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        await start_http_backends(nursery, [A, B], backend_port)
        config = config_for(gateway_port, backend_port, A)
        async with open_gateway(config, tmp_path, workers=1, extra_args=["--watch"]) as gw:
            assert await fresh_backend(gateway_port) == A
            assert state_of(gw.pid_file)["watch"] is True
            offset = len(gw.log())
            # Edited in place: same inode, new size and time.
            gw.config_path.write_text(config_for(gateway_port, backend_port, B))
            await gw.wait_for_log(APPLIED, 20, start=offset)
            await wait_for_pool(gateway_port, B)
            assert f"{gw.config_path} changed" in gw.log()[offset:]


async def test_a_broken_file_is_refused_and_logged(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        await start_http_backends(nursery, [A, B], backend_port)
        # Turned on in the file itself this time.
        config = config_for(gateway_port, backend_port, A, watch=True)
        async with open_gateway(config, tmp_path, workers=1) as gw:
            assert await fresh_backend(gateway_port) == A
            async with open_http(GATEWAY, gateway_port) as kept:
                assert (await kept.get("/")).header("x-backend") == A
                offset = len(gw.log())
                broken = config_for(gateway_port, backend_port, B, watch=True).replace(
                    "request_timeout = 20", "request_timeout = 0"
                )
                replace_file(gw.config_path, broken)
                await gw.wait_for_log("reload refused", 20, start=offset)
                assert "settings.web.request_timeout" in gw.log()[offset:]
                # (The state file follows the log line.)
                last = await wait_until(
                    lambda: state_of(gw.pid_file)["last_reload"], 10, "the reload's outcome"
                )
                assert isinstance(last, dict) and last["ok"] is False, last
                assert state_of(gw.pid_file)["generation"] == 1
                # Still serving the previous configuration, old and new connections.
                assert (await kept.get("/")).header("x-backend") == A
                assert await fresh_backend(gateway_port) == A
            # Repaired: applied.
            offset = len(gw.log())
            replace_file(gw.config_path, config_for(gateway_port, backend_port, B, watch=True))
            await gw.wait_for_log(APPLIED, 20, start=offset)
            await wait_for_pool(gateway_port, B)


def configmap_volume(directory: Path, text: str) -> Path:
    """A directory laid out like a mounted Kubernetes ConfigMap; the file's path."""
    directory.mkdir()
    (directory / "..2024_01_01").mkdir()
    (directory / "..2024_01_01" / "appgw.toml").write_text(text)
    os.symlink("..2024_01_01", directory / "..data")
    os.symlink("..data/appgw.toml", directory / "appgw.toml")
    return directory / "appgw.toml"


def configmap_update(directory: Path, name: str, text: str) -> None:
    """What the kubelet does: a new timestamped directory, `..data` re-pointed atomically."""
    (directory / name).mkdir()
    (directory / name / "appgw.toml").write_text(text)
    os.symlink(name, directory / "..data_tmp")
    os.replace(directory / "..data_tmp", directory / "..data")


async def test_a_configmap_symlink_swap_is_noticed(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        await start_http_backends(nursery, [A, B], backend_port)
        # The same size before and after, so only the swap itself tells.
        before = config_for(gateway_port, backend_port, A)
        after = config_for(gateway_port, backend_port, B)
        assert len(before) == len(after)
        volume = tmp_path / "config"
        path = configmap_volume(volume, before)
        async with open_gateway(path, tmp_path, workers=1, extra_args=["--watch"]) as gw:
            assert await fresh_backend(gateway_port) == A
            offset = len(gw.log())
            configmap_update(volume, "..2024_01_02", after)
            await gw.wait_for_log(APPLIED, 20, start=offset)
            await wait_for_pool(gateway_port, B)


async def _wait_for_generation(pid_file: Path, generation: int) -> None:
    await wait_until(
        lambda: state_of(pid_file).get("generation") == generation,
        20,
        f"generation {generation} in the state file",
    )


async def test_start_passes_watch_on(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = tmp_path / "appgw.toml"
    config.write_text(config_for(gateway_port, backend_port, A))
    pid_file = tmp_path / "appgw.pid"
    options = ("-c", str(config), "--workers", "1", "--pid-file", str(pid_file), "--watch")
    try:
        with trio.fail_after(60):
            await start_http_backends(nursery, [A, B], backend_port)
            started = await run_cli("start", *options, cwd=tmp_path)
            assert started.returncode == 0, started
            status = await run_cli("status", "--pid-file", str(pid_file), cwd=tmp_path)
            assert "watched" in status.output, status
            replace_file(config, config_for(gateway_port, backend_port, B))
            await _wait_for_generation(pid_file, 2)
            await wait_for_pool(gateway_port, B)
            pid = int(pid_file.read_text().split()[0])
            stopped = await run_cli("stop", "--pid-file", str(pid_file), cwd=tmp_path)
            assert stopped.returncode == 0, stopped
            await wait_pid_gone(pid, 15)
            assert not pid_alive(pid)
    finally:
        with trio.CancelScope(shield=True):
            await stop_by_pid_file(pid_file)
