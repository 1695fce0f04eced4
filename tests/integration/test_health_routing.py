"""Routing on backend health, end to end through a real gateway process.

Backends on 127.0.0.2 and 127.0.0.3 answer health probes as each test
switches them (tests/support/health.py); the gateway probes them with fast
custom probes (interval 1 s, timeout 1 s, threshold 2) and the tests watch
both what the prober published (the health file beside the pid file) and
where requests actually go (X-Backend of each answer, what each backend
recorded).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
import trio
import trio_websocket

from appgw.worker.codec import error_page as errorpage
from tests.support.backends import serve_http_backend
from tests.support.clients import Response, open_http, open_ws
from tests.support.gateway import GatewayProcess, open_gateway, pid_alive, run_cli, toml_table
from tests.support.health import (
    FAST_PROBE,
    ProbedBackend,
    answered_by_each,
    answered_only_by,
    basic_rule,
    http_listener,
    leave_rotation_bound,
    open_traffic,
    probed_toml,
    read_snapshot,
    return_bound,
    server_line,
    start_probed_backends,
    wait_for_prober,
    wait_for_snapshot,
    wait_for_state,
    wait_for_states,
    wait_for_workers,
)
from tests.support.ports import free_port
from tests.support.wsecho import serve_ws_echo

GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"
FIRST_HEALTH = 5.0  # seconds until the first snapshot lists every server
CONNECT_FAILED = "could not connect to the backend"


async def answered_by(port: int, count: int, target: str = "/route") -> Counter[str]:
    """GET `target` `count` times, each on a fresh connection; who answered (all 200)."""
    names: Counter[str] = Counter()
    for i in range(count):
        async with open_http(GATEWAY, port) as client:
            response = await client.get(f"{target}?n={i}")
        assert response.status == 200, (response.status, response.body[:300])
        names[response.header("x-backend") or "?"] += 1
    return names


async def answered_on_one_connection(port: int, count: int, target: str = "/route") -> list[str]:
    """GET `target` `count` times on one connection (one worker's rotation)."""
    names = []
    async with open_http(GATEWAY, port) as client:
        for i in range(count):
            response = await client.get(f"{target}?n={i}")
            assert response.status == 200, (response.status, response.body[:300])
            names.append(response.header("x-backend") or "?")
    return names


def other_health_port(backend_port: int) -> int:
    """A second port free on both backend addresses, for probes on their own port."""
    while (port := free_port(A, B)) == backend_port:
        pass
    return port


async def health_text(gw: GatewayProcess, cwd: Path) -> str:
    """`appgw health` for `gw`, which must succeed; its output."""
    result = await run_cli("health", "--pid-file", str(gw.pid_file), cwd=cwd)
    assert result.returncode == 0, result
    return result.output


# -- leaving and rejoining rotation -------------------------------------------------


async def test_a_server_that_stops_answering_leaves_rotation_and_comes_back(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    leave_within = leave_rotation_bound()
    with trio.fail_after(60):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        config = probed_toml(servers=[A, B], backend_port=backend_port, http_port=gateway_port)
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            assert set(await answered_on_one_connection(gateway_port, 4)) == {"a", "b"}

            a.stop()
            stopped = trio.current_time()
            snapshot = await wait_for_state(gw, A, "Unhealthy", leave_within + 2)
            elapsed = trio.current_time() - stopped
            assert elapsed < leave_within, f"left rotation after {elapsed:.2f} s"
            assert not snapshot.routable(A)
            assert CONNECT_FAILED in snapshot.entry(A)["reason"]
            assert snapshot.state(B) == "Healthy"

            # Out of rotation: the gateway does not even try it any more
            # (a try would log a failed connect to it before failing over).
            # (Each round's requests came after the previous look at the log.)
            looked = [len(gw.log())]

            def not_tried(responses: list[Response]) -> bool:
                log = gw.log()
                tried = f"connect to {A}:{backend_port}" in log[looked[0] :]
                looked[0] = len(log)
                return answered_only_by("b")(responses) and not tried

            await wait_for_workers(gw, GATEWAY, gateway_port, not_tried, "passes a over")
            log_mark = len(gw.log())
            assert await answered_by(gateway_port, 12) == Counter(b=12)
            assert f"connect to {A}:{backend_port}" not in gw.log()[log_mark:]

            # Back on the same address and port: one good probe brings it back.
            await a.start(nursery)
            restarted = trio.current_time()
            mark = len(a.requests)
            snapshot = await wait_for_state(gw, A, "Healthy", return_bound() + 2)
            elapsed = trio.current_time() - restarted
            assert elapsed < return_bound(), f"back in rotation after {elapsed:.2f} s"
            assert snapshot.routable(A)
            assert snapshot.entry(A)["reason"] == "Success. Received 200 status code"
            await wait_for_workers(gw, GATEWAY, gateway_port, answered_by_each("a", "b"), "uses a")
            names = await answered_on_one_connection(gateway_port, 6)
            assert names.count("a") == 3 and names.count("b") == 3, names
            assert len(a.traffic_since(mark)) >= 3


async def test_killing_a_backend_under_continuous_requests_fails_no_request(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """The issue's "done when": no failed request, health shows why, it comes back."""
    with trio.fail_after(90):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        config = probed_toml(servers=[A, B], backend_port=backend_port, http_port=gateway_port)
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            async with open_traffic(GATEWAY, gateway_port, clients=4) as traffic:
                await traffic.wait_for(
                    lambda t: t.by_backend["a"] >= 20 and t.by_backend["b"] >= 20, 20
                )

                a.stop()
                killed = trio.current_time()
                await wait_for_state(gw, A, "Unhealthy", leave_rotation_bound() + 2)

                text = await health_text(gw, tmp_path)
                line = server_line(text, f"{A}:{backend_port}")
                assert "Unhealthy" in line and CONNECT_FAILED in line, text
                assert "Healthy" in server_line(text, f"{B}:{backend_port}")

                # Only b serves now, and nothing fails.
                await traffic.wait_for_more(60, 20)
                assert traffic.failures == [], traffic.failures[:5]

                await a.start(nursery)
                restarted = trio.current_time()
                await wait_for_state(gw, A, "Healthy", return_bound() + 2)
                await traffic.wait_for(lambda t: t.backends_since(restarted)["a"] >= 20, 20)
            failures, total = list(traffic.failures), traffic.total
        down = traffic.backends_since(killed) - traffic.backends_since(restarted)
    assert failures == [], f"{len(failures)} of {total} requests failed: {failures[:5]}"
    assert total > 200
    assert down["b"] > 0, down


# -- the probe's rules, through the gateway -------------------------------------------


async def test_status_ranges_decide_health_and_traffic_follows(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    probe = {"match_status_codes": ["200", "418-419"]}
    with trio.fail_after(60):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        a.set_probe_answer(418)
        config = probed_toml(
            servers=[A, B], backend_port=backend_port, http_port=gateway_port, probe=probe
        )
        async with open_gateway(config, tmp_path) as gw:
            snapshot = await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            assert snapshot.entry(A)["reason"] == "Success. Received 418 status code"
            assert set(await answered_on_one_connection(gateway_port, 4)) == {"a", "b"}

            b.set_probe_answer(302)  # fine for the default 200-399, not for this probe
            snapshot = await wait_for_state(gw, B, "Unhealthy", leave_rotation_bound() + 2)
            assert snapshot.entry(B)["reason"] == (
                "Status code of the backend's HTTP response did not match the probe setting."
                " Expected:200,418-419 Received:302."
            )
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over"
            )
            assert await answered_by(gateway_port, 8) == Counter(a=8)
            assert set(await answered_on_one_connection(gateway_port, 4)) == {"a"}

            b.set_probe_answer(419)
            await wait_for_state(gw, B, "Healthy", return_bound() + 2)
            await wait_for_workers(gw, GATEWAY, gateway_port, answered_by_each("a", "b"), "uses b")
            assert set(await answered_on_one_connection(gateway_port, 4)) == {"a", "b"}


async def test_body_match_decides_health_and_traffic_follows(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        a.set_probe_answer(200, b"status: ready\n")
        b.set_probe_answer(200, b"status: starting\n")
        config = probed_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            probe={"match_body": "ready"},
        )
        async with open_gateway(config, tmp_path) as gw:
            snapshot = await wait_for_states(gw, {A: "Healthy", B: "Unhealthy"}, FIRST_HEALTH)
            assert snapshot.entry(B)["reason"] == (
                "Body of the backend's HTTP response did not match the probe setting."
                " Received response body doesn't contain ready."
            )
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over"
            )
            mark_b = len(b.requests)
            assert await answered_by(gateway_port, 8) == Counter(a=8)
            assert b.traffic_since(mark_b) == []

            b.set_probe_answer(200, b"status: ready\n")
            await wait_for_state(gw, B, "Healthy", return_bound() + 2)
            await wait_for_workers(gw, GATEWAY, gateway_port, answered_by_each("a", "b"), "uses b")
            assert set(await answered_on_one_connection(gateway_port, 4)) == {"a", "b"}


HOST_CHOICES = {
    # id: (probe keys, setting keys, the Host a's probes must carry)
    "probe-host": ({"host": "probe.example"}, {}, "probe.example"),
    "pick-from-settings": (
        {"pick_host_name_from_settings": True},
        {"host_name": "app.example"},
        "app.example",
    ),
    "pick-from-backend-address": (
        {"pick_host_name_from_settings": True},
        {"pick_host_name_from_backend_address": True},
        A,
    ),
    "neither": ({}, {}, "127.0.0.1"),
}


@pytest.mark.parametrize("choice", list(HOST_CHOICES))
async def test_probe_host_header_choice_decides_health(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, choice: str
) -> None:
    probe, setting, expected_host = HOST_CHOICES[choice]
    with trio.fail_after(60):
        # a answers probes only for the expected host; b for a host never sent.
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        a.require_host = expected_host
        b.require_host = "nobody.example"
        config = probed_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            probe=probe,
            setting=setting,
        )
        async with open_gateway(config, tmp_path) as gw:
            snapshot = await wait_for_states(gw, {A: "Healthy", B: "Unhealthy"}, FIRST_HEALTH)
            assert snapshot.entry(B)["reason"].endswith("Expected:200-399 Received:404.")
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over"
            )
            mark_b = len(b.requests)
            assert await answered_by(gateway_port, 6) == Counter(a=6)
    hosts = {(p.header("host") or "").rsplit(":", 1)[0] for p in a.probes}
    assert hosts == {expected_host}, [p.header("host") for p in a.probes]
    assert b.traffic_since(mark_b) == []


