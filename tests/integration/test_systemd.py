"""systemd's Type=notify: the gateway reports READY, RELOADING and STOPPING.

A datagram socket stands in for systemd's NOTIFY_SOCKET.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from tests.support.backends import start_http_backends
from tests.support.gateway import gateway_toml, open_gateway, run_cli

A = "127.0.0.2"


class FakeSystemd:
    def __init__(self, path: Path) -> None:
        self.sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.path = path
        self.messages: list[dict[str, str]] = []

    async def bind(self) -> None:
        await self.sock.bind(str(self.path))

    async def expect(self, key: str, value: str, timeout: float = 15) -> dict[str, str]:
        with trio.fail_after(timeout):
            while True:
                data = await self.sock.recv(4096)
                fields = dict(
                    line.split("=", 1) for line in data.decode().splitlines() if "=" in line
                )
                self.messages.append(fields)
                if fields.get(key) == value:
                    return fields


async def test_ready_reloading_and_stopping_are_reported(
    nursery: trio.Nursery,
    tmp_path: Path,
    gateway_port: int,
    backend_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    await systemd.bind()
    monkeypatch.setenv("NOTIFY_SOCKET", str(systemd.path))
    config = gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path) as gw:
            ready = await systemd.expect("READY", "1")
            assert ready.get("MAINPID") == str(gw.pid)
            result = await run_cli("reload", "--pid-file", str(gw.pid_file), cwd=tmp_path)
            assert result.returncode == 0, result.output
            reloading = await systemd.expect("RELOADING", "1")
            assert int(reloading["MONOTONIC_USEC"]) > 0
            await systemd.expect("READY", "1")
        await systemd.expect("STOPPING", "1")
