"""One exchange driven without sockets: a fake client side (a Downstream)
and a fake backend (trio's in-memory streams behind a fake pool).

The exchange is written against the Downstream and Context Protocols
(exchange/downstream.py), so it runs here exactly as it runs behind an
HTTP/1.1 connection: routing, the head built for the backend, the
response relayed, the decision to keep the connection or close it.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from appgw.config import load
from appgw.config.model import Config, Limits
from appgw.errors import BadGateway
from appgw.metrics import WorkerMetrics
from appgw.worker.codec.request import Request, read
from appgw.worker.codec.request_reader import END, RequestHead, RequestReader
from appgw.worker.exchange.budgets import Buffers
from appgw.worker.exchange.handler import handle_request
from appgw.worker.io.timer import Timer
from appgw.worker.policy.balancer import Balancer, EveryoneHealthy
from appgw.worker.policy.custom_error_pages import CustomErrorPages
from appgw.worker.policy.rewrite import compile_rule_set
from appgw.worker.policy.routing import Router
from appgw.worker.upstream.connections import BackendConnection

CONFIG = """
[listeners.web]
protocol = "http"
address = "127.0.0.1"
port = 8080

[pools.app]
servers = ["127.0.0.2:9000"]

[settings.app]
port = 9000
request_timeout = 5

[rules.web]
listener = "web"
pool = "app"
setting = "app"
"""


class FakeBackends:
    """The pool: each acquire gets a new in-memory connection, served by `answer`."""

    def __init__(self, nursery: trio.Nursery, answer: bytes, timer: Timer) -> None:
        self.nursery = nursery
        self.answer = answer
        self.timer = timer
        self.received: list[bytes] = []  # what each connection's backend read
        self.released: list[BackendConnection] = []

    async def acquire(self, host: str, port: int, *args: object, **kw: object) -> BackendConnection:
        gateway_side, backend_side = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, backend_side)
        return BackendConnection((host, port, None), gateway_side, self.timer)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        reader = RequestReader(64 * 1024, 32 * 1024)
        seen = bytearray()
        while True:  # read one whole request, then answer it
            data = await stream.receive_some(65536)
            if not data:
                return
            seen += data
            reader.feed(data)
            events = []
            while (event := reader.next_event()) is not None:
                events.append(event)
            if END in events:
                break
        self.received.append(bytes(seen))
        await stream.send_all(self.answer)

    def release(self, backend: BackendConnection) -> None:
        self.released.append(backend)


@attrs.define
class FakeContext:
    config: Config
    limits: Limits
    router: Router
    rewrites: dict
    balancer: Balancer
    backends: FakeBackends
    draining: trio.Event
    metrics: WorkerMetrics
    error_pages: CustomErrorPages
    buffers: Buffers
    tunnels: object = None
    firewall: object = None
    health: object = staticmethod(lambda: EveryoneHealthy())

    def backend_tls(self, setting: object) -> None:
        return None


@attrs.define
class Listening:
    protocol: str = "http"
    port: int = 8080
    bound: tuple[str, int] = ("127.0.0.1", 8080)


class FakeDownstream:
    """A client that sent one request (its body in `pieces`) and records the answer."""

    def __init__(self, services: FakeContext, pieces: list[bytes]) -> None:
        self.services = services
        self.limits = services.limits
        self.peer = ("127.0.0.9", 50000)
        self.scheme = "http"
        self.socket = Listening()
        self.stream = trio.testing.memory_stream_pair()[0]
        self.client_certificate = None
        self.received = 0
        self.response_started = False
        self.request_done = not pieces
        self.closing = False
        self.sent = 0
        self.out = bytearray()
        self._pieces = list(pieces)

    @property
    def body_pending(self) -> bool:
        return bool(self._pieces)

    @property
    def body_received(self) -> bool:
        return True  # every piece arrived with the head

    def close_after(self) -> None:
        self.closing = True

    async def receive_body(self) -> bytes | None:
        if self._pieces:
            return self._pieces.pop(0)
        self.request_done = True
        return None

    async def send_continue(self) -> None:
        self.out += b"HTTP/1.1 100 Continue\r\n\r\n"

    async def send_head(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> None:
        self.response_started = True
        self.out += head + bytes(body)

    def send_head_now(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> int:
        self.response_started = True
        self.out += head + bytes(body)
        return len(head) + len(body)

    async def send(self, data: bytes | bytearray | memoryview, then: bytes | memoryview = b"") -> None:
        self.out += bytes(data) + bytes(then)

    def send_now(self, data: bytes | bytearray | memoryview) -> int:
        self.out += bytes(data)
        return len(data)

    def hand_over(self) -> tuple[trio.abc.Stream, bytes]:
        raise AssertionError("no tunnel in these exchanges")


def request_of(raw: bytes) -> tuple[Request, list[bytes]]:
    """The request value of `raw`, and its body as the reader's pieces."""
    reader = RequestReader(64 * 1024, 32 * 1024)
    reader.feed(raw)
    head = reader.next_event()
    assert isinstance(head, RequestHead)
    pieces = []
    while (event := reader.next_event()) not in (None, END):
        assert isinstance(event, bytes)
        pieces.append(event)
    return read(head), pieces


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    return load(str(path))


