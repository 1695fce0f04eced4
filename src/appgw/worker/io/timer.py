"""The worker's one timer: the deadlines of every plain connection.

A phase of an exchange with a timeout (the next request within the
keep-alive timeout, the response head within the request timeout) sets a
number on its endpoint (streams.py); no cancel scope is made, entered and
left per phase. The timer keeps, for each endpoint with a deadline, one
entry in a heap at the earliest time it must look at it again (`armed`).
When that time comes, it wakes the endpoint's waits if a deadline passed
(they raise Expired), or puts the entry back at the endpoint's deadline if
that moved later in the meantime, which is what a deadline usually does.

So a deadline that moves later, the common case, costs nothing at all; one
that moves earlier than the endpoint's entry adds an entry. Entries of
closed connections are dropped at the next sweep, at most every SWEEP
seconds.
"""

from __future__ import annotations

import heapq
import itertools
from time import monotonic
from typing import Protocol

import trio

INF = float("inf")
SWEEP = 5.0  # seconds between looks at the heap when nothing is due sooner


class Endpoint(Protocol):
    """What the timer needs of a connection with deadlines (streams.Endpoint)."""

    armed: float  # when the timer looks at it next (INF: not in the heap)
    read_at: float
    write_at: float

    @property
    def sock(self) -> _Socket | None: ...

    def expire(self) -> None:
        """Wake its waits: a deadline passed."""


class _Socket(Protocol):
    def fileno(self) -> int: ...


class Timer:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Endpoint]] = []
        self._order = itertools.count()  # ties never compare endpoints
        self._next = INF  # when the task wakes next
        self._wake = trio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, endpoint: Endpoint, at: float) -> None:
        """Look at `endpoint` at `at` (earlier than it is armed for)."""
        endpoint.armed = at
        heapq.heappush(self._heap, (at, next(self._order), endpoint))
        if at < self._next:
            self._wake.set()

    def expire_due(self, now: float) -> None:
        """Wake the waits of every endpoint whose deadline passed by `now`."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, endpoint = heapq.heappop(heap)
            endpoint.armed = INF
            due = min(endpoint.read_at, endpoint.write_at)
            if due <= now:
                endpoint.expire()
            elif due != INF:
                self.arm(endpoint, due)

    def sweep(self) -> None:
        """Drop the entries of closed connections."""
        live = [entry for entry in self._heap if _open(entry[2])]
        if len(live) < len(self._heap):
            heapq.heapify(live)
            self._heap = live

    async def run(self) -> None:
        swept = monotonic()
        while True:
            now = monotonic()
            self.expire_due(now)
            if now - swept >= SWEEP:
                self.sweep()
                swept = now
            self._next = min(self._heap[0][0] if self._heap else INF, now + SWEEP)
            self._wake = trio.Event()
            with trio.move_on_after(self._next - now):
                await self._wake.wait()


def _open(endpoint: Endpoint) -> bool:
    sock = endpoint.sock
    return sock is not None and sock.fileno() >= 0
