"""drain_spread.py: when a drain ends each tunnel (pure, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appgw.worker.tunnel.drain_spread import (
    DRAIN_SETTLE,
    SPREAD_SHARE,
    DrainTurn,
    late_moment,
    spread,
)


def test_200_tunnels_over_a_10s_window_fill_every_second_alike() -> None:
    moments = spread([10.0] * 200, 100.0)
    assert moments == sorted(moments)
    assert 100.0 < moments[0] and moments[-1] < 100.0 + 10.0 * SPREAD_SHARE
    per_second = [0] * 10
    for moment in moments:
        per_second[int(moment - 100.0)] += 1
    assert max(per_second) <= 0.2 * 200, per_second
    assert per_second[-1] == 0  # the last tenth is left for frames and Close replies
    gaps = {round(b - a, 9) for a, b in zip(moments, moments[1:], strict=False)}
    assert gaps == {round(10.0 * SPREAD_SHARE / 201, 9)}  # evenly


def test_each_drain_window_is_spread_on_its_own() -> None:
    moments = spread([30.0, 2.0, 30.0, 2.0, 30.0], 0.0)
    assert moments[1::2] == pytest.approx([2 * 0.9 / 3, 2 * 2 * 0.9 / 3])
    assert moments[0::2] == pytest.approx([27 / 4, 2 * 27 / 4, 3 * 27 / 4])


def test_no_tunnels_no_moments() -> None:
    assert spread([], 5.0) == []


@given(
    st.lists(st.sampled_from([1.0, 2.0, 10.0, 30.0, 3600.0]), max_size=300),
    st.floats(0, 1e6),
)
def test_every_moment_is_inside_its_window(windows: list[float], start: float) -> None:
    for window, moment in zip(windows, spread(windows, start), strict=True):
        assert start < moment < start + window


def test_late_tunnels_spread_over_what_is_left() -> None:
    start, window, now = 0.0, 10.0, 3.0
    moments = [late_moment(start, window, now, k) for k in range(1, 51)]
    assert all(now <= m < start + window * SPREAD_SHARE for m in moments)
    per_second = [0] * 10
    for moment in moments:
        per_second[int(moment)] += 1
    assert max(per_second) <= 10, per_second  # 50 over 6 s: no second takes a crowd
    # Past the spread span a late tunnel goes at once (its window is nearly over).
    assert late_moment(start, window, 9.5, 3) == 9.5


TURN = DrainTurn(began=100.0, moment=104.0, deadline=110.0)


def test_a_silent_tunnel_waits_for_its_moment() -> None:
    # No byte since the drain began: it has not gone idle, it was idle.
    assert TURN.end(100.0, 90.0, at_rest=True) is None
    assert TURN.end(103.9, 90.0, at_rest=True) is None
    assert TURN.end(104.0, 90.0, at_rest=True) == "drained: its turn 4.0s into the drain"


def test_a_tunnel_that_goes_idle_at_a_boundary_is_closed_then() -> None:
    last = 101.0  # traffic during the drain
    assert TURN.end(last + DRAIN_SETTLE - 0.01, last, at_rest=True) is None
    reason = TURN.end(last + DRAIN_SETTLE, last, at_rest=True)
    assert reason == "drained: idle at a frame boundary 2.0s into the drain"


def test_mid_frame_or_bytes_in_flight_is_not_idle() -> None:
    assert TURN.end(103.0, 101.0, at_rest=False) is None
    # ... until its moment, when it is closed at the frame's end (relay.py).
    assert TURN.end(104.0, 101.0, at_rest=False) == "drained: its turn 4.0s into the drain"


def test_the_deadline_ends_everything() -> None:
    assert TURN.end(110.0, 109.9, at_rest=False) == "drain deadline"


def test_next_check() -> None:
    # Silent: looks every DRAIN_SETTLE for traffic, never past its moment.
    assert TURN.next_check(100.0, 90.0) == 100.0 + DRAIN_SETTLE
    assert TURN.next_check(103.5, 90.0) == 104.0
    # Traffic just now: looks when it would count as idle.
    assert TURN.next_check(101.2, 101.0) == 101.0 + DRAIN_SETTLE
    late = DrainTurn(began=0.0, moment=50.0, deadline=9.0)
    assert late.next_check(8.5, 0.0) == 9.0
