"""Which workers to start and which to retire (pure).

The rules this module keeps:
- Workers belong to a generation, one per configuration the master has
  loaded. Only the newest generation is current.
- The current generation is kept at the wanted number of live workers:
  missing ones are started, extra ones (after TTOU) are retired newest
  first.
- Older generations keep serving until the current generation has the
  wanted number of ready workers; then all of them are retired (drained).
  So a reload never leaves a moment with nobody accepting.
- A retired worker is never counted again; it drains and exits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from attrs import frozen

if TYPE_CHECKING:
    from appgw.config.model import Config


@frozen
class WorkerState:
    pid: int
    generation: int
    ready: bool
    retiring: bool
    started: float


@frozen
class Plan:
    start: int  # workers of the current generation to start
    retire: tuple[int, ...]  # pids to drain


def plan(workers: Iterable[WorkerState], generation: int, wanted: int) -> Plan:
    workers = list(workers)
    current = [w for w in workers if w.generation == generation and not w.retiring]
    retire: list[int] = []
    if len(current) > wanted:
        extra = sorted(current, key=lambda w: (w.ready, -w.started))[: len(current) - wanted]
        retire += [w.pid for w in extra]
        current = [w for w in current if w.pid not in retire]
    ready = sum(1 for w in current if w.ready)
    if ready >= wanted:
        retire += [w.pid for w in workers if w.generation < generation and not w.retiring]
    return Plan(start=max(0, wanted - len(current)), retire=tuple(retire))


def generation_ready(workers: Iterable[WorkerState], generation: int, wanted: int) -> bool:
    return (
        sum(1 for w in workers if w.generation == generation and w.ready and not w.retiring)
        >= wanted
    )


def worker_count(config: Config) -> int:
    """Workers a configuration asks for: gateway.workers, or one per CPU."""
    return config.gateway.workers or os.cpu_count() or 1


def drain_budget(configs: Iterable[Config]) -> float:
    """Seconds a graceful stop may take: the longest tunnel drain timeout, plus 15."""
    timeouts = [
        float(s.tunnel_drain_timeout) for config in configs for s in config.settings.values()
    ]
    return max(timeouts, default=30.0) + 15
