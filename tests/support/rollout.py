"""A rollout across instances, rehearsed: three gateways behind a real HAProxy.

What `scripts/rollout` runs and tests/integration/test_rollout.py checks:

- Two backends (127.0.0.2 and 127.0.0.3, HTTP and WebSocket echo) in one
  pool with cookie-based affinity and connection draining.
- Three appgw instances from one configuration file (each reads it through
  a symlink of its own, as a release directory would be linked), each on a
  loopback address of its own (127.0.0.11, .12, .13, same port, `--bind`)
  with its own admin listener, all with `--watch`, the same
  `gateway.affinity_secret`, and `proxy_protocol` on, trusting only the
  balancer's address.
- HAProxy in TCP mode on 127.0.0.1, round robin over the instances with
  `send-proxy-v2`, connecting from 127.0.0.5.
- HTTP keep-alive load and 30 WebSockets through HAProxy, from 127.0.0.1.
- The rollout: a new release of the file (a response header changes), and
  each instance's symlink re-pointed at it, one instance after another; each
  reloads by itself when it sees the change, and the next is switched once
  the previous one's old workers drain.

The report says, and `problems` lists what contradicts it: no request
failed or was refused; every WebSocket is still open or was closed with
1001 within a reload's drain window; every request reached the backends with the
load generator's address in X-Forwarded-For (never the balancer's) and the
instances logged it as the client; an affinity cookie from one instance
sends the client to the same server through every other, before and after
the rollout; each instance runs the new release.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from contextlib import AsyncExitStack
from ipaddress import IPv4Address
from pathlib import Path

import attrs
import trio

from tests.support.admin import admin_get, parse_prometheus
from tests.support.backends import HttpBackend, start_http_backends
from tests.support.gateway import GatewayProcess, open_gateway, toml_table
from tests.support.haproxy import open_haproxy
from tests.support.load import HttpLoad, WsLoad, WsSession, retired_workers, wait_for_draining
from tests.support.ports import free_port
from tests.support.waiting import wait_until

CLIENT = "127.0.0.1"  # the load generator, and HAProxy's frontend
BALANCER = "127.0.0.5"  # HAProxy's source towards the instances
INSTANCES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
BACKENDS = ("127.0.0.2", "127.0.0.3")
WEBSOCKETS = 30
DRAIN_TIMEOUT = 3
LATE = 2.5  # seconds a Close sent at a drain deadline may take to reach its client
EVENT = 15.0  # budget for one event (a reload noticed, a worker draining)
PAUSE = 1.0  # seconds of load between two instances' reloads
SECRET = "rollout-rehearsal-affinity-secret-0123456789abcdef"
COOKIE = "ApplicationGatewayAffinity"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def release(port: int, backend_port: int, number: int) -> str:
    """The configuration file of release `number`."""
    return "\n".join(
        [
            toml_table("gateway", {"affinity_secret": SECRET}),
            toml_table(
                "listeners.web",
                {
                    "protocol": "http",
                    "port": port,
                    "proxy_protocol": True,
                    "proxy_protocol_trusted": [BALANCER],
                },
            ),
            toml_table("pools.web", {"servers": list(BACKENDS)}),
            toml_table(
                "settings.web",
                {
                    "port": backend_port,
                    "cookie_based_affinity": True,
                    "connection_draining": True,
                    "drain_timeout": DRAIN_TIMEOUT,
                },
            ),
            "[rewrite_rule_sets.release]\n[[rewrite_rule_sets.release.rules]]\n"
            f'name = "release"\nsequence = 100\nresponse_headers = {{ "X-Release" = "{number}" }}\n',
            toml_table(
                "rules.web",
                {"listener": "web", "pool": "web", "setting": "web", "rewrite_rule_set": "release"},
            ),
        ]
    )


@attrs.define
class Step:
    instance: int
    started: float = 0.0  # the symlink re-pointed
    drained: float = 0.0  # the old workers seen draining


@attrs.define
class Report:
    requests: int = 0
    failed: int = 0  # requests failed, connections refused
    connections: int = 0
    sessions: int = 0
    closed_1001: int = 0
    open_at_end: int = 0
    forwarded_for: set[str] = attrs.Factory(set)  # what the backends saw
    logged_clients: set[str] = attrs.Factory(set)  # the instances' access logs
    affinity: list[str] = attrs.Factory(list)  # the server each affinity request reached
    balanced: dict[str, int] = attrs.Factory(dict)  # load requests per server (no cookie)
    refused_by_gateways: float = 0.0
    seconds: float = 0.0
    problems: list[str] = attrs.Factory(list)

    def text(self) -> str:
        verdict = "PASSED" if not self.problems else f"FAILED ({len(self.problems)} problems)"
        lines = [
            f"rollout over {len(INSTANCES)} instances behind HAProxy: {verdict}"
            f" in {self.seconds:.1f} s",
            f"  HTTP: {self.requests} requests on {self.connections} connections,"
            f" {self.failed} failed or refused",
            f"  WebSocket: {self.sessions} sessions, {self.closed_1001} closed 1001 in their"
            f" drain window, {self.open_at_end} open at the end",
            f"  client address at the backends: {', '.join(sorted(self.forwarded_for))}"
            f"; in the instances' access logs: {', '.join(sorted(self.logged_clients))}",
            f"  affinity: every request with the cookie reached {', '.join(set(self.affinity))}"
            f" ({len(self.affinity)} requests through every instance)",
            "  without the cookie: "
            + ", ".join(f"{n} requests to {b}" for b, n in sorted(self.balanced.items())),
            f"  connections refused by the PROXY protocol check: {self.refused_by_gateways:g}",
        ]
        lines += [f"  problem: {p}" for p in self.problems[:20]]
        return "\n".join(lines)


async def direct(instance: str, port: int, cookie: str | None) -> tuple[str, str, str | None]:
    """A request straight to one instance, as the balancer would send it:
    (server reached, release, affinity cookie set)."""
    stream = await trio.open_tcp_stream(instance, port, local_address=BALANCER)
    async with stream:
        local = stream.socket.getsockname()
        block = IPv4Address(CLIENT).packed + IPv4Address(instance).packed
        block += struct.pack("!HH", local[1], port)
        header = V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(block)) + block
        cookies = f"Cookie: {cookie}\r\n" if cookie else ""
        await stream.send_all(
            header
            + f"GET /echo HTTP/1.1\r\nHost: app\r\n{cookies}Connection: close\r\n\r\n".encode()
        )
        received = b""
        while chunk := await stream.receive_some(65536):
            received += chunk
    head = received.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    assert head[0].startswith("HTTP/1.1 200"), head
    headers = [line.partition(":")[::2] for line in head[1:]]
    values = {name.lower(): value.strip() for name, value in headers}
    set_cookie = next(
        (
            v.split(";")[0]
            for n, v in headers
            if n.lower() == "set-cookie" and v.strip().startswith(COOKIE)
        ),
        None,
    )
    return values.get("x-backend", ""), values.get("x-release", ""), set_cookie


def closed_in_time(session: WsSession, steps: list[Step]) -> bool:
    """Closed within the drain window of a reload that began after it opened.

    A drain spreads its tunnels' ends over the window (each its moment, or
    once it goes idle), so a Close may come at any time from the drain's
    start (after the switch) to its deadline (DRAIN_TIMEOUT after the old
    workers were seen draining, at the latest), plus its way to the client.
    """
    assert session.closed is not None
    return any(
        step.drained >= session.connecting
        and step.started <= session.closed <= step.drained + DRAIN_TIMEOUT + LATE
        for step in steps
    )


async def refused_count(admin: tuple[str, int]) -> float:
    response = await admin_get(admin[1], "/metrics", host=admin[0])
    samples = parse_prometheus(response.body.decode())
    return sum(
        v for (name, _), v in samples.items() if name == "appgw_proxy_protocol_refused_total"
    )


def access_clients(path: Path) -> set[str]:
    try:
        return {json.loads(line)["clientIP"] for line in path.read_text().splitlines() if line}
    except FileNotFoundError:
        return set()


async def rehearse(directory: Path) -> Report:
    """The whole rollout in `directory`; the report (its problems empty when it held)."""
    report = Report()
    started = trio.current_time()
    port = free_port(*INSTANCES)
    backend_port = free_port(*BACKENDS)
    frontend = (CLIENT, free_port(CLIENT))
    admins = [(address, free_port(address)) for address in INSTANCES]
    releases = directory / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    (releases / "1.toml").write_text(release(port, backend_port, 1))
    (releases / "2.toml").write_text(release(port, backend_port, 2))
    async with trio.open_nursery() as nursery:
        backends = await start_http_backends(nursery, BACKENDS, backend_port, websocket=True)
        async with AsyncExitStack() as stack:
            gateways: list[GatewayProcess] = []
            links = []
            for n, (address, admin) in enumerate(zip(INSTANCES, admins, strict=True)):
                home = directory / f"instance-{n + 1}"
                home.mkdir(exist_ok=True)
                link = home / "appgw.toml"
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(releases / "1.toml")
                links.append(link)
                args = ["--bind", address, "--admin", f"{admin[0]}:{admin[1]}", "--watch"]
                args += ["--access-log", str(home / "access.log")]
                gateways.append(
                    await stack.enter_async_context(
                        open_gateway(link, home, workers=1, extra_args=args)
                    )
                )
            await stack.enter_async_context(
                open_haproxy(directory, frontend, [(a, port) for a in INSTANCES], BALANCER)
            )
            # The cookie of one instance, before the rollout, through the others.
            server, _, cookie = await direct(INSTANCES[0], port, None)
            assert cookie is not None, "no affinity cookie"
            report.affinity.append(server)
            for instance in INSTANCES[1:]:
                report.affinity.append((await direct(instance, port, cookie))[0])

            http = HttpLoad(frontend[0], frontend[1], target="/echo")
            ws = WsLoad(f"ws://{frontend[0]}:{frontend[1]}/ws")
            steps = [Step(n) for n in range(len(INSTANCES))]
            async with trio.open_nursery() as load:
                await load.start(http.run, 4)
                await load.start(ws.run, WEBSOCKETS)
                for step, gw, link in zip(steps, gateways, links, strict=True):
                    await trio.sleep(PAUSE)  # load runs on what was rolled so far for a while
                    offset = len(gw.log())
                    others = [(g, len(g.log())) for g in gateways if g is not gw]
                    step.started = trio.current_time()
                    swap = link.with_suffix(".next")
                    swap.symlink_to(releases / "2.toml")
                    os.replace(swap, link)  # an atomic re-point, as a release switch does
                    await gw.wait_for_log("reload complete", EVENT, start=offset)
                    retired = retired_workers(gw.log(), offset)
                    step.drained = await wait_for_draining(gw, retired, offset, EVENT)
                    for other, at in others:
                        if "reloading" in other.log()[at:]:
                            report.problems.append(f"instance {other.config_path} reloaded too")
                await trio.sleep(PAUSE)
                end = trio.current_time()
                await http.stopped()
                ws.stop()
                load.cancel_scope.cancel()  # the sessions still open stay open to the end

            # After the rollout: the same cookie, through each instance and the balancer.
            for instance in INSTANCES:
                server, number, _ = await direct(instance, port, cookie)
                report.affinity.append(server)
                if number != "2":
                    report.problems.append(f"{instance} answers with release {number!r}, not 2")
            for _ in range(2 * len(INSTANCES)):
                async with await trio.open_tcp_stream(*frontend) as stream:
                    request = f"GET /echo HTTP/1.1\r\nHost: app\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
                    await stream.send_all(request.encode())
                    received = b""
                    while chunk := await stream.receive_some(65536):
                        received += chunk
                head = received.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
                report.affinity.append(head.partition("x-backend: ")[2].partition("\r\n")[0])
            for admin in admins:
                report.refused_by_gateways += await refused_count(admin)
            await wait_until(
                lambda: all(access_clients(g.config_path.parent / "access.log") for g in gateways),
                EVENT,
                "every instance's access log",
            )
            for gw in gateways:
                report.logged_clients |= access_clients(gw.config_path.parent / "access.log")
        nursery.cancel_scope.cancel()
    _judge(report, http, ws, steps, end, backends)
    report.seconds = trio.current_time() - started
    return report


def _judge(
    report: Report,
    http: HttpLoad,
    ws: WsLoad,
    steps: list[Step],
    end: float,
    backends: list[HttpBackend],
) -> None:
    report.requests = len(http.served)
    report.connections = http.connections
    report.failed = len(http.failures) + len(http.refused) + len(ws.refused)
    report.sessions = len(ws.sessions)
    problems = report.problems
    problems += http.failures[:10] + http.refused[:10] + ws.refused[:10]
    for session in ws.sessions:
        if session.errors:
            problems.append(f"WebSocket client {session.client}: {session.errors}")
        if session.closed is None or session.closed >= end:
            report.open_at_end += 1
        elif session.code != 1001:
            problems.append(f"WebSocket client {session.client}: closed with {session.code}")
        elif not closed_in_time(session, steps):
            problems.append(
                f"WebSocket client {session.client}: closed at {session.closed:.2f},"
                " not within a drain window"
            )
        else:
            report.closed_1001 += 1
    if report.closed_1001 == 0:
        problems.append("no WebSocket was drained by a reload")
    for backend in backends:
        report.balanced[backend.name] = len(backend.requests_to("/echo"))
        for request in backend.requests_to("/echo"):
            report.forwarded_for.add(request.header("x-forwarded-for") or "(none)")
        if backend.ws is not None:
            for handshake in backend.ws.handshakes:
                report.forwarded_for.add(handshake.header("x-forwarded-for") or "(none)")
    if report.forwarded_for != {CLIENT}:
        problems.append(f"backends saw X-Forwarded-For {sorted(report.forwarded_for)}")
    if report.logged_clients != {CLIENT}:
        problems.append(f"instances logged clients {sorted(report.logged_clients)}")
    if min(report.balanced.values(), default=0) == 0:
        problems.append(f"requests without the cookie were not balanced: {report.balanced}")
    if len(set(report.affinity)) != 1 or "" in report.affinity:
        problems.append(f"affinity requests reached {report.affinity}")
    if report.refused_by_gateways:
        problems.append(f"{report.refused_by_gateways:g} connections refused by the gateways")


def main() -> int:
    """`scripts/rollout [DIRECTORY]`: the rehearsal (in a new subdirectory), its report,
    exit 1 on a problem."""
    top = Path(sys.argv[1] if len(sys.argv) > 1 else "rollout-rehearsal").resolve()
    # A directory of its own each run: logs of an earlier run never pass for this one's.
    directory = top / time.strftime("%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)

    async def run() -> Report:
        with trio.fail_after(120):
            return await rehearse(directory)

    report = trio.run(run)
    print(report.text())
    print(f"  files and logs: {directory}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
