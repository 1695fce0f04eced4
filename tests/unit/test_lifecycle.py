"""The master's child lifecycle table (appgw.master.lifecycle), tested directly."""

from __future__ import annotations

import signal

import pytest

from appgw.master.lifecycle import (
    _TRANSITIONS,
    BOOT_TIMEOUT,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    YOUNG,
    Backoff,
    Event,
    Life,
    Outcome,
    Phase,
    describe_exit,
    exit_outcome,
    overdue,
    step,
)
from appgw.process import BOOT_ERROR


def life_in(phase: Phase, started: float = 0.0) -> Life:
    """A life that reached `phase` the way a child does."""
    life = Life.begin(started)
    path = {
        Phase.STARTING: [],
        Phase.READY: [Event.READY],
        Phase.RETIRING: [Event.READY, Event.RETIRE],
        Phase.STALLED: [Event.READY, Event.OVERDUE],
        Phase.EXITED: [Event.EXIT],
    }[phase]
    for event in path:
        life = step(life, event, started).life
    assert life.phase is phase
    return life


def test_the_table_covers_every_phase_and_event():
    assert set(_TRANSITIONS) == set(Phase)
    for phase, row in _TRANSITIONS.items():
        assert set(row) == set(Event), phase


def test_every_child_ends_exited_and_stays_there():
    for phase in Phase:
        assert step(life_in(phase), Event.EXIT, 1.0).life.phase is Phase.EXITED
    exited = life_in(Phase.EXITED)
    for event in Event:
        assert step(exited, event, 2.0) == step(exited, event, 2.0)
        assert step(exited, event, 2.0).life.phase is Phase.EXITED
        assert step(exited, event, 2.0).send is None


def test_ready_makes_a_starting_child_ready_and_counts_as_a_beat():
    result = step(Life.begin(0.0), Event.READY, 2.0)
    assert result.life.phase is Phase.READY and result.send is None
    assert result.life.served and result.life.last_beat == 2.0
    beat = step(result.life, Event.BEAT, 3.0)
    assert beat.life.phase is Phase.READY and beat.life.last_beat == 3.0


def test_retire_drains_with_term_once():
    for phase in (Phase.STARTING, Phase.READY):
        first = step(life_in(phase), Event.RETIRE, 1.0)
        assert (first.life.phase, first.send) == (Phase.RETIRING, signal.SIGTERM)
        again = step(first.life, Event.RETIRE, 2.0)
        assert (again.life.phase, again.send) == (Phase.RETIRING, None)


def test_abandon_stops_now_even_a_draining_child():
    for phase in (Phase.STARTING, Phase.READY, Phase.RETIRING):
        result = step(life_in(phase), Event.ABANDON, 1.0)
        assert (result.life.phase, result.send) == (Phase.RETIRING, signal.SIGQUIT)


def test_an_overdue_child_is_killed_once():
    for phase in (Phase.STARTING, Phase.READY, Phase.RETIRING):
        result = step(life_in(phase), Event.OVERDUE, 1.0)
        assert (result.life.phase, result.send) == (Phase.STALLED, signal.SIGKILL)
        assert step(result.life, Event.OVERDUE, 2.0).send is None
    stalled = life_in(Phase.STALLED)
    for event in (Event.READY, Event.BEAT, Event.RETIRE, Event.ABANDON):
        assert step(stalled, event, 5.0).life.phase is Phase.STALLED


def test_overdue_reasons():
    starting = Life.begin(0.0)
    assert overdue(starting, BOOT_TIMEOUT - 1, stall_timeout=15) is None
    assert "ready" in (overdue(starting, BOOT_TIMEOUT + 1, stall_timeout=15) or "")
    ready = step(starting, Event.READY, 1.0).life
    assert overdue(ready, 15.5, stall_timeout=15) is None
    assert "stalled" in (overdue(ready, 16.5, stall_timeout=15) or "")
    # A child that does not beat (the prober) never stalls.
    assert overdue(ready, 1000.0, stall_timeout=None) is None
    # A draining child is not overdue; the stop deadline is the arbiter's.
    assert overdue(step(ready, Event.RETIRE, 2.0).life, 1000.0, stall_timeout=15) is None


@pytest.mark.parametrize(
    ("phase", "code", "wanted", "worker", "outcome"),
    [
        (Phase.READY, 1, True, True, Outcome.REPLACE),
        (Phase.READY, -9, True, False, Outcome.REPLACE),
        (Phase.STALLED, -9, True, True, Outcome.REPLACE),
        (Phase.RETIRING, 0, True, True, Outcome.GONE),
        (Phase.READY, 1, False, True, Outcome.GONE),  # old generation, or stopping
        (Phase.STARTING, BOOT_ERROR, True, True, Outcome.BOOT_FAILED),
        (Phase.STARTING, BOOT_ERROR, False, True, Outcome.GONE),
        (Phase.READY, BOOT_ERROR, True, True, Outcome.REPLACE),  # it had served
        (Phase.STARTING, BOOT_ERROR, True, False, Outcome.REPLACE),  # the prober backs off
        (Phase.STARTING, 1, True, True, Outcome.REPLACE),
    ],
)
def test_exit_outcomes(phase, code, wanted, worker, outcome):
    assert exit_outcome(life_in(phase), code, wanted=wanted, worker=worker) is outcome


def test_one_backoff_rule_doubles_for_young_or_never_ready_children():
    backoff = Backoff()
    young = life_in(Phase.READY, started=100.0)
    delays = []
    for _ in range(9):
        backoff = backoff.after_exit(young, 101.0)
        delays.append(backoff.delay)
    assert delays[:4] == [FIRST_BACKOFF, 2 * FIRST_BACKOFF, 4 * FIRST_BACKOFF, 8 * FIRST_BACKOFF]
    assert delays[-1] == MAX_BACKOFF
    assert backoff.until == 101.0 + MAX_BACKOFF
    assert not backoff.due(101.0 + MAX_BACKOFF - 0.1) and backoff.due(101.0 + MAX_BACKOFF)
    # Never ready, however old: still backs off.
    never_ready = Life.begin(0.0)
    assert Backoff().after_exit(never_ready, YOUNG * 10).delay == FIRST_BACKOFF
    # Ready and old enough: replaced at once, the delay cleared.
    served = life_in(Phase.READY, started=0.0)
    cleared = backoff.after_exit(served, YOUNG + 0.1)
    assert cleared == Backoff() and cleared.due(0.0)


def test_describe_exit():
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"
