"""An ARM template run with az's inputs: --parameters on check, run and reload,
and the [gateway] TOML table that keeps them."""

from __future__ import annotations

import json
import ssl
from functools import partial
from pathlib import Path

import trio

from tests.support.backends import serve_http_backend
from tests.support.clients import open_http
from tests.support.gateway import open_gateway, run_cli
from tests.support.ports import free_port
from tests.support.quickstart import write_quickstart
from tests.support.waiting import wait_until
from tests.unit.test_arm_templates import dual_stack_template, pfx_b64, site_certificate

FRONTEND = "127.0.0.1"


async def test_check_names_the_missing_parameter(tmp_path: Path) -> None:
    template, parameters = write_quickstart(tmp_path, pfx_b64())
    with trio.fail_after(60):
        missing = await run_cli("check", "-c", template.name, cwd=tmp_path)
        given = await run_cli(
            "check", "-c", template.name, "--parameters", f"@{parameters.name}", cwd=tmp_path
        )
    assert missing.returncode == 1
    assert "give it with --parameters certData=..." in missing.output
    assert given.returncode == 0, given.output
    assert "ok (2 listener(s), 1 pool(s), 1 setting(s), 2 rule(s))" in given.output


async def test_parameters_hold_across_reloads_and_reload_replaces_them(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    template, parameters = write_quickstart(tmp_path, pfx_b64())
    http_port = free_port(FRONTEND)
    while (https_port := free_port(FRONTEND)) == http_port:
        pass
    with trio.fail_after(90):
        first = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="first"))
        second = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="second"))
        args = [
            "--bind", FRONTEND, "--port", f"80={http_port}", "--port", f"443={https_port}",
            "--parameters", parameters.name, 'backendIPAddresses=["127.0.0.2"]',
            f"backendPort={first.port}",
        ]  # fmt: skip
        async with open_gateway(template, tmp_path, workers=1, extra_args=args) as gw:

            async def answer() -> str:
                async with open_http(FRONTEND, http_port) as client:
                    response = await client.get("/", headers=[("Host", "www.contoso.com")])
                assert response.status == 200
                return response.text().strip()

            assert await answer() == "backend first"
            pid = ["--pid-file", str(gw.pid_file)]
            plain = await run_cli("reload", *pid, cwd=tmp_path)  # keeps --parameters
            assert plain.returncode == 0, plain.output
            assert await answer() == "backend first"
            new = await run_cli(
                "reload", *pid, "--parameters", parameters.name,
                'backendIPAddresses=["127.0.0.2"]', f"backendPort={second.port}",
                cwd=tmp_path,
            )  # fmt: skip
            assert new.returncode == 0, new.output
            assert await answer() == "backend second"
            again = await run_cli("reload", *pid, cwd=tmp_path)  # the new ones are kept
            assert again.returncode == 0, again.output
            assert await answer() == "backend second"
            refused = await run_cli("reload", *pid, "--parameters", "nope=1", cwd=tmp_path)
            assert refused.returncode == 1
            assert "no parameter named 'nope'" in refused.output
            assert await answer() == "backend second"


