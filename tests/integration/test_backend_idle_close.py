"""A backend that closes idle keep-alive connections: no request lost to the race.

The backend here closes a keep-alive connection 0.5 s after its last
response, as Node.js does after 5 s (`keepAliveTimeout`). Requests reach it
in waves, each wave a while after the last one's responses, that while
drawn around 0.5 s: the gateway's pooled connections are then reused just
before, just as and just after the backend closes them. A GET that meets a
closing connection is sent again on a fresh one; a POST must never meet
one: with `gateway.limits.backend_reuse_idle` below the backend's 0.5 s, it
reuses only connections idle for less than that and otherwise opens a
fresh one. Either way every one of the 1,500 requests of each method gets
its 200.
"""

from __future__ import annotations

import random
from pathlib import Path

import attrs
import pytest
import trio

from tests.support.clients import HttpClient
from tests.support.gateway import gateway_toml, open_gateway

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
KEEP_ALIVE = 0.5  # the backend closes a connection idle this long
REUSE_IDLE = 0.25  # the gateway's bound: half of it, as docs/configuration.md advises
LANES = 150  # requests in one wave, on as many client connections
REQUESTS = 1500  # of each method


@attrs.define
class ClosingBackend:
    """Counts what the backend did: requests answered, idle connections it closed."""

    port: int = 0
    answered: int = 0
    closed_idle: int = 0
    connections: int = 0


async def _read_request(stream: trio.SocketStream, buffer: bytearray) -> bool:
    """One request (head and Content-Length body) out of `buffer`, reading as needed."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return False
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buffer) < end + length:
        data = await stream.receive_some(65536)
        if not data:
            return False
        buffer += data
    del buffer[: end + length]
    return True


async def serve_closing_backend(
    backend: ClosingBackend, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    async def connection(stream: trio.SocketStream) -> None:
        backend.connections += 1
        buffer = bytearray()
        try:
            while True:
                if not buffer:
                    # The keep-alive timer: nothing of a next request within
                    # KEEP_ALIVE of the last response, and the connection goes.
                    with trio.move_on_after(KEEP_ALIVE):
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        buffer += data
                    if not buffer:
                        backend.closed_idle += 1
                        return
                if not await _read_request(stream, buffer):
                    return
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
                )
                backend.answered += 1
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_tcp_listeners(0, host=A)
    backend.port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started()


async def waves(port: int, method: str, seed: int) -> list[str]:
    """REQUESTS requests in waves of LANES, each wave about KEEP_ALIVE after the last.

    Returns what went wrong (a status other than 200, a broken connection).
    """
    rng = random.Random(seed)
    failures: list[str] = []
    body = b"x" * 512 if method == "POST" else None
    clients = [await HttpClient.open(GATEWAY, port) for _ in range(LANES)]

    async def one(client: HttpClient, n: int) -> None:
        try:
            response = await client.request(method, f"/{method.lower()}/{n}", body=body)
            if response.status != 200:
                failures.append(f"{method} {n}: {response.status} {response.body[:100]!r}")
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            failures.append(f"{method} {n}: {exc!r}")

    try:
        for wave in range(REQUESTS // LANES):
            async with trio.open_nursery() as nursery:
                for lane, client in enumerate(clients):
                    nursery.start_soon(one, client, wave * LANES + lane)
            # The next wave meets the pooled connections about as the backend closes them.
            await trio.sleep(rng.uniform(KEEP_ALIVE - 0.08, KEEP_ALIVE + 0.08))
    finally:
        for client in clients:
            await client.aclose()
    return failures


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_no_request_fails_against_a_backend_that_closes_idle_connections(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, method: str
) -> None:
    backend = ClosingBackend()
    with trio.fail_after(100):
        await nursery.start(serve_closing_backend, backend)
        config = gateway_toml(
            servers=[A],
            backend_port=backend.port,
            http_port=gateway_port,
            limits={"backend_reuse_idle": REUSE_IDLE},
        )
        async with open_gateway(config, tmp_path, workers=1):
            failures = await waves(gateway_port, method, seed=25)
            assert failures == [], f"{len(failures)} of {REQUESTS} failed: {failures[:5]}"
            # The race was there to lose: the backend closed idle connections
            # under the gateway's pool all along.
            assert backend.closed_idle >= REQUESTS // LANES, backend