async def test_custom_probe_port_decides_health(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """Traffic on the setting's port, probes on the probe's port, to other servers."""
    health_port = other_health_port(backend_port)
    with trio.fail_after(60):
        traffic_a, traffic_b = await start_probed_backends(nursery, [A, B], backend_port)
        probe_a, probe_b = await start_probed_backends(
            nursery, [A, B], health_port, names=["probe-a", "probe-b"]
        )
        probe_b.set_probe_answer(503)
        config = probed_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            probe={"port": health_port},
        )
        async with open_gateway(config, tmp_path) as gw:
            snapshot = await wait_for_states(gw, {A: "Healthy", B: "Unhealthy"}, FIRST_HEALTH)
            # Health is keyed by the traffic port, whatever port the probe used.
            assert snapshot.entry(B)["port"] == backend_port
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over"
            )
            assert await answered_by(gateway_port, 6) == Counter(a=6)

            probe_b.set_probe_answer(200)
            probe_a.stop()  # a's traffic server still runs; its probe port is closed
            await wait_for_states(gw, {A: "Unhealthy", B: "Healthy"}, leave_rotation_bound() + 2)
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("b"), "passes a over"
            )
            assert await answered_by(gateway_port, 6) == Counter(b=6)
    assert traffic_a.probes == [] and traffic_b.probes == []
    assert probe_a.probes and probe_b.probes
    assert probe_a.requests == [] and probe_b.requests == []


