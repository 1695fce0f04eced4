"""Rate-limit counters that every worker shares: a table in shared memory.

Application Gateway counts a rate-limit rule's requests per client address
(or per country, or all clients together) for each listener its policy
serves, across the gateway; appgw's workers are processes, so the counters
cannot live in one worker. They live in one table of fixed slots in shared
memory (a memfd, mapped MAP_SHARED) that the master makes before it forks
its first worker (`table`, called by master/brood.py); every worker,
every generation, inherits the same mapping by fork. A process that did not
inherit one (a test, a tool) makes its own on first use.

The window slides, as Azure's does: each slot keeps its key's count in the
current fixed window and in the one before, and a request is over the limit
when `previous × (share of the current window still to come) + current`
would pass the threshold. A request over the limit is not counted, so the
first window that passes the threshold drops the rest of the matching
traffic, and later ones let through about the threshold per window (Azure's
"throttling effect"). `admit` is that decision, pure; `RateTable` carries it
out on the shared slots.

Slots: 65,536 of 24 bytes (key hash, window index, current, previous),
grouped in buckets of 4; a key goes to the bucket its hash names, into its
own slot, else a free or stale one, else the one with the oldest window
(so under a flood of more distinct clients than slots, some counts start
over). A bucket is held under an fcntl lock on its bytes while it is read
and written: a worker that dies holding it releases it with its life.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct

from attrs import frozen

SLOTS = 65_536
BUCKET = 4  # slots per bucket
_SLOT = struct.Struct("<QqII")  # key hash, window index, current count, previous count


@frozen
class Slot:
    """One key's counts: in window number `window`, and in the window before."""

    key: int = 0  # 0: a free slot
    window: int = 0
    current: int = 0
    previous: int = 0


def admit(slot: Slot, key: int, now: float, seconds: int, threshold: int) -> tuple[Slot, bool]:
    """The slot after a request of `key` at `now`, and whether it is over the limit.

    `slot` is the key's (or one to take over: another key's counts are dropped).
    """
    window = int(now // seconds)
    current = previous = 0
    if slot.key == key:
        if window <= slot.window:
            window, current, previous = slot.window, slot.current, slot.previous
        elif window == slot.window + 1:
            previous = slot.current
    to_come = min(1.0, max(0.0, 1.0 - (now - window * seconds) / seconds))
    over = previous * to_come + current + 1 > threshold
    return Slot(key, window, current if over else current + 1, previous), over


def key_of(*parts: str) -> int:
    """A slot key for (policy, rule, listener, client): 8 bytes of BLAKE2b, never 0."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class RateTable:
    """The slots, in memory shared by the processes forked after it was made."""

    def __init__(self, slots: int = SLOTS) -> None:
        self.buckets = max(1, slots // BUCKET)
        size = self.buckets * BUCKET * _SLOT.size
        self.fd = os.memfd_create("appgw-waf-rates", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.memory = mmap.mmap(self.fd, size, mmap.MAP_SHARED)

    def over(self, key: int, now: float, seconds: int, threshold: int) -> bool:
        """Count a request of `key`; whether it is over the limit (then not counted)."""
        start = (key % self.buckets) * BUCKET * _SLOT.size
        length = BUCKET * _SLOT.size
        fcntl.lockf(self.fd, fcntl.LOCK_EX, length, start)
        try:
            slots = [
                Slot(*_SLOT.unpack_from(self.memory, start + i * _SLOT.size)) for i in range(BUCKET)
            ]
            index = _choose(slots, key, int(now // seconds))
            slot, over = admit(slots[index], key, now, seconds, threshold)
            _SLOT.pack_into(
                self.memory,
                start + index * _SLOT.size,
                slot.key,
                slot.window,
                slot.current,
                slot.previous,
            )
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, length, start)
        return over


def _choose(slots: list[Slot], key: int, window: int) -> int:
    """The slot of a bucket for `key`: its own, a free or stale one, or the oldest."""
    for i, slot in enumerate(slots):
        if slot.key == key:
            return i
    for i, slot in enumerate(slots):
        if slot.key == 0 or slot.window < window - 1:
            return i
    return min(range(len(slots)), key=lambda i: (slots[i].window, slots[i].current))


_TABLE: RateTable | None = None


def table() -> RateTable:
    """The process's table: the master makes it before it forks workers
    (master/brood.py) and they inherit it; elsewhere it is made on first use."""
    global _TABLE
    if _TABLE is None:
        _TABLE = RateTable()
    return _TABLE
