from __future__ import annotations

from appgw.master.generations import WorkerState, generation_ready, plan


def w(pid, generation, ready=True, retiring=False, started=0.0):
    return WorkerState(pid, generation, ready, retiring, started)


def test_missing_workers_are_started():
    assert plan([w(1, 1)], 1, 3).start == 2
    assert plan([], 1, 2).start == 2


def test_old_generation_waits_until_the_new_one_is_ready():
    workers = [w(1, 1), w(2, 1), w(3, 2, ready=False), w(4, 2)]
    assert plan(workers, 2, 2).retire == ()
    workers[2] = w(3, 2, ready=True)
    assert sorted(plan(workers, 2, 2).retire) == [1, 2]
    assert generation_ready(workers, 2, 2)


def test_ttou_retires_the_newest_extra_worker_first_and_unready_before_ready():
    workers = [w(1, 1, started=1), w(2, 1, started=2), w(3, 1, started=3)]
    assert plan(workers, 1, 2).retire == (3,)
    workers = [w(1, 1, started=1), w(2, 1, ready=False, started=0.5)]
    assert plan(workers, 1, 1).retire == (2,)


def test_retiring_workers_are_not_counted():
    workers = [w(1, 1, retiring=True), w(2, 1)]
    result = plan(workers, 1, 2)
    assert result.start == 1 and result.retire == ()