# -- nothing healthy, min_servers -------------------------------------------------------


async def test_502_with_the_error_page_when_no_server_is_healthy(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        # Both servers run and would answer requests; only their probes fail.
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        a.set_probe_answer(503)
        b.set_probe_answer(503)
        config = probed_toml(servers=[A, B], backend_port=backend_port, http_port=gateway_port)
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Unhealthy", B: "Unhealthy"}, FIRST_HEALTH)
            await wait_for_workers(
                gw,
                GATEWAY,
                gateway_port,
                lambda responses: all(r.status == 502 for r in responses),
                "answers 502",
            )
            marks = len(a.requests), len(b.requests)
            for _ in range(4):
                async with open_http(GATEWAY, gateway_port) as client:
                    response = await client.get("/route")
                assert response.status == 502
                assert (response.header("content-type") or "").startswith("text/html")
                assert response.body == errorpage.body(502)
            assert a.traffic_since(marks[0]) == [] and b.traffic_since(marks[1]) == []

            a.set_probe_answer(200)
            await wait_for_state(gw, A, "Healthy", return_bound() + 2)
            await wait_for_workers(gw, GATEWAY, gateway_port, answered_only_by("a"), "uses a")
            assert await answered_by(gateway_port, 4) == Counter(a=4)


async def test_min_servers_keeps_servers_in_rotation(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        config = probed_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            probe={"min_servers": 1},
        )
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            a.set_probe_answer(503)
            snapshot = await wait_for_state(gw, A, "Unhealthy", leave_rotation_bound() + 2)
            # One server is still healthy: min_servers keeps nobody else.
            assert not snapshot.routable(A)
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("b"), "passes a over"
            )
            assert await answered_by(gateway_port, 6) == Counter(b=6)

            b.set_probe_answer(503)
            snapshot = await wait_for_state(gw, B, "Unhealthy", leave_rotation_bound() + 2)
            # Both unhealthy: the one healthy most recently stays in rotation.
            assert snapshot.routable(B) and not snapshot.routable(A)
            assert await answered_by(gateway_port, 6) == Counter(b=6)