async def test_a_toml_gateway_table_keeps_template_and_parameters(tmp_path: Path) -> None:
    template, parameters = write_quickstart(tmp_path, pfx_b64())
    toml = tmp_path / "gateway.toml"
    toml.write_text(
        f'[gateway]\ntemplate = "{template.name}"\nworkers = 1\n'
        f'parameters = ["{parameters.name}", "hostName=toml.example"]\n'
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(
        f'[gateway]\ntemplate = "{template.name}"\nparameters = "x=1"\n'
        '[pools.p]\nservers = ["127.0.0.2"]\n'
    )
    with trio.fail_after(60):
        ok = await run_cli("check", "-c", toml.name, cwd=tmp_path)
        refused = await run_cli("check", "-c", bad.name, cwd=tmp_path)
    assert ok.returncode == 0, ok.output
    assert refused.returncode == 1
    assert "pools: a TOML file with gateway.template holds only the [gateway] table" in (
        refused.output
    )
    assert json.loads(parameters.read_text())["parameters"]["certData"]


async def test_quickstart_with_connect_to_serves_every_listener(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    cert, ca = site_certificate()
    template, parameters = write_quickstart(tmp_path, cert)
    http_port = free_port(FRONTEND)
    while (https_port := free_port(FRONTEND)) == http_port:
        pass
    with trio.fail_after(90):
        first = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="a"))
        second = await nursery.start(partial(serve_http_backend, "127.0.0.3", name="b"))
        args = [
            "--bind", FRONTEND, "--port", f"80={http_port}", "--port", f"443={https_port}",
            "--parameters", parameters.name,
            # the template's backends, 10.0.0.4:80 and 10.0.0.5:80, served here
            "--connect-to", f"10.0.0.4:80=127.0.0.2:{first.port}",
            "--connect-to", f"10.0.0.5=127.0.0.3:{second.port}",
        ]  # fmt: skip
        async with open_gateway(template, tmp_path, workers=1, extra_args=args) as gw:
            # probes go through --connect-to and report the template's addresses
            for server in ("10.0.0.4:80", "10.0.0.5:80"):
                await gw.wait_for_log(
                    f"server {server} of pool myBackendPool (setting myHTTPSetting) is Healthy", 30
                )
            host = [("Host", "www.contoso.com")]
            async with open_http(FRONTEND, http_port) as client:
                plain = [await client.get("/", headers=host) for _ in range(4)]
            trust = ssl.create_default_context()
            ca.configure_trust(trust)
            async with open_http(
                FRONTEND, https_port, ssl_context=trust, server_hostname="www.contoso.com"
            ) as client:
                secure = [await client.get("/", headers=host) for _ in range(4)]
            check = await run_cli(
                "check", "-c", template.name, "-p", parameters.name,
                "--connect-to", "10.0.0.4=nowhere:80:80", cwd=tmp_path,
            )  # fmt: skip
    assert [r.status for r in plain + secure] == [200] * 8
    assert {r.text().strip() for r in plain} == {"backend a", "backend b"}
    assert {r.text().strip() for r in secure} == {"backend a", "backend b"}
    seen = [r for backend in (first, second) for r in backend.requests_to("/")]
    assert {r.header("host") for r in seen if r.header("host") != "127.0.0.1"} >= {
        "www.contoso.com"
    }
    assert check.returncode == 1
    assert "--connect-to 10.0.0.4=nowhere:80:80: expected HOST[:PORT]=HOST[:PORT]" in check.output


async def test_dual_stack_frontends_bind_once_with_bind(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    template = tmp_path / "dual.json"
    template.write_text(json.dumps(dual_stack_template()))
    port = free_port(FRONTEND)
    with trio.fail_after(60):
        backend = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="dual"))
        args = [
            "--bind", FRONTEND, "--port", f"80={port}",
            "--parameters", "backendIPAddresses=[\"127.0.0.2\"]", f"backendPort={backend.port}",
        ]  # fmt: skip
        async with open_gateway(template, tmp_path, workers=1, extra_args=args) as gw:
            async with open_http(FRONTEND, port) as client:
                response = await client.get("/")
            log = gw.log()
    assert response.status == 200
    assert log.count(f"http://{FRONTEND}:{port}") == 1  # the two frontends share one socket


async def test_watch_follows_the_template_s_parameters_file(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    template, parameters = write_quickstart(tmp_path, pfx_b64())
    port = free_port(FRONTEND)
    with trio.fail_after(90):
        first = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="first"))
        second = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="second"))
        ports = tmp_path / "ports.json"
        ports.write_text(json.dumps({"parameters": {"backendPort": {"value": first.port}}}))
        toml = tmp_path / "gateway.toml"
        toml.write_text(
            f'[gateway]\ntemplate = "{template.name}"\nwatch = true\n'
            f'parameters = ["{parameters.name}", \'backendIPAddresses=["127.0.0.2"]\', '
            f'"{ports.name}"]\n'
        )
        args = ["--bind", FRONTEND, "--port", f"80={port}", "--port", f"443={free_port()}"]
        async with open_gateway(toml, tmp_path, workers=1, extra_args=args) as gw:

            async def answer() -> str:
                async with open_http(FRONTEND, port) as client:
                    response = await client.get("/", headers=[("Host", "www.contoso.com")])
                return response.text().strip()

            assert await answer() == "backend first"
            ports.write_text(json.dumps({"parameters": {"backendPort": {"value": second.port}}}))
            await gw.wait_for_log(f"{ports} changed", 30)

            async def second_serves() -> bool:
                return await answer() == "backend second"

            await wait_until(second_serves, 30, "the new backend port in service")


async def test_check_takes_the_certificate_flag(tmp_path: Path) -> None:
    from tests.unit.test_az_show import https_show, key_pair

    pfx, pem = key_pair(tmp_path, b"secret")
    body = tmp_path / "show.json"
    body.write_text(json.dumps(https_show()))
    with trio.fail_after(60):
        missing = await run_cli("check", "-c", body.name, cwd=tmp_path)
        given = await run_cli(
            "check", "-c", body.name, "--certificate", f"site={pfx.name}:secret", cwd=tmp_path
        )
        pem_given = await run_cli(
            "check", "-c", body.name, "--certificate", f"site={pem.name}", cwd=tmp_path
        )
    assert missing.returncode == 1
    assert "give the certificate with --certificate site=FILE[:PASSWORD]" in missing.output
    assert given.returncode == 0, given.output
    assert pem_given.returncode == 0, pem_given.output
