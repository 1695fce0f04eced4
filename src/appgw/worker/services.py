"""What a client connection needs from its worker, handed over as one value.

The worker builds this once. It implements the seams the layers below are
written against (exchange/downstream.py's Context, server/http1.py's
Served), so connections and exchanges never see the worker itself and
imports flow one way: down.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs
import trio

from appgw.config.model import Config, Limits, Setting
from appgw.metrics import WorkerMetrics
from appgw.worker.exchange.budgets import Buffers
from appgw.worker.exchange.downstream import Handler
from appgw.worker.io.timer import Timer
from appgw.worker.policy.balancer import Balancer, Health
from appgw.worker.policy.custom_error_pages import CustomErrorPages
from appgw.worker.policy.rewrite import CompiledRuleSet
from appgw.worker.policy.routing import Router
from appgw.worker.tunnel.registry import TunnelHost
from appgw.worker.upstream.connections import BackendConnections

if TYPE_CHECKING:
    from appgw.waf.firewall import Firewall


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
    tunnels: TunnelHost  # what a tunnel registers with (the worker)
    handle: Handler  # serves one request (proxy.handle_request)
    # The worker's request and response buffers' budgets (buffering.py).
    buffers: Buffers = attrs.Factory(lambda self: Buffers(self.limits), takes_self=True)
    firewall: Firewall | None = None  # with WAF policies only (exchange/firewall_step.py)