# -- WebSocket --------------------------------------------------------------------------


async def start_ws_pool(
    nursery: trio.Nursery, backend_port: int, health_port: int
) -> tuple[list, list[ProbedBackend]]:
    """WebSocket-capable backends a and b on backend_port, their probes on health_port."""
    servers = [
        await nursery.start(
            partial(serve_http_backend, host, backend_port, name=name, websocket=True)
        )
        for host, name in ((A, "a"), (B, "b"))
    ]
    probes = await start_probed_backends(nursery, [A, B], health_port, names=["probe-a", "probe-b"])
    return servers, probes


async def echo(ws: trio_websocket.WebSocketConnection, text: str) -> None:
    await ws.send_message(text)
    with trio.fail_after(5):
        assert await ws.get_message() == text


async def test_websocket_handshakes_never_reach_an_unhealthy_server(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    health_port = other_health_port(backend_port)
    with trio.fail_after(60):
        (a, b), (probe_a, probe_b) = await start_ws_pool(nursery, backend_port, health_port)
        probe_b.set_probe_answer(503)
        config = probed_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            probe={"port": health_port},
        )
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Unhealthy"}, FIRST_HEALTH)
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over", target="/"
            )
            mark_b = len(b.requests)
            for i in range(8):
                async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws/{i}") as ws:
                    await echo(ws, f"hello {i}")
    assert len(a.ws.handshakes) == 8
    assert b.ws.handshakes == [] and b.requests[mark_b:] == []


