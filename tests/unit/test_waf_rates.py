"""The WAF's shared rate-limit counters: the sliding window, and the table's slots."""

from __future__ import annotations

import os

from appgw.waf.rates import BUCKET, RateTable, Slot, admit, key_of


def _run(times: list[float], seconds: int = 60, threshold: int = 10) -> list[bool]:
    slot, over = Slot(), []
    for now in times:
        slot, o = admit(slot, 7, now, seconds, threshold)
        over.append(o)
    return over


def test_first_window_drops_what_passes_the_threshold() -> None:
    assert _run([1.0 + i / 10 for i in range(15)]) == [False] * 10 + [True] * 5


def test_requests_over_the_limit_are_not_counted() -> None:
    slot = Slot()
    for _ in range(12):
        slot, _over = admit(slot, 7, 5.0, 60, 10)
    assert slot == Slot(7, 0, 10, 0)


def test_next_window_throttles_by_the_share_of_the_previous_still_in_it() -> None:
    slot = Slot(7, 0, 10, 0)  # the first minute used its ten
    # 15 s into the next minute, 3/4 of the previous one still counts: 7.5.
    passed = 0
    for _ in range(5):
        slot, over = admit(slot, 7, 75.0, 60, 10)
        passed += not over
    assert passed == 2 and slot == Slot(7, 1, 2, 10)
    # At 45 s only a quarter counts: 2.5 + 2, room for 5 more.
    for _ in range(10):
        slot, over = admit(slot, 7, 105.0, 60, 10)
        passed += not over
    assert passed == 7


def test_a_window_skipped_forgets_and_another_key_takes_over() -> None:
    assert admit(Slot(7, 0, 10, 10), 7, 130.0, 60, 10) == (Slot(7, 2, 1, 0), False)
    assert admit(Slot(9, 2, 10, 10), 7, 130.0, 60, 10) == (Slot(7, 2, 1, 0), False)


def test_five_minute_windows() -> None:
    assert _run([float(i) for i in range(0, 300, 30)], seconds=300, threshold=5) == (
        [False] * 5 + [True] * 5
    )


def test_keys_differ_by_every_part() -> None:
    keys = {
        key_of("p", "r", "l", "clientaddr", "10.0.0.1"),
        key_of("p", "r", "l", "clientaddr", "10.0.0.2"),
        key_of("p", "r", "l2", "clientaddr", "10.0.0.1"),
        key_of("p", "r2", "l", "clientaddr", "10.0.0.1"),
        key_of("p2", "r", "l", "clientaddr", "10.0.0.1"),
    }
    assert len(keys) == 5 and 0 not in keys


def test_table_is_shared_with_a_forked_process() -> None:
    table = RateTable(slots=16)
    pid = os.fork()
    if pid == 0:  # the child counts three, then the parent sees them
        code = 0 if [table.over(5, 1.0, 60, 4) for _ in range(3)] == [False] * 3 else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [table.over(5, 2.0, 60, 4) for _ in range(2)] == [False, True]


def test_a_full_bucket_gives_up_its_oldest_slot() -> None:
    table = RateTable(slots=BUCKET)  # one bucket
    for key in range(1, BUCKET + 1):
        table.over(key, 60.0 + key, 60, 1)  # all in window 1
    assert table.over(1, 62.0, 60, 1)  # still held: over its limit of one
    assert not table.over(99, 200.0, 60, 1)  # window 3: every slot is stale
    assert not table.over(100, 200.0, 60, 1)
