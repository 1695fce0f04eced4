"""`appgw health`, text and --json, against a running gateway.

One pool behind two settings: "web" with a fast custom probe (a healthy,
b answering 503) and "alt" with the default probe (GET /, which both
answer). The report must give, per pool and setting, each server's state,
since when, and why, in Application Gateway's words; --json the same data
shaped like `az network application-gateway show-backend-health`.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from tests.support.backends import serve_silent_backend
from tests.support.gateway import GatewayProcess, gateway_toml, open_gateway, run_cli, toml_table
from tests.support.health import (
    FAST_PROBE,
    basic_rule,
    http_listener,
    leave_rotation_bound,
    start_probed_backends,
    wait_for_snapshot,
    wait_for_state,
)

GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"
SUCCESS = "Success. Received 200 status code"
MISMATCH = (
    "Status code of the backend's HTTP response did not match the probe setting."
    " Expected:200-399 Received:503."
)
TIMED_OUT = (
    "Time taken by the backend to respond to application gateway's health probe is"
    " more than the timeout threshold in the probe setting."
)
SINCE = re.compile(r"since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def two_settings_toml(gateway_port: int, alt_port: int, backend_port: int) -> str:
    """Pool web (a, b) behind setting web (custom probe) and setting alt (default probe)."""
    return "\n".join(
        [
            http_listener("web", gateway_port),
            http_listener("alt", alt_port),
            toml_table("pools.web", {"servers": [A, B]}),
            toml_table("settings.web", {"port": backend_port, "probe": "health"}),
            toml_table("settings.alt", {"port": backend_port}),
            toml_table("probes.health", FAST_PROBE),
            basic_rule("web", listener="web", pool="web", setting="web", priority=1),
            basic_rule("alt", listener="alt", pool="web", setting="alt", priority=2),
        ]
    )


async def health(gw: GatewayProcess, cwd: Path, *args: str) -> str:
    result = await run_cli("health", *args, "--pid-file", str(gw.pid_file), cwd=cwd)
    assert result.returncode == 0, result
    return result.output


def sections(text: str) -> dict[str, list[str]]:
    """Text output cut into its groups: header line -> the server lines under it."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        if line.startswith((" ", "\t")):
            assert current is not None, f"a server line before any group:\n{text}"
            current.append(line.strip())
        else:
            current = groups.setdefault(line, [])
    return groups


def group(groups: dict[str, list[str]], pool: str, setting: str) -> tuple[str, list[str]]:
    found = [
        (header, lines)
        for header, lines in groups.items()
        if re.search(rf"\bpool {pool}\b", header) and re.search(rf"\bsetting {setting}\b", header)
    ]
    assert len(found) == 1, f"pool {pool}, setting {setting} in {list(groups)}"
    return found[0]


def row(lines: list[str], address: str) -> str:
    found = [line for line in lines if line.startswith(address)]
    assert len(found) == 1, f"{address} in {lines}"
    return found[0]


def since_of(line: str) -> float:
    match = SINCE.search(line)
    assert match, f"no 'since' in {line!r}"
    return time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))


