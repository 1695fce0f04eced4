"""Test kit for backend health: switchable backends, health files, traffic.

- ProbedBackend: an HTTP backend whose answer to health probes is set by
  the test at any moment (status, body, the Host it insists on), and which
  can be stopped and started again on the same address and port. Every
  other path answers 200 with JSON naming the backend. Each response goes
  out in one write, so stopping the backend never leaves a response half
  sent: a request it had not answered yet simply loses its connection,
  which is what a gateway can fail over from.
- The health file the master keeps beside its pid file, read as a
  Snapshot, and waits on it (the readiness signal for a health change).
- Traffic: a few client tasks looping GETs through the gateway for as long
  as a block runs, counting every failure and which backend answered.
- The prober's pid, from the master's log line "prober N started".
- wait_for_workers: until every worker routes by a health change (the
  health file changes once the master has sent the change to the workers,
  not once they have applied it).
- probed_toml: gateway_toml with a custom probe on the setting.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import h11
import trio

from appgw import runfiles
from tests.support.backends import PEER_ERRORS, RecordedRequest, listening_port
from tests.support.clients import HttpClient, IncompleteResponse, Response, open_http
from tests.support.gateway import GatewayProcess, connection_holder, gateway_toml, toml_table
from tests.support.waiting import wait_until

BLOCK = 64 * 1024
PROBE_PATH = "/health"
# Fast probes: a dead server leaves rotation in about two seconds. The
# timeout is longer than the interval: on a busy machine a healthy test
# backend can answer a probe a second or two late, and tests that are not
# about timeouts must not see it marked Unhealthy for that.
FAST_PROBE: dict[str, object] = {
    "path": PROBE_PATH,
    "interval": 1,
    "timeout": 3,
    "unhealthy_threshold": 2,
}
# What the prober adds on top of interval x threshold (+ timeout) before a
# change reaches the health file: it publishes at most once a second.
PUBLISH_SLACK = 1.5


# -- a backend whose health the test switches ----------------------------------


@attrs.define(eq=False)
class ProbedBackend:
    """A backend on host:port whose health-probe answer the test controls.

    Requests to `probe_path` are probes: they get `probe_status` and
    `probe_body`, or 404 when `require_host` is set and the Host header
    names another host. Any other request is traffic: 200 with JSON
    {"backend": name, "target": ...} and an X-Backend header.
    """

    name: str
    host: str
    port: int = 0
    probe_path: str = PROBE_PATH
    probe_status: int = 200
    probe_body: bytes = b"healthy"
    require_host: str | None = None
    probes: list[RecordedRequest] = attrs.Factory(list)
    requests: list[RecordedRequest] = attrs.Factory(list)  # traffic, not probes
    connections: int = 0
    running: bool = False
    _changed: trio.Event = attrs.Factory(trio.Event)
    _scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery) -> ProbedBackend:
        """Listen (again) on host:port; returns once it accepts connections."""
        await nursery.start(self._serve)
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection, like a process that died."""
        if self._scope is not None:
            self._scope.cancel()
        self.running = False

    def set_probe_answer(self, status: int, body: bytes | None = None) -> None:
        self.probe_status = status
        if body is not None:
            self.probe_body = body

    def traffic_since(self, mark: int) -> list[RecordedRequest]:
        """Traffic requests after the first `mark` ones (mark = len(requests) earlier)."""
        return self.requests[mark:]

    async def wait_for_traffic(self, count: int, timeout: float) -> None:
        """Wait until `count` traffic requests in all have arrived."""
        with trio.fail_after(timeout):
            while len(self.requests) < count:
                await self._changed.wait()

    async def wait_for_probe(self, count: int, timeout: float) -> RecordedRequest:
        """Wait until `count` probes in all have arrived; the last of them."""
        with trio.fail_after(timeout):
            while len(self.probes) < count:
                await self._changed.wait()
        return self.probes[count - 1]

    def _note(self, into: list[RecordedRequest], request: RecordedRequest) -> None:
        into.append(request)
        self._changed.set()
        self._changed = trio.Event()

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        scope = trio.CancelScope()
        self._scope = scope
        with scope:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
            self.port = listening_port(listeners[0])
            self.running = True
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._connection, listeners)
                task_status.started()

    async def _connection(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        number = self.connections
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await _next_event(conn, stream)
                if isinstance(event, h11.ConnectionClosed):
                    return
                assert isinstance(event, h11.Request), event
                while not isinstance(await _next_event(conn, stream), h11.EndOfMessage):
                    pass  # bodies are not used here
                request = _recorded(number, event)
                status, body, content_type = self._answer(request)
                head = h11.Response(
                    status_code=status,
                    headers=[
                        ("Content-Type", content_type),
                        ("Content-Length", str(len(body))),
                        ("X-Backend", self.name),
                    ],
                )
                # One write for the whole response: never half an answer.
                await stream.send_all(
                    conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                )
                if h11.MUST_CLOSE in (conn.our_state, conn.their_state):
                    return
                conn.start_next_cycle()
        except PEER_ERRORS:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    def _answer(self, request: RecordedRequest) -> tuple[int, bytes, str]:
        if request.path == self.probe_path:
            self._note(self.probes, request)
            host = (request.header("host") or "").rsplit(":", 1)[0]
            if self.require_host is not None and host != self.require_host:
                return 404, f"unknown host {host}\n".encode(), "text/plain"
            return self.probe_status, self.probe_body, "text/plain"
        self._note(self.requests, request)
        document = {"backend": self.name, "target": request.target}
        return 200, json.dumps(document).encode(), "application/json"


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(BLOCK))
            continue
        return event