async def test_an_open_tunnel_survives_its_server_turning_unhealthy(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    health_port = other_health_port(backend_port)
    with trio.fail_after(60):
        servers, probes = await start_ws_pool(nursery, backend_port, health_port)
        config = probed_toml(
            servers=[A, B],
            backend_port=backend_port,
            http_port=gateway_port,
            probe={"port": health_port},
        )
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws/long") as tunnel:
                await echo(tunnel, "before")
                [index] = [i for i, s in enumerate(servers) if s.ws.handshakes]
                server, other = servers[index], servers[1 - index]
                host = (A, B)[index]

                probes[index].set_probe_answer(503)
                await wait_for_state(gw, host, "Unhealthy", leave_rotation_bound() + 2)
                await wait_for_workers(
                    gw,
                    GATEWAY,
                    gateway_port,
                    answered_only_by(other.name),
                    f"passes {host} over",
                    target="/",
                )
                for i in range(5):
                    await echo(tunnel, f"still here {i}")
                # New handshakes go to the other server only.
                for i in range(4):
                    async with open_ws(f"ws://{GATEWAY}:{gateway_port}/ws/new{i}") as ws:
                        await echo(ws, f"new {i}")
                await echo(tunnel, "after")
    assert len(server.ws.handshakes) == 1
    assert len(other.ws.handshakes) == 4
    assert server.ws.messages == 7


async def test_a_websocket_probe_marks_a_websocket_only_backend_healthy(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, https_port: int, backend_port: int
) -> None:
    """The same WebSocket-only server behind two settings: a ws probe and an http probe."""
    plain_port = https_port  # a second free port on 127.0.0.1, for a second http listener
    config = "\n".join(
        [
            http_listener("ws", gateway_port),
            http_listener("plain", plain_port),
            toml_table("pools.chat", {"servers": [A]}),
            toml_table("settings.ws", {"port": backend_port, "probe": "ws"}),
            toml_table("settings.plain", {"port": backend_port, "probe": "http"}),
            toml_table("probes.ws", {**FAST_PROBE, "protocol": "ws", "path": "/chat"}),
            toml_table("probes.http", {**FAST_PROBE, "protocol": "http", "path": "/chat"}),
            basic_rule("ws", listener="ws", pool="chat", setting="ws", priority=1),
            basic_rule("plain", listener="plain", pool="chat", setting="plain", priority=2),
        ]
    )
    with trio.fail_after(60):
        server = await nursery.start(partial(serve_ws_echo, A, backend_port))
        async with open_gateway(config, tmp_path) as gw:
            snapshot = await wait_for_snapshot(
                gw,
                lambda s: (
                    s.state(A, setting="ws") == "Healthy"
                    and s.state(A, setting="plain") == "Unhealthy"
                ),
                FIRST_HEALTH,
            )
            assert snapshot.entry(A, setting="ws")["reason"] == "Success. Received 101 status code"
            assert snapshot.routable(A, setting="ws")
            assert not snapshot.routable(A, setting="plain")
            await wait_for_workers(
                gw,
                GATEWAY,
                plain_port,
                lambda responses: all(r.status == 502 for r in responses),
                "answers 502 on the http-probed setting",
                target="/chat",
            )

            async with open_ws(f"ws://{GATEWAY}:{gateway_port}/chat") as ws:
                await echo(ws, "through the ws-probed setting")
            with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
                async with open_ws(f"ws://{GATEWAY}:{plain_port}/chat"):
                    pass
    assert rejected.value.status_code == 502
    assert server.messages == 1


# -- the prober dies ------------------------------------------------------------------------


async def test_a_killed_prober_is_restarted_and_routing_goes_on(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    # Threshold 1: b leaves rotation after one failed probe.
    probe = {"unhealthy_threshold": 1}
    with trio.fail_after(60):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        config = probed_toml(
            servers=[A, B], backend_port=backend_port, http_port=gateway_port, probe=probe
        )
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            b.set_probe_answer(503)
            await wait_for_state(gw, B, "Unhealthy", leave_rotation_bound(probe) + 2)
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over"
            )
            old_prober = await wait_for_prober(gw, 5)
            assert old_prober in gw.children()

            async with open_traffic(GATEWAY, gateway_port, clients=3) as traffic:
                await traffic.wait_for_more(20, 10)
                mark_b = len(b.requests)
                killed_wall = time.time()
                killed = trio.current_time()
                os.kill(old_prober, signal.SIGKILL)
                new_prober = await wait_for_prober(gw, 10, not_pid=old_prober)
                assert not pid_alive(old_prober)
                # Traffic went on meanwhile, on the last snapshot: a only.
                await traffic.wait_for_more(20, 10)
                # Fresh health from the new prober.
                snapshot = await wait_for_snapshot(gw, lambda s: s.time > killed_wall, 10)
                assert snapshot.state(B) == "Unhealthy" and snapshot.state(A) == "Healthy"
                assert len(b.requests) == mark_b, "b got traffic across the prober restart"

                b.set_probe_answer(200)
                back = trio.current_time()
                await wait_for_state(gw, B, "Healthy", return_bound(probe) + 2)
                await traffic.wait_for(lambda t: t.backends_since(back)["b"] >= 5, 10)
            failures = list(traffic.failures)
            assert new_prober in gw.children()
            assert f"prober {old_prober} died unexpectedly" in gw.log()
    assert failures == []
    assert traffic.backends_since(killed)["a"] > 0
    assert read_snapshot(gw) is None  # the master removed its files on the way out


async def test_a_restarted_prober_keeps_unhealthy_servers_out_of_rotation(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """What was known before the prober died still holds after its restart.

    b answers requests but fails its probe (an application that reports
    itself unhealthy). With the default threshold of 3, a prober that starts
    from nothing would see b as Unknown, hence routable, for two more
    probes; the last snapshot said Unhealthy, and routing must go on by it.
    """
    probe = {"unhealthy_threshold": 3}
    with trio.fail_after(60):
        a, b = await start_probed_backends(nursery, [A, B], backend_port)
        config = probed_toml(
            servers=[A, B], backend_port=backend_port, http_port=gateway_port, probe=probe
        )
        async with open_gateway(config, tmp_path) as gw:
            await wait_for_states(gw, {A: "Healthy", B: "Healthy"}, FIRST_HEALTH)
            b.set_probe_answer(503)
            await wait_for_state(gw, B, "Unhealthy", leave_rotation_bound(probe) + 2)
            await wait_for_workers(
                gw, GATEWAY, gateway_port, answered_only_by("a"), "passes b over"
            )
            old_prober = await wait_for_prober(gw, 5)
            seen_routable: list[dict] = []

            async def watch_health() -> None:
                while True:
                    snapshot = read_snapshot(gw)
                    if snapshot is not None and snapshot.routable(B):
                        seen_routable.append(dict(snapshot.entry(B)))
                    await trio.sleep(0.05)

            async with open_traffic(GATEWAY, gateway_port, clients=3) as traffic:
                await traffic.wait_for_more(20, 10)
                mark_b = len(b.requests)
                killed_wall = time.time()
                os.kill(old_prober, signal.SIGKILL)
                async with trio.open_nursery() as watching:
                    watching.start_soon(watch_health)
                    await wait_for_prober(gw, 10, not_pid=old_prober)
                    # Until the new prober has published b Unhealthy.
                    await wait_for_snapshot(
                        gw, lambda s: s.time > killed_wall and s.state(B) == "Unhealthy", 10
                    )
                    watching.cancel_scope.cancel()
                failures = list(traffic.failures)
    assert failures == []
    assert seen_routable == [], f"b back in rotation after the prober restart: {seen_routable[0]}"
    assert len(b.requests) == mark_b, f"{len(b.requests) - mark_b} requests went to b"