def context(config: Config, backends: FakeBackends, *, draining: bool = False) -> FakeContext:
    router = Router(config)
    event = trio.Event()
    if draining:
        event.set()
    return FakeContext(
        config=config,
        limits=config.gateway.limits,
        router=router,
        rewrites={n: compile_rule_set(rs) for n, rs in config.rewrite_rule_sets.items()},
        balancer=Balancer(config, clock=trio.current_time),
        backends=backends,
        draining=event,
        metrics=WorkerMetrics(),
        error_pages=CustomErrorPages(config, router),
        buffers=Buffers(config.gateway.limits),
    )


async def exchange(
    config: Config, raw: bytes, answer: bytes, *, draining: bool = False
) -> tuple[FakeDownstream, FakeBackends]:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            backends = FakeBackends(nursery, answer, Timer())
            services = context(config, backends, draining=draining)
            request, pieces = request_of(raw)
            client = FakeDownstream(services, pieces)
            await handle_request(client, request)  # type: ignore[arg-type]
            nursery.cancel_scope.cancel()
    return client, backends


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"


async def test_a_request_reaches_the_backend_and_its_answer_the_client(config: Config) -> None:
    client, backends = await exchange(
        config, b"GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\n\r\n", OK
    )
    [seen] = backends.received
    head = seen.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"get /a?b=1 http/1.1\r\n")
    assert b"\r\nhost: example.com" in head
    assert b"\r\nx-forwarded-for: 127.0.0.9" in head
    assert client.out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert client.out.endswith(b"\r\n\r\nhi")
    assert not client.closing
    assert len(backends.released) == 1  # kept alive for the next request


async def test_a_buffered_body_goes_out_with_its_head(config: Config) -> None:
    raw = b"POST /up HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello"
    client, backends = await exchange(config, raw, OK)
    [seen] = backends.received
    assert seen.endswith(b"\r\n\r\nhello")
    assert b"content-length: 5" in seen.lower()
    assert client.out.endswith(b"hi")


async def test_a_draining_worker_answers_with_connection_close(config: Config) -> None:
    client, backends = await exchange(config, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", OK, draining=True)
    head = bytes(client.out).split(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head
    assert client.closing


async def test_a_body_without_length_to_an_http10_client_ends_the_connection(
    config: Config,
) -> None:
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    client, _ = await exchange(config, b"GET / HTTP/1.0\r\nhost: a\r\n\r\n", chunked)
    assert client.closing  # the close is the body's end for this client
    head, _, body = bytes(client.out).partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"hi"


async def test_a_backend_that_answers_garbage_is_a_502(config: Config) -> None:
    with pytest.raises(BaseExceptionGroup) as raised:  # out of the fake backend's nursery
        await exchange(config, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", b"SPDY/9 nonsense\r\n\r\n")
    assert raised.group_contains(BadGateway, match="sent an invalid response")
