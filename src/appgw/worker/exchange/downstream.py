"""The seams of an exchange: the client side it answers, and the worker it runs in.

An exchange is written against these Protocols, never against the HTTP/1.1
connection (server/http1.py) or the worker (main.py, services.py) that
implement them, so a second codec (an HTTP/2 stream) can carry the same
exchange, and a test can drive one with a fake client and a fake backend.

- `Downstream`: what the exchange reads of the client's request beyond its
  head (the body), and the verbs it answers with (a head, body bytes, 100
  Continue, the connection handed over to a tunnel). An exchange says what
  it decided about the connection's reuse with `close_after` only.
- `Context`: what an exchange needs from its worker (routing, rewrites,
  balancing, backend connections, health, the tunnel registry, budgets, the
  firewall).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import trio

from appgw.config.model import Config, Limits, Setting
from appgw.metrics import WorkerMetrics
from appgw.worker.exchange.budgets import Buffers
from appgw.worker.policy.balancer import Balancer, Health
from appgw.worker.policy.custom_error_pages import CustomErrorPages
from appgw.worker.policy.rewrite import CompiledRuleSet
from appgw.worker.policy.routing import Router
from appgw.worker.tunnel.registry import TunnelHost
from appgw.worker.upstream.connections import BackendConnections

if TYPE_CHECKING:
    from appgw.mtls import ClientCertificate
    from appgw.waf.firewall import Firewall
    from appgw.worker.codec.request import Request


class ListeningSocket(Protocol):
    """The listening socket a connection came through (main.Socket)."""

    protocol: str  # "http" | "https"
    port: int

    @property
    def bound(self) -> tuple[str, int]: ...


class Context(Protocol):
    """What an exchange needs from its worker (services.Services)."""

    @property
    def config(self) -> Config: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def router(self) -> Router: ...
    @property
    def rewrites(self) -> dict[str, CompiledRuleSet]: ...
    @property
    def balancer(self) -> Balancer: ...
    @property
    def backends(self) -> BackendConnections: ...
    @property
    def health(self) -> Callable[[], Health]: ...
    @property
    def draining(self) -> trio.Event: ...
    @property
    def metrics(self) -> WorkerMetrics: ...
    @property
    def error_pages(self) -> CustomErrorPages: ...
    @property
    def backend_tls(self) -> Callable[[Setting], ssl.SSLContext | None]: ...
    @property
    def tunnels(self) -> TunnelHost: ...
    @property
    def buffers(self) -> Buffers: ...
    @property
    def firewall(self) -> Firewall | None: ...  # with WAF policies only


class Downstream(Protocol):
    """The client side of one exchange (server/http1.py's ClientConnection)."""

    sent: int  # body bytes sent to the client in this exchange

    @property
    def closing(self) -> bool:
        """Whether this exchange ends the connection (close_after says so)."""
        ...

    @property
    def services(self) -> Context: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def peer(self) -> tuple[str, int]: ...
    @property
    def scheme(self) -> str: ...
    @property
    def socket(self) -> ListeningSocket: ...
    @property
    def stream(self) -> trio.abc.Stream: ...
    @property
    def client_certificate(self) -> ClientCertificate | None: ...
    @property
    def received(self) -> int: ...
    @property
    def response_started(self) -> bool: ...
    @property
    def request_done(self) -> bool: ...
    @property
    def body_pending(self) -> bool: ...
    @property
    def body_received(self) -> bool: ...

    def close_after(self) -> None:
        """This exchange ends the connection (it answers with Connection: close)."""

    async def receive_body(self) -> bytes | None: ...
    def replay_body(self, pieces: list[bytes]) -> None:
        """Have receive_body give these pieces (read ahead) again, then the rest."""
    async def send_continue(self) -> None: ...
    async def send_head(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> None: ...
    def send_head_now(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> int: ...
    async def send(
        self, data: bytes | bytearray | memoryview, then: bytes | memoryview = b""
    ) -> None: ...
    def send_now(self, data: bytes | bytearray | memoryview) -> int: ...

    def hand_over(self) -> tuple[trio.abc.Stream, bytes]:
        """The connection for a tunnel: its stream, with no deadline left, and
        what the client sent past its upgrade request's head."""
        ...


# Serves one request on a client connection (exchange/handler.py's handle_request).
Handler = Callable[[Downstream, "Request"], Awaitable[None]]
