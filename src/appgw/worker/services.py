"""What a client connection needs from its worker, handed over as one value.

The worker builds this once; connections, the proxy and exchanges use it
and never see the worker itself, so imports flow one way: main imports
connection and proxy, never the reverse.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from appgw.config.model import Config, Limits, Setting
from appgw.metrics import WorkerMetrics
from appgw.worker.backends import BackendConnections
from appgw.worker.balancer import Balancer, Health
from appgw.worker.custom_errors import CustomErrorPages
from appgw.worker.rewrite import CompiledRuleSet
from appgw.worker.routing import Router
from appgw.worker.timer import Timer

if TYPE_CHECKING:
    from appgw.worker.connection import ClientConnection
    from appgw.worker.request import Request

    Handler = Callable[[ClientConnection, Request], Awaitable[None]]
else:
    Handler = Callable[..., Awaitable[None]]


class ListeningSocket(Protocol):
    """The listening socket a connection came through (main.Socket)."""

    protocol: str  # "http" | "https"
    port: int

    @property
    def bound(self) -> tuple[str, int]: ...


@attrs.frozen
class Services:
    config: Config
    limits: Limits
    router: Router
    rewrites: dict[str, CompiledRuleSet]
    balancer: Balancer
    backends: BackendConnections
    timer: Timer  # the deadlines of plain connections
    health: Callable[[], Health]  # the latest health snapshot
    draining: trio.Event
    grace: float  # seconds an idle connection gets once a drain began
    metrics: WorkerMetrics
    error_pages: CustomErrorPages
    backend_tls: Callable[[Setting], ssl.SSLContext | None]
    tunnels: Any  # what relay.relay_tunnel registers a tunnel with
    handle: Handler  # serves one request (proxy.handle_request)
    firewall: Any = None  # waf.firewall.Firewall, when the configuration has WAF policies
