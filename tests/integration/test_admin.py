"""The admin listener: /metrics, /healthz, /backend-health, the status page.

It is served by the workers from the master's files, answers 503 on
/healthz once the gateway stops, and stays on loopback unless
gateway.admin.public says otherwise.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.admin import admin_get, admin_json
from tests.support.backends import start_http_backends
from tests.support.clients import get
from tests.support.gateway import gateway_toml, open_gateway, run_cli
from tests.support.ports import free_port
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


@pytest.fixture
def admin_port(gateway_port: int) -> int:
    while (port := free_port(GATEWAY)) == gateway_port:
        pass
    return port


async def test_admin_endpoints_and_healthz_while_stopping(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, admin_port: int
) -> None:
    config = config_with_admin(
        gateway_port, backend_port, f"[gateway.admin]\nport = {admin_port}\n"
    )
    with trio.fail_after(60):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2, check_exit=False) as gw:
            healthz = await admin_get(admin_port, "/healthz")
            assert (healthz.status, healthz.text()) == (200, "serving\n")

            metrics = await admin_get(admin_port, "/metrics")
            assert metrics.status == 200
            assert metrics.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
            assert "# TYPE appgw_requests_total counter" in metrics.text()

            health = await admin_json(admin_port, "/backend-health")
            assert "backendAddressPools" in health

            status = await admin_json(admin_port, "/status.json")
            assert status["serving"] is True
            assert [pool["name"] for pool in status["pools"]] == ["web"]
            assert status["pools"][0]["servers"][0]["address"] == A
            assert status["listeners"][0]["name"] == "http"
            assert status["listeners"][0]["rules"][0]["targets"] == ["pool web via web"]

            page = await admin_get(admin_port, "/")
            assert page.status == 200
            assert page.header("content-type") == "text/html; charset=utf-8"
            assert b"<title>appgw status</title>" in page.body
            for external in (b'src="http', b'href="http', b"@import", b"url(http"):
                assert external not in page.body  # no external assets

            assert (await admin_get(admin_port, "/nothing")).status == 404
            # Nothing of the admin listener reaches a backend: only probes came.
            agents = {r.header("user-agent") or "" for r in backend.requests}
            assert all(agent.startswith("appgw-health-probe") for agent in agents), agents

            # A request in flight keeps a worker draining after TERM; the
            # admin listener still answers, with 503.
            slow = trio.Event()

            async def slow_request() -> None:
                response = await get(GATEWAY, gateway_port, "/slow?delay=3")
                assert response.status == 200
                slow.set()

            nursery.start_soon(slow_request)
            await backend.wait_for_request("/slow", 10)
            gw.send_signal(signal.SIGTERM)

            async def stopping() -> Any:
                answer = await admin_get(admin_port, "/healthz")
                return answer if answer.status == 503 else None

            answer = await wait_until(stopping, 10, "/healthz answers 503")
            assert answer.text() == "stopping\n"
            with trio.fail_after(10):
                await slow.wait()
            assert await gw.wait(15) == 0


def config_with_admin(gateway_port: int, backend_port: int, admin: str) -> str:
    return (
        admin + "\n" + gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    )


async def test_admin_refuses_a_public_address_unless_told(
    tmp_path: Path, gateway_port: int, backend_port: int, admin_port: int
) -> None:
    public = tmp_path / "public.toml"
    public.write_text(
        config_with_admin(
            gateway_port,
            backend_port,
            f'[gateway.admin]\naddress = "0.0.0.0"\nport = {admin_port}\n',
        )
    )
    allowed = tmp_path / "allowed.toml"
    allowed.write_text(
        config_with_admin(
            gateway_port,
            backend_port,
            f'[gateway.admin]\naddress = "0.0.0.0"\nport = {admin_port}\npublic = true\n',
        )
    )
    plain = tmp_path / "plain.toml"
    plain.write_text(config_with_admin(gateway_port, backend_port, ""))
    with trio.fail_after(60):
        refused = await run_cli("check", "-c", str(public), cwd=tmp_path)
        assert refused.returncode == 1, refused
        assert "gateway.admin.address: 0.0.0.0 is not a loopback address" in refused.output

        assert (await run_cli("check", "-c", str(allowed), cwd=tmp_path)).returncode == 0

        flag = await run_cli(
            "check", "-c", str(plain), "--admin", f"0.0.0.0:{admin_port}", cwd=tmp_path
        )
        assert flag.returncode == 1, flag
        assert f"--admin 0.0.0.0:{admin_port}: 0.0.0.0 is not a loopback address" in flag.output

        clash = await run_cli(
            "check", "-c", str(plain), "--admin", f"127.0.0.1:{gateway_port}", cwd=tmp_path
        )
        assert clash.returncode == 1, clash
        assert "also listener http's" in clash.output

        run = await run_cli(
            "run",
            "-c",
            str(plain),
            "--pid-file",
            str(tmp_path / "gw.pid"),
            "--admin",
            f"0.0.0.0:{admin_port}",
            cwd=tmp_path,
        )
        assert run.returncode == 1, run
        assert "not a loopback address" in run.output
