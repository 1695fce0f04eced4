"""Reload swaps certificates for new connections; workers that cannot boot
stop the gateway with a clear error instead of respawning forever."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trio
import trustme

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import gateway_toml, open_gateway, run_cli, write_certificates

GATEWAY = "127.0.0.1"
A = "127.0.0.2"


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_reloaded_certificate_is_used_for_new_connections(
    nursery: trio.Nursery, tmp_path: Path, https_port: int, backend_port: int
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    certs = write_certificates(old_ca, tmp_path / "certs")
    config = gateway_toml(servers=[A], backend_port=backend_port, https_port=https_port, cert=certs)
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path) as gw:
            async with open_http(
                GATEWAY, https_port, ssl_context=trusting(old_ca), server_hostname="localhost"
            ) as before:
                assert (await before.get("/echo")).status == 200
                write_certificates(new_ca, tmp_path / "certs")  # same files, new contents
                result = await run_cli("reload", "--pid-file", str(gw.pid_file), cwd=tmp_path)
                assert result.returncode == 0, result.output
                # The connection made before the reload keeps working.
                assert (await before.get("/echo")).status == 200
            async with open_http(
                GATEWAY, https_port, ssl_context=trusting(new_ca), server_hostname="localhost"
            ) as after:
                assert (await after.get("/echo")).status == 200
            try:
                async with open_http(
                    GATEWAY, https_port, ssl_context=trusting(old_ca), server_hostname="localhost"
                ) as stale:
                    await stale.get("/echo")
            except (ssl.SSLError, trio.BrokenResourceError) as exc:
                assert "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(
                    exc, trio.BrokenResourceError
                )
            else:
                raise AssertionError("the old certificate is still served to new connections")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can switch to gateway.user")
async def test_workers_that_cannot_boot_stop_the_gateway_with_the_reason(
    tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = tmp_path / "bad-user.toml"
    config.write_text(
        gateway_toml(
            servers=[A],
            backend_port=backend_port,
            http_port=gateway_port,
            gateway={"user": "no-such-appgw-user"},
        )
    )
    with trio.fail_after(30):
        result = await run_cli(
            "run",
            "-c",
            str(config),
            "--pid-file",
            str(tmp_path / "p.pid"),
            cwd=tmp_path,
            timeout=25,
        )
    if result.returncode == 0:
        raise AssertionError(f"gateway ran with a user that does not exist:\n{result.output}")
    assert "no such user" in result.output, result.output
    assert "workers cannot boot" in result.output, result.output
