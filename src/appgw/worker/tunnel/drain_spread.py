"""When a drain ends each tunnel (pure: the callers pass the clock's values).

A drain that ended every tunnel at its deadline would send every client of
the worker away at one instant, and they would all reconnect at the next: a
reconnect storm on the backends. Envoy's gradual drain closes connections
over the whole drain time instead; tunnels do the same here:

- When the drain begins, each tunnel gets its moment (`spread`): the
  tunnels that share a drain window (their setting's drain timeout) are
  spread evenly over the first SPREAD_SHARE of it, oldest first. The rest
  of the window is left for a frame caught mid-way and the Close replies,
  so that no tunnel outlives the deadline.
- A tunnel whose handshake was still under way when the drain began gets
  a moment in what is left of its window (`late_moment`): the k-th late
  one by the golden-ratio sequence, so late tunnels spread evenly too.
- A tunnel that goes idle during the drain is closed then (`DrainTurn`):
  it carried bytes since the drain began, both directions stand at a frame
  boundary with nothing in flight, and no byte moved for DRAIN_SETTLE (an
  answer to the last message, an acknowledgement, has that long to pass
  before the Close).
- Whatever is left at its moment is closed then, at a frame boundary each
  way; at the deadline, anything still open.

Every end is the gateway's Close 1001 to both sides (relay.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

SPREAD_SHARE = 0.9  # the share of the drain window the moments are spread over
DRAIN_SETTLE = 1.0  # seconds without a byte after which a tunnel counts as gone idle
_GOLDEN = (math.sqrt(5) - 1) / 2  # 0.618...: each next fraction fills the widest gap


def spread(windows: Sequence[float], start: float) -> list[float]:
    """Each tunnel's moment, for tunnels given oldest first by their drain windows.

    The tunnels of one window are spread evenly over its first SPREAD_SHARE:
    the i-th of n at start + span * (i + 1) / (n + 1).
    """
    counts: dict[float, int] = {}
    for window in windows:
        counts[window] = counts.get(window, 0) + 1
    seen: dict[float, int] = {}
    moments = []
    for window in windows:
        i = seen.get(window, 0)
        seen[window] = i + 1
        moments.append(start + window * SPREAD_SHARE * (i + 1) / (counts[window] + 1))
    return moments


def late_moment(start: float, window: float, now: float, k: int) -> float:
    """The moment of the k-th tunnel (k >= 1) that opened after the drain began."""
    end = start + window * SPREAD_SHARE
    if now >= end:
        return now
    return now + (end - now) * ((k * _GOLDEN) % 1.0)


@attrs.frozen
class DrainTurn:
    """A draining tunnel's times: when the drain began, its moment, its deadline."""

    began: float
    moment: float
    deadline: float

    def end(self, now: float, last_activity: float, *, at_rest: bool) -> str | None:
        """Why the drain ends the tunnel now (the log's words), or None to keep it.

        `at_rest`: both directions at a frame boundary with nothing in flight.
        """
        if now >= self.deadline:
            return "drain deadline"
        into = now - self.began
        if last_activity > self.began and at_rest and now >= last_activity + DRAIN_SETTLE:
            return f"drained: idle at a frame boundary {into:.1f}s into the drain"
        if now >= self.moment:
            return f"drained: its turn {into:.1f}s into the drain"
        return None

    def next_check(self, now: float, last_activity: float) -> float:
        """When the tunnel should be looked at next.

        Traffic only records the time of its last byte, so the relay does
        not wake for it: a draining tunnel looks again every DRAIN_SETTLE at
        most, to see whether it has gone idle.
        """
        settled = last_activity + DRAIN_SETTLE
        return min(self.moment, self.deadline, settled if settled > now else now + DRAIN_SETTLE)
