"""Waiting for what a test asserts: a condition polled under a budget.

A test never sleeps a fixed time and then asserts a count reached "by now":
on a busy machine "by now" comes later. It waits until the condition holds,
with the budget as the only clock, and when the budget runs out it fails
naming what never happened (and what was seen instead). Events the test
itself drives (a backend's changed event, a trio.Event) are awaited
directly; this helper is for state that changes elsewhere: another process,
a file, a counter of a load running in other tasks.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")
POLL = 0.02  # seconds between two looks


class NeverHappened(trio.TooSlowError):
    """The condition did not hold within the budget (a TooSlowError, with a message)."""


async def wait_until(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float,
    what: str | Callable[[], str] = "the condition",
    *,
    poll: float = POLL,
) -> T:
    """Wait until `condition()` returns something true; that value.

    `condition` may be a plain or an async function. Raises NeverHappened
    after `timeout` seconds; its message is `what` (a string, or a function
    called then, to describe the state it ended in).
    """
    try:
        with trio.fail_after(timeout):
            while True:
                value = condition()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value  # type: ignore[return-value]
                await trio.sleep(poll)
    except trio.TooSlowError:
        description = what() if callable(what) else what
        raise NeverHappened(f"not within {timeout:g} s: {description}") from None
