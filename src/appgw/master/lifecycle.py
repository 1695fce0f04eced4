"""A child's life as the master sees it, kept as a table of rules (pure).

The rules:

- A child (worker or prober) starts STARTING. Its Ready message makes it
  READY; a worker's heartbeats (and the Ready) keep `last_beat` current.
- The master asks a child to go in one of two ways: RETIRE (drain: TERM,
  for a worker the plan no longer wants, an old generation, a graceful
  stop) or ABANDON (stop now: QUIT, for a reload whose workers cannot boot,
  or a fast stop). Either makes it RETIRING; asking again the same way does
  nothing, and ABANDON still hurries a child that was draining.
- A child that is overdue is killed (KILL) and becomes STALLED: a READY
  worker silent for longer than the stall timeout, a child not ready within
  the boot timeout, a child that outlives the stop deadline. A STALLED
  child is only waited for.
- Every child ends EXITED, whatever its phase, when it is reaped. What the
  master does then (exit_outcome):
  - nothing, for a child it asked to go (RETIRING), or one no longer wanted
    (an old generation, or the gateway is stopping);
  - BOOT_FAILED, for a worker that exits with BOOT_ERROR before it was ever
    ready: starting another would fail the same way;
  - REPLACE otherwise (a crash, or a child killed as stalled).
- One back-off rule for workers and the prober, each kind with its own
  delay: a replacement of a child that served (was ready) for at least
  YOUNG seconds starts at once, and the delay is cleared; a child that
  died younger, or before it was ready, doubles the delay (0.5 s first,
  at most MAX_BACKOFF). A new generation clears both delays.

The transitions are data (_TRANSITIONS). step() applies one event and
returns the new Life and the signal to send, if any; nothing here does I/O
or reads a clock: callers pass `now`. The arbiter carries the signals out.
"""

from __future__ import annotations

import enum
import signal
from typing import Any

import attrs
from attrs import frozen

from appgw.process import BOOT_ERROR

BOOT_TIMEOUT = 30.0  # seconds a new child may take to report ready
YOUNG = 5.0  # a child that dies younger than this backs off its replacement
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class Phase(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    RETIRING = "retiring"
    STALLED = "stalled"
    EXITED = "exited"


class Event(enum.Enum):
    READY = enum.auto()  # the child said Ready
    BEAT = enum.auto()  # a heartbeat
    RETIRE = enum.auto()  # the master wants it to drain
    ABANDON = enum.auto()  # the master wants it to stop now
    OVERDUE = enum.auto()  # silent, not ready in time, or past the stop deadline
    EXIT = enum.auto()  # reaped


class Outcome(enum.Enum):
    GONE = enum.auto()  # nothing to do
    REPLACE = enum.auto()  # start another (after the back-off)
    BOOT_FAILED = enum.auto()  # workers cannot start: stop, or roll the reload back


_P, _E = Phase, Event
_TERM, _QUIT, _KILL = signal.SIGTERM, signal.SIGQUIT, signal.SIGKILL

# phase -> event -> (new phase, signal to send or None)
_TRANSITIONS: dict[Phase, dict[Event, tuple[Phase, int | None]]] = {
    _P.STARTING: {
        _E.READY: (_P.READY, None),
        _E.BEAT: (_P.STARTING, None),
        _E.RETIRE: (_P.RETIRING, _TERM),
        _E.ABANDON: (_P.RETIRING, _QUIT),
        _E.OVERDUE: (_P.STALLED, _KILL),
        _E.EXIT: (_P.EXITED, None),
    },
    _P.READY: {
        _E.READY: (_P.READY, None),
        _E.BEAT: (_P.READY, None),
        _E.RETIRE: (_P.RETIRING, _TERM),
        _E.ABANDON: (_P.RETIRING, _QUIT),
        _E.OVERDUE: (_P.STALLED, _KILL),
        _E.EXIT: (_P.EXITED, None),
    },
    _P.RETIRING: {
        _E.READY: (_P.RETIRING, None),
        _E.BEAT: (_P.RETIRING, None),
        _E.RETIRE: (_P.RETIRING, None),
        _E.ABANDON: (_P.RETIRING, _QUIT),
        _E.OVERDUE: (_P.STALLED, _KILL),
        _E.EXIT: (_P.EXITED, None),
    },
    _P.STALLED: {
        _E.READY: (_P.STALLED, None),
        _E.BEAT: (_P.STALLED, None),
        _E.RETIRE: (_P.STALLED, None),
        _E.ABANDON: (_P.STALLED, None),
        _E.OVERDUE: (_P.STALLED, None),
        _E.EXIT: (_P.EXITED, None),
    },
    _P.EXITED: {event: (_P.EXITED, None) for event in Event},
}


@frozen
class Life:
    """Where one child is in its life."""

    started: float
    last_beat: float
    phase: Phase = Phase.STARTING
    served: bool = False  # it has been ready

    @classmethod
    def begin(cls, now: float) -> Life:
        return cls(started=now, last_beat=now)

    @property
    def live(self) -> bool:
        """Still counted as one of its generation's children (for the plan)."""
        return self.phase in (Phase.STARTING, Phase.READY)


@frozen
class Step:
    life: Life
    send: int | None  # the signal to send the child, if any


def step(life: Life, event: Event, now: float) -> Step:
    """Apply one event to a child's life; the new life and the signal to send."""
    phase, send = _TRANSITIONS[life.phase][event]
    changes: dict[str, Any] = {}
    if phase is not life.phase:
        changes["phase"] = phase
    if event in (Event.READY, Event.BEAT) and phase is not Phase.EXITED:
        changes["last_beat"] = now
    if event is Event.READY and life.phase is Phase.STARTING:
        changes["served"] = True
    return Step(attrs.evolve(life, **changes) if changes else life, send)


def overdue(
    life: Life, now: float, *, stall_timeout: float | None, boot_timeout: float = BOOT_TIMEOUT
) -> str | None:
    """Why a child must be killed now, or None. No stall_timeout: it does not beat."""
    if life.phase is Phase.STARTING and now - life.started > boot_timeout:
        return f"did not become ready in {boot_timeout:.0f}s"
    if (
        life.phase is Phase.READY
        and stall_timeout is not None
        and now - life.last_beat > stall_timeout
    ):
        return f"stalled (no heartbeat for {now - life.last_beat:.0f}s)"
    return None


def exit_outcome(life: Life, code: int, *, wanted: bool, worker: bool) -> Outcome:
    """What the master does about a child that exited with `code`.

    `life` is its life before the exit; `wanted`: its generation is current
    and the gateway is not stopping.
    """
    if not wanted or life.phase is Phase.RETIRING:
        return Outcome.GONE
    if worker and code == BOOT_ERROR and not life.served:
        return Outcome.BOOT_FAILED
    return Outcome.REPLACE


@frozen
class Backoff:
    """How long the replacement of one kind of child waits, and until when."""

    delay: float = 0.0
    until: float = 0.0

    def after_exit(self, life: Life, now: float) -> Backoff:
        """The back-off once a child with `life` exited at `now` (see the rules)."""
        if life.served and now - life.started >= YOUNG:
            return Backoff()
        delay = min(max(FIRST_BACKOFF, self.delay * 2), MAX_BACKOFF)
        return Backoff(delay, now + delay)

    def due(self, now: float) -> bool:
        return now >= self.until


def describe_exit(code: int) -> str:
    """An exit status in words: "exit code 1", "killed by SIGKILL"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