def _recorded(connection: int, event: h11.Request) -> RecordedRequest:
    return RecordedRequest(
        connection=connection,
        method=event.method.decode("ascii"),
        target=event.target.decode("latin-1"),
        http_version=event.http_version.decode("ascii"),
        headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers),
    )


async def start_probed_backends(
    nursery: trio.Nursery, hosts: Sequence[str], port: int, **options: Any
) -> list[ProbedBackend]:
    """One ProbedBackend per host, all on `port`, named "a", "b", ... unless names=[...]."""
    names = options.pop("names", None) or [chr(ord("a") + i) for i in range(len(hosts))]
    started = []
    for host, name in zip(hosts, names, strict=True):
        backend = ProbedBackend(name, host, port, **options)
        started.append(await backend.start(nursery))
    return started


# -- configuration ---------------------------------------------------------------


def probed_toml(
    *,
    servers: Sequence[str],
    backend_port: int,
    http_port: int,
    probe: Mapping[str, object] | None = None,
    setting: Mapping[str, object] | None = None,
    **options: Any,
) -> str:
    """gateway_toml with a custom probe "health" (FAST_PROBE updated by `probe`)."""
    text = gateway_toml(
        servers=servers,
        backend_port=backend_port,
        http_port=http_port,
        setting={"probe": "health", **(setting or {})},
        **options,
    )
    return text + "\n" + toml_table("probes.health", {**FAST_PROBE, **(probe or {})})


def _timing(probe: Mapping[str, object] | None) -> tuple[float, float, float]:
    values: dict[str, Any] = {**FAST_PROBE, **(probe or {})}
    return (
        float(values["interval"]),
        float(values["timeout"]),
        float(values["unhealthy_threshold"]),
    )


def leave_rotation_bound(probe: Mapping[str, object] | None = None) -> float:
    """Seconds within which a server that stops answering must leave rotation."""
    interval, timeout, threshold = _timing(probe)
    return interval * threshold + timeout + PUBLISH_SLACK


def return_bound(probe: Mapping[str, object] | None = None) -> float:
    """Seconds within which one good probe must bring a server back."""
    interval, timeout, _threshold = _timing(probe)
    return interval + timeout + PUBLISH_SLACK


def http_listener(name: str, port: int, address: str = "127.0.0.1") -> str:
    """TOML for an http listener."""
    return toml_table(f"listeners.{name}", {"protocol": "http", "address": address, "port": port})


def basic_rule(name: str, *, listener: str, pool: str, setting: str, priority: int) -> str:
    """TOML for a basic rule from `listener` to `pool` through `setting`."""
    values = {"listener": listener, "pool": pool, "setting": setting, "priority": priority}
    return toml_table(f"rules.{name}", values)


# -- the health file -------------------------------------------------------------


