"""A response body's bytes on their way to the client, read ahead of a slow one.

`relay` takes what a response body makes for the client (`produce`: the
next bytes, None at its end; bodies.py reads the backend and frames) and
writes it to the client. As long as the client takes every piece at once,
that is all: no task, no buffer. The first piece (the response's start
included) that the client's socket does not take at once (a client slower
than its backend) starts the read-ahead, when response buffering is on and
the worker's budget grants room: one task keeps reading the backend while
the client is written to, up to the granted bound (a chunked or
close-delimited body: one read past it); past it, back-pressure as without
buffering. Once the body is read whole, `finished(True)` lets the exchange
hand the backend connection back (or close it) while the rest goes to the
client.

A read-ahead never waits for its buffer to fill: every byte is written as
soon as the client takes it, so a stream without an end (text/event-stream,
a chunked response that never finishes) flows as it comes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

import trio

from appgw.errors import first_error
from appgw.worker.exchange.budgets import Budget
from appgw.worker.exchange.downstream import Downstream

Produce = Callable[[], Awaitable[bytes | bytearray | None]]
Finished = Callable[[bool], None]  # called once at the body's end; True: read ahead


async def relay(
    client: Downstream,
    produce: Produce,
    budget: Budget | None,
    bound: int,
    finished: Finished,
    pending: bytes = b"",
) -> None:
    """Write `pending` (what the client did not take of the response's start)
    and then what `produce` makes to the client (see the module's docstring)."""
    if pending:
        assert budget is not None
        if await _held_up(client, produce, pending, budget, bound, finished):
            return
    while True:
        out = await produce()
        if out is None:
            finished(False)
            return
        if budget is None:
            await client.send(out)
            continue
        taken = client.send_now(out)
        if taken == len(out):
            continue
        if await _held_up(client, produce, bytes(memoryview(out)[taken:]), budget, bound, finished):
            return


async def _held_up(
    client: Downstream,
    produce: Produce,
    rest: bytes,
    budget: Budget,
    bound: int,
    finished: Finished,
) -> bool:
    """The client did not take `rest` at once: read ahead of it if the budget
    has room (True: the body is done), else wait for it (False: go on)."""
    granted = budget.take(bound)
    if not granted:
        await client.send(rest)  # the worker's budget is spent: back-pressure
        return False
    try:
        await _ahead(client, produce, rest, granted, finished)
    finally:
        budget.give(granted)
    return True


class _Queue:
    """Bytes read from the backend and not yet written to the client."""

    __slots__ = ("pieces", "held", "ended", "readable", "room")

    def __init__(self, first: bytes) -> None:
        self.pieces: deque[bytes | bytearray] = deque([first])
        self.held = len(first)  # queued or being written
        self.ended = False
        self.readable = trio.Event()
        self.room = trio.Event()


async def _ahead(
    client: Downstream, produce: Produce, first: bytes, bound: int, finished: Finished
) -> None:
    queue = _Queue(first)

    async def read() -> None:
        while True:
            while queue.held > bound:
                queue.room = trio.Event()
                await queue.room.wait()
            out = await produce()
            if out is None:
                queue.ended = True
                queue.readable.set()
                finished(True)
                return
            queue.pieces.append(out)
            queue.held += len(out)
            queue.readable.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            while True:
                if queue.pieces:
                    pieces = queue.pieces
                    data = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
                    pieces.clear()
                    await client.send(data)
                    queue.held -= len(data)
                    queue.room.set()
                elif queue.ended:
                    return
                else:
                    queue.readable = trio.Event()
                    await queue.readable.wait()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
