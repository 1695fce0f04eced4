"""A worker's counters: plain integers bumped on the request path.

The worker sends them to the master with every heartbeat; the master adds
up all workers (keeping what exited workers had counted) and writes the
totals beside the pid file for `appgw metrics`.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define
class Counters:
    """Counters only grow; gauges (active connections, tunnels) are read at
    heartbeat time."""

    connections_total: int = 0
    requests_total: int = 0
    responses_1xx: int = 0
    responses_2xx: int = 0
    responses_3xx: int = 0
    responses_4xx: int = 0
    responses_5xx: int = 0
    backend_errors_total: int = 0  # 502 answered by the gateway
    backend_timeouts_total: int = 0  # 504
    tunnels_total: int = 0
    response_body_bytes_total: int = 0

    def exchange(self, status: int, sent: int) -> None:
        """Count one answered request."""
        self.requests_total += 1
        self.response_body_bytes_total += sent
        if 100 <= status < 600:
            name = f"responses_{status // 100}xx"
            setattr(self, name, getattr(self, name) + 1)
        if status == 502:
            self.backend_errors_total += 1
        elif status == 504:
            self.backend_timeouts_total += 1

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


COUNTERS = frozenset(field.name for field in attrs.fields(Counters))


def add(totals: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Sum two metric dicts key by key (numbers only)."""
    out = dict(totals)
    for key, value in more.items():
        if isinstance(value, int | float):
            out[key] = out.get(key, 0) + value
    return out