async def test_text_lists_state_since_and_reason_per_pool_and_setting(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, https_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        b.set_probe_answer(503)
        config = two_settings_toml(gateway_port, https_port, backend_port)
        async with open_gateway(config, tmp_path) as gw:
            changed = time.time()
            await wait_for_snapshot(
                gw,
                lambda s: (
                    s.state(B, setting="web") == "Unhealthy"
                    and all(s.state(h, setting="alt") == "Healthy" for h in (A, B))
                    and s.state(A, setting="web") == "Healthy"
                ),
                leave_rotation_bound() + 3,
            )
            text = await health(gw, tmp_path)
    assert text.startswith("Backend health at "), text
    groups = sections(text)
    assert len(groups) == 2, text

    header, lines = group(groups, "web", "web")
    assert "probe health" in header and "/health" in header, header
    assert len(lines) == 2, text
    line_a, line_b = row(lines, f"{A}:{backend_port}"), row(lines, f"{B}:{backend_port}")
    assert re.search(r"\sHealthy\s", line_a) and line_a.endswith(SUCCESS), line_a
    assert re.search(r"\sUnhealthy\s", line_b) and line_b.endswith(MISMATCH), line_b
    # Since: when b turned Unhealthy, i.e. during this test (to the second).
    assert changed - 2 <= since_of(line_b) <= time.time() + 1, line_b

    header, lines = group(groups, "web", "alt")
    assert "default probe" in header and "every 30 s" in header, header
    for host in (A, B):
        line = row(lines, f"{host}:{backend_port}")
        assert re.search(r"\sHealthy\s", line) and line.endswith(SUCCESS), line


async def test_json_is_shaped_like_show_backend_health(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, https_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        b.set_probe_answer(503)
        config = two_settings_toml(gateway_port, https_port, backend_port)
        async with open_gateway(config, tmp_path) as gw:
            changed = time.time()
            await wait_for_snapshot(
                gw,
                lambda s: (
                    s.state(B, setting="web") == "Unhealthy"
                    and all(s.state(h, setting="alt") == "Healthy" for h in (A, B))
                ),
                leave_rotation_bound() + 3,
            )
            document = json.loads(await health(gw, tmp_path, "--json"))
    assert list(document) == ["backendAddressPools"]
    [pool] = document["backendAddressPools"]
    assert pool["backendAddressPool"]["id"].endswith("/backendAddressPools/web")
    by_setting = {
        entry["backendHttpSettings"]["id"].rsplit("/", 1)[1]: entry["servers"]
        for entry in pool["backendHttpSettingsCollection"]
    }
    assert set(by_setting) == {"web", "alt"}
    for entry in pool["backendHttpSettingsCollection"]:
        assert "/backendHttpSettingsCollection/" in entry["backendHttpSettings"]["id"]

    web = {s["address"]: s for s in by_setting["web"]}
    assert set(web) == {A, B}
    for server in (*by_setting["web"], *by_setting["alt"]):
        assert {"address", "health", "healthProbeLog", "ipConfiguration"} <= set(server)
        assert server["port"] == backend_port
    assert web[A]["health"] == "Healthy" and web[A]["healthProbeLog"] == SUCCESS
    assert web[B]["health"] == "Unhealthy" and web[B]["healthProbeLog"] == MISMATCH
    assert web[B]["routable"] is False
    since = datetime.strptime(web[B]["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert changed - 2 <= since.timestamp() <= time.time() + 1, web[B]["since"]
    assert [s["health"] for s in by_setting["alt"]] == ["Healthy", "Healthy"]


async def test_before_the_first_result_then_unknown_then_unhealthy(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """A server that never answers: no results, then Unknown, then Unhealthy, with the reason."""
    probe = {"path": "/health", "interval": 1, "timeout": 4, "unhealthy_threshold": 2}
    config = (
        gateway_toml(
            servers=[A],
            backend_port=backend_port,
            http_port=gateway_port,
            setting={"probe": "health"},
        )
        + "\n"
        + toml_table("probes.health", probe)
    )
    with trio.fail_after(40):
        await nursery.start(partial(serve_silent_backend, A, backend_port))
        async with open_gateway(config, tmp_path) as gw:
            early = await run_cli("health", "--pid-file", str(gw.pid_file), cwd=tmp_path)
            assert early.returncode == 1, early
            assert "no health results yet" in early.output, early

            await wait_for_state(gw, A, "Unknown", 10)
            _, lines = group(sections(await health(gw, tmp_path)), "web", "web")
            line = row(lines, f"{A}:{backend_port}")
            assert re.search(r"\sUnknown\s", line) and line.endswith(TIMED_OUT), line

            await wait_for_state(gw, A, "Unhealthy", 10)
            [server] = _servers_of(json.loads(await health(gw, tmp_path, "--json")))
            assert server["health"] == "Unhealthy" and server["healthProbeLog"] == TIMED_OUT

        stopped = await run_cli("health", "--pid-file", str(gw.pid_file), cwd=tmp_path)
    assert stopped.returncode == 3, stopped
    assert "not running" in stopped.output


def _servers_of(document: dict) -> list[dict]:
    return [
        server
        for pool in document["backendAddressPools"]
        for entry in pool["backendHttpSettingsCollection"]
        for server in entry["servers"]
    ]
