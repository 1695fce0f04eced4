"""The master keeps root (to bind ports below 1024); workers and prober drop
to gateway.user."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
import trio

from tests.support.backends import start_http_backends
from tests.support.clients import get
from tests.support.gateway import gateway_toml, open_gateway
from tests.support.waiting import wait_until

A = "127.0.0.2"


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective uid
    raise AssertionError(f"no Uid line for {pid}")


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs the suite to run as root")
async def test_workers_and_prober_run_as_the_configured_user_on_port_80(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=80,
        address="127.0.0.7",
        gateway={"user": "nobody"},
    )
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path) as gw:
            children = gw.children()
            assert len(children) == 3  # two workers and the prober
            assert uid_of(gw.pid) == 0
            # A child drops to the user as it boots: the prober may still be
            # on its way when the workers are ready.
            await wait_until(
                lambda: {uid_of(pid) for pid in children} == {nobody},
                30,
                lambda: f"children run as {[uid_of(pid) for pid in children]}, not {nobody}",
            )
            response = await get("127.0.0.7", 80, "/echo")
            assert response.status == 200
