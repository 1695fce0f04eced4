"""The worker's registry of open tunnels, and what a drain does to them.

A tunnel registers with its worker for as long as it runs (relay_tunnel);
when the worker drains, drain_tunnels gives each open tunnel its moment in
the drain window (drain_spread.py), and a tunnel that opens during the
drain gets a late moment of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import trio

from appgw.metrics import WorkerMetrics
from appgw.worker.tunnel.drain_spread import late_moment, spread
from appgw.worker.tunnel.tunnel import Tunnel, TunnelEnd


class TunnelHost(Protocol):
    """What a tunnel registers with (the worker)."""

    tunnels: set[Tunnel]
    metrics: WorkerMetrics
    draining: trio.Event
    drain_started: float
    late_tunnels: int  # tunnels that opened after the drain began


def drain_tunnels(tunnels: Iterable[Tunnel], now: float) -> None:
    """The drain begins: each tunnel gets its moment, oldest first."""
    ordered = sorted(tunnels, key=lambda tunnel: tunnel.started)
    moments = spread([tunnel.drain_timeout for tunnel in ordered], now)
    for tunnel, moment in zip(ordered, moments, strict=True):
        tunnel.drain(now, moment)


async def relay_tunnel(
    host: TunnelHost,
    client: trio.abc.Stream,
    client_rest: bytes,
    backend: trio.abc.Stream,
    backend_rest: bytes,
    *,
    idle_timeout: float,
    drain_timeout: float,
    label: str,
    idle_limit: str = "",
    close_on_peer_loss: bool = False,
) -> TunnelEnd:
    """Relay between client and backend until the tunnel ends; how it ended.

    `idle_limit` says what set `idle_timeout`, for the log line of a tunnel
    that the timeout ends; `close_on_peer_loss` is the setting's (relay.py).
    """
    tunnel = Tunnel(
        client,
        backend,
        idle_timeout,
        drain_timeout,
        label,
        idle_limit,
        close_on_peer_loss=close_on_peer_loss,
    )
    host.tunnels.add(tunnel)
    host.metrics.tunnels_total += 1
    if host.draining.is_set():  # its handshake was under way when the drain began
        host.late_tunnels += 1
        start = host.drain_started
        now = trio.current_time()
        tunnel.drain(start, late_moment(start, drain_timeout, now, host.late_tunnels))
    tunnel.take_over(client_rest, backend_rest)
    client_rest = backend_rest = b""  # held by the tunnel until written, no longer
    try:
        return await tunnel.run()
    finally:
        host.tunnels.discard(tunnel)
