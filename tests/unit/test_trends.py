"""trends.py: the status page's 15 minutes of history, kept by the master."""

from __future__ import annotations

import json

from appgw.metrics import BUCKETS, MasterTotals, WorkerMetrics
from appgw.trends import STEP, WINDOW, Trends, bucket_quantile


class Traffic:
    """One worker's counters as the master receives them, grown step by step."""

    def __init__(self) -> None:
        self.metrics = WorkerMetrics()
        self.tunnels = 0

    def requests(
        self, count: int, pool: str = "web", status: int = 200, seconds: float = 0.02
    ) -> None:
        for _ in range(count):
            self.metrics.request("http", "site", pool, status, status >= 500, seconds)

    def wire(self) -> dict:
        return json.loads(json.dumps(self.metrics.snapshot(0, self.tunnels)))


def test_one_point_per_step_with_the_rates_of_its_interval() -> None:
    traffic, trends = Traffic(), Trends(BUCKETS)
    assert trends.add(traffic.wire(), 1000.0)["time"] == []  # the first look: nothing to compare
    traffic.requests(50)
    traffic.requests(10, status=502, seconds=0.3)
    traffic.tunnels = 3
    series = trends.add(traffic.wire(), 1010.0)
    assert series["time"] == [1010.0]
    assert series["requests_per_second"] == [6.0]
    assert series["failed_per_second"] == [1.0]
    assert series["p95_seconds"] == [0.5]  # 10 of 60 took 0.3 s: bucket <= 0.5
    assert series["tunnels"] == [3]
    assert series["pools"] == {"web": {"requests_per_second": [6.0], "failed_per_second": [1.0]}}
    assert (series["step"], series["window"]) == (STEP, WINDOW) == (10.0, 900.0)


def test_the_interval_under_way_shows_as_a_live_point() -> None:
    traffic, trends = Traffic(), Trends(BUCKETS)
    trends.add(traffic.wire(), 1000.0)
    traffic.requests(4)
    assert trends.add(traffic.wire(), 1000.5)["time"] == []  # under a second: not yet
    series = trends.add(traffic.wire(), 1002.0)
    assert series["time"] == [1002.0] and series["requests_per_second"] == [2.0]
    # Not kept: the next look measures from the same start.
    traffic.requests(4)
    series = trends.add(traffic.wire(), 1004.0)
    assert series["time"] == [1004.0] and series["requests_per_second"] == [2.0]
    # Ten seconds on, the point is kept and a new interval starts.
    series = trends.add(traffic.wire(), 1010.0)
    assert series["time"] == [1010.0] and series["requests_per_second"] == [0.8]
    series = trends.add(traffic.wire(), 1012.0)
    assert series["time"] == [1010.0, 1012.0]
    assert series["requests_per_second"] == [0.8, 0.0]
    assert series["p95_seconds"] == [0.025, None]  # nothing finished: no latency


def test_the_ring_keeps_the_last_fifteen_minutes_only() -> None:
    traffic, trends = Traffic(), Trends(BUCKETS)
    now = 0.0
    trends.add(traffic.wire(), now)
    for _ in range(200):  # 2000 s of steps
        now += STEP
        traffic.requests(1)
        series = trends.add(traffic.wire(), now)
    assert len(series["time"]) == int(WINDOW / STEP) == 90
    assert series["time"][0] == now - WINDOW + STEP and series["time"][-1] == now
    # A quiet spell longer than the window leaves one point for it, not stale ones.
    series = trends.add(traffic.wire(), now + 2000)
    assert series["time"] == [now + 2000] and series["requests_per_second"] == [0.0]


def test_pools_are_kept_apart_and_a_new_pool_counts_zero_before_it_appeared() -> None:
    traffic, trends = Traffic(), Trends(BUCKETS)
    trends.add(traffic.wire(), 0.0)
    traffic.requests(20, pool="web")
    trends.add(traffic.wire(), 10.0)
    traffic.requests(10, pool="api", status=503)
    traffic.requests(10, pool="")  # a redirect: no pool
    series = trends.add(traffic.wire(), 20.0)
    assert series["requests_per_second"] == [2.0, 2.0]
    assert series["pools"] == {
        "api": {"requests_per_second": [0.0, 1.0], "failed_per_second": [0.0, 1.0]},
        "web": {"requests_per_second": [2.0, 0.0], "failed_per_second": [0.0, 0.0]},
    }


def test_the_master_writes_trends_into_the_metrics_document_across_worker_exits() -> None:
    totals = MasterTotals()
    first = Traffic()
    totals.document([first.wire()], generation=1, workers=1, draining=0, now=100.0)
    first.requests(30)
    totals.worker_exited(first.wire())  # its counts stay in the totals
    second = Traffic()
    second.requests(10)
    document = totals.document([second.wire()], generation=2, workers=1, draining=0, now=110.0)
    assert document["trends"]["requests_per_second"] == [4.0]
    json.dumps(document)  # goes into the metrics file as JSON


def test_a_clock_that_goes_back_starts_over_instead_of_negative_rates() -> None:
    traffic, trends = Traffic(), Trends(BUCKETS)
    trends.add(traffic.wire(), 100.0)
    traffic.requests(5)
    series = trends.add(traffic.wire(), 50.0)
    assert series["time"] == []


def test_bucket_quantile() -> None:
    bounds = (0.1, 1.0)
    assert bucket_quantile([0, 0, 0], bounds, 0.95) is None
    assert bucket_quantile([95, 5, 0], bounds, 0.95) == 0.1
    assert bucket_quantile([90, 10, 0], bounds, 0.95) == 1.0
    assert bucket_quantile([0, 0, 7], bounds, 0.95) == 1.0  # past the last bound
