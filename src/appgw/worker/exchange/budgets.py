"""The per-worker bounds on request and response buffers (request_buffer.py
has the rules): a budget a request or a response reserves from, and gives
back to when it is done."""

from __future__ import annotations

from appgw.config.model import Limits


class Budget:
    """Bytes that a worker's buffers of one kind may hold together."""

    __slots__ = ("total", "used")

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` bytes; how many were granted (maybe 0)."""
        granted = max(0, min(wanted, self.total - self.used))
        self.used += granted
        return granted

    def give(self, amount: int) -> None:
        self.used -= amount


class Buffers:
    """A worker's two budgets (one per direction)."""

    __slots__ = ("requests", "responses")

    def __init__(self, limits: Limits) -> None:
        self.requests = Budget(limits.worker_request_buffer_bytes)
        self.responses = Budget(limits.worker_response_buffer_bytes)