@attrs.frozen
class Snapshot:
    """A health snapshot as the master wrote it beside the pid file."""

    time: float
    servers: tuple[Mapping[str, Any], ...]

    def entries(self, host: str, *, setting: str | None = None) -> list[Mapping[str, Any]]:
        return [
            s
            for s in self.servers
            if s["host"] == host and (setting is None or s["setting"] == setting)
        ]

    def entry(self, host: str, *, setting: str | None = None) -> Mapping[str, Any]:
        """The one entry of `host` (under `setting`); KeyError if not exactly one."""
        found = self.entries(host, setting=setting)
        if len(found) != 1:
            raise KeyError(f"{len(found)} entries for {host} (setting {setting}): {self.servers}")
        return found[0]

    def state(self, host: str, *, setting: str | None = None) -> str:
        return str(self.entry(host, setting=setting)["state"])

    def routable(self, host: str, *, setting: str | None = None) -> bool:
        return bool(self.entry(host, setting=setting)["routable"])


def health_path(gw: GatewayProcess) -> Path:
    return Path(runfiles.health_file(str(gw.pid_file)))


def read_snapshot(gw: GatewayProcess) -> Snapshot | None:
    """The health file's snapshot, None while there is none (or it is unreadable)."""
    try:
        data = json.loads(health_path(gw).read_text())
        return Snapshot(float(data["time"]), tuple(data["servers"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def wait_for_snapshot(
    gw: GatewayProcess, predicate: Callable[[Snapshot], bool], timeout: float
) -> Snapshot:
    """Wait until the health file holds a snapshot satisfying `predicate`."""
    last: Snapshot | None = None
    try:
        with trio.fail_after(timeout):
            while True:
                snapshot = read_snapshot(gw)
                if snapshot is not None:
                    last = snapshot
                    try:
                        if predicate(snapshot):
                            return snapshot
                    except KeyError:
                        pass  # a server the snapshot does not list (yet)
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise AssertionError(
            f"health file never matched within {timeout} s; last snapshot: {last}"
        ) from None


async def wait_for_state(
    gw: GatewayProcess, host: str, state: str, timeout: float, *, setting: str | None = None
) -> Snapshot:
    """Wait until `host` (under `setting`) is in `state` in the health file."""
    return await wait_for_snapshot(gw, lambda s: s.state(host, setting=setting) == state, timeout)


async def wait_for_states(
    gw: GatewayProcess, states: Mapping[str, str], timeout: float
) -> Snapshot:
    """Wait until every host of `states` is in its state (under any single setting)."""
    return await wait_for_snapshot(
        gw, lambda s: all(s.state(h) == state for h, state in states.items()), timeout
    )


def server_line(text: str, address: str) -> str:
    """The line of `appgw health` text output for `address` ("host:port")."""
    lines = [line for line in text.splitlines() if line.strip().startswith(address)]
    if len(lines) != 1:
        raise AssertionError(f"{len(lines)} lines for {address} in:\n{text}")
    return lines[0]


# -- workers applying a health change -------------------------------------------------

WORKERS_FOLLOW = 15.0  # seconds every worker has to apply a health change


async def wait_for_workers(
    gw: GatewayProcess,
    host: str,
    port: int,
    follows: Callable[[list[Response]], bool],
    what: str,
    *,
    requests: int = 4,
    target: str = "/route",
) -> None:
    """Wait until every worker routes as `follows` expects.

    The master sends a health change to each worker, then writes the health
    file; a worker applies it when its control task next runs, so a request
    made as soon as the file changed may still be routed by the previous
    snapshot. Each round makes `requests` requests on a fresh connection
    and notes the worker that served them when `follows(responses)`; a
    worker never goes back to an older snapshot, so once every worker was
    seen following, all of them route by the change.
    """
    workers = set(gw.worker_pids(host, port))
    following: set[int] = set()

    async def every_worker_follows() -> bool:
        async with open_http(host, port) as client:
            responses = [await client.get(f"{target}?settle={i}") for i in range(requests)]
            worker = connection_holder(sorted(workers), (host, port), client.local_address)
        if worker is not None and follows(responses):
            following.add(worker)
        return workers <= following

    await wait_until(
        every_worker_follows,
        WORKERS_FOLLOW,
        lambda: f"every worker {what} (seen in {sorted(following)} of {sorted(workers)})",
    )


def answered_only_by(*names: str) -> Callable[[list[Response]], bool]:
    """`follows` for wait_for_workers: every answer 200, from one of `names`."""
    return lambda responses: all(
        r.status == 200 and r.header("x-backend") in names for r in responses
    )


def answered_by_each(*names: str) -> Callable[[list[Response]], bool]:
    """`follows` for wait_for_workers: all 200, and each of `names` answered."""
    return lambda responses: (
        all(r.status == 200 for r in responses)
        and {r.header("x-backend") for r in responses} == set(names)
    )


# -- the prober --------------------------------------------------------------------

_PROBER_STARTED = re.compile(r"prober (\d+) started")


def prober_pids(gw: GatewayProcess) -> list[int]:
    """Every prober the master logged as started, in order."""
    return [int(m.group(1)) for m in _PROBER_STARTED.finditer(gw.log())]


async def wait_for_prober(gw: GatewayProcess, timeout: float, *, not_pid: int = 0) -> int:
    """The pid of the latest prober, once one other than `not_pid` is a live child."""
    with trio.fail_after(timeout):
        while True:
            pids = prober_pids(gw)
            if pids and pids[-1] != not_pid and pids[-1] in gw.children():
                return pids[-1]
            await trio.sleep(0.05)


# -- continuous traffic ---------------------------------------------------------------


@attrs.define(eq=False)
class Traffic:
    """What the looping clients saw."""

    target: str
    ok: int = 0
    failures: list[str] = attrs.Factory(list)
    by_backend: Counter[str] = attrs.Factory(Counter)
    answers: list[tuple[float, str]] = attrs.Factory(list)  # (trio time, backend)
    _changed: trio.Event = attrs.Factory(trio.Event)

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    def backends_since(self, when: float) -> Counter[str]:
        """Which backends answered requests that ended after trio time `when`."""
        return Counter(name for at, name in self.answers if at >= when)

    async def wait_for(self, predicate: Callable[[Traffic], bool], timeout: float) -> None:
        with trio.fail_after(timeout):
            while not predicate(self):
                await self._changed.wait()

    async def wait_for_more(self, count: int, timeout: float) -> None:
        """Wait until `count` more requests have completed (successful or not)."""
        goal = self.total + count
        await self.wait_for(lambda t: t.total >= goal, timeout)

    def _record(self, backend: str | None, failure: str | None) -> None:
        if failure is None:
            self.ok += 1
            self.by_backend[backend or "?"] += 1
            self.answers.append((trio.current_time(), backend or "?"))
        else:
            self.failures.append(failure)
        self._changed.set()
        self._changed = trio.Event()


@asynccontextmanager
async def open_traffic(
    host: str,
    port: int,
    *,
    clients: int = 4,
    target: str = "/traffic",
    per_connection: int = 10,
    pause: float = 0.01,
) -> AsyncIterator[Traffic]:
    """Clients looping GET `target` on host:port until the block ends.

    Each client sends up to `per_connection` requests on a keep-alive
    connection, then opens another (so both workers get traffic), and
    paces itself with `pause` seconds between requests. Any status but 200,
    and any broken connection, is a failure.
    """
    traffic = Traffic(target)
    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(_client_loop, traffic, host, port, n, per_connection, pause)
        try:
            yield traffic
        finally:
            nursery.cancel_scope.cancel()


async def _client_loop(
    traffic: Traffic, host: str, port: int, n: int, per_connection: int, pause: float
) -> None:
    while True:
        try:
            client = await HttpClient.open(host, port)
        except OSError as exc:
            traffic._record(None, f"client {n}: connect: {exc!r}")
            await trio.sleep(pause)
            continue
        try:
            for _ in range(per_connection):
                response = await client.get(f"{traffic.target}?client={n}")
                backend = response.header("x-backend")
                if response.status == 200:
                    traffic._record(backend, None)
                else:
                    traffic._record(None, f"client {n}: {response.status} {response.body[:200]!r}")
                if not client.reusable:
                    break
                await trio.sleep(pause)
        except (OSError, IncompleteResponse, h11.ProtocolError, trio.BrokenResourceError) as exc:
            traffic._record(None, f"client {n}: {exc!r}")
        finally:
            await client.aclose()
