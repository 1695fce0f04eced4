"""The last 15 minutes of traffic, for the status page's charts (pure).

The master sums every worker's counters once a second (metrics.py's
MasterTotals); a Trends beside it keeps a bounded ring of what those totals
did: one point per STEP seconds for the last WINDOW seconds, each point the
rates over its step. So the history covers the whole gateway, survives
worker restarts and reloads (exited workers' counts stay in the totals),
and costs the workers nothing. It starts empty with the master.

The rules this module keeps:
- A point covers the interval since the previous point's end: requests and
  failed requests per second (in total and per backend pool), the 95th
  percentile of the requests' total time in that interval (None when no
  request finished in it), and the open tunnels at its end.
- A new point is kept once STEP seconds have passed since the last one; at
  most WINDOW / STEP points are kept, the oldest dropped first.
- The series also ends with a live point for the interval still under way
  (from the last kept point to now, once it is a second long), so a chart
  moves within a second or two of traffic arriving.
- A counter that went down (it cannot, short of a new master) counts as 0.

The series is column-wise, compact for the metrics file and the page:
{"step", "window", "time": [...], "requests_per_second": [...],
"failed_per_second": [...], "p95_seconds": [...], "tunnels": [...],
"pools": {pool: {"requests_per_second": [...], "failed_per_second": [...]}}}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import attrs

STEP = 10.0  # seconds a point covers
WINDOW = 900.0  # seconds of history: the last 15 minutes
LIVE_AFTER = 1.0  # the interval under way is shown once it is this long

# Labels of appgw_requests_total: listener, rule, pool, code_class; of the
# failed counter: listener, rule, pool.
_POOL = 2
_TUNNELS = "appgw_tunnels_current"


@attrs.frozen
class Sample:
    """Cumulative totals at one moment."""

    time: float
    requests: float
    failed: float
    buckets: tuple[int, ...]  # appgw_total_time_seconds, summed over its label sets
    tunnels: float
    pools: Mapping[str, tuple[float, float]]  # pool -> (requests, failed)


@attrs.frozen
class Point:
    time: float  # the end of the interval
    requests_per_second: float
    failed_per_second: float
    p95_seconds: float | None
    tunnels: float
    pools: Mapping[str, tuple[float, float]]  # pool -> (requests/s, failed/s)


def sample_of(total: Mapping[str, Any], now: float, size: int) -> Sample:
    """The totals that matter here, from metrics.merge()'s wire form (`size` buckets)."""
    counters = total.get("counters") or {}
    pools: dict[str, list[float]] = {}
    sums = [0.0, 0.0]  # requests, failed
    for index, name in enumerate(("appgw_requests_total", "appgw_failed_requests_total")):
        for labels, count in counters.get(name, ()):
            sums[index] += count
            pool = labels[_POOL] if len(labels) > _POOL else ""
            if pool:  # (a redirect has no pool)
                pools.setdefault(pool, [0.0, 0.0])[index] += count
    buckets = [0] * size
    for _labels, counts, _sum in (total.get("histograms") or {}).get(
        "appgw_total_time_seconds", ()
    ):
        if len(counts) == len(buckets):
            buckets = [a + b for a, b in zip(buckets, counts, strict=True)]
    return Sample(
        time=now,
        requests=sums[0],
        failed=sums[1],
        buckets=tuple(buckets),
        tunnels=float(sum(v for _l, v in (total.get("gauges") or {}).get(_TUNNELS, ()))),
        pools={pool: (pair[0], pair[1]) for pool, pair in pools.items()},
    )


def point_between(first: Sample, last: Sample, bounds: tuple[float, ...]) -> Point:
    """The rates from `first` to `last`; `bounds`: the histogram's bucket bounds."""
    span = max(last.time - first.time, 1e-9)

    def rate(before: float, after: float) -> float:
        return round(max(0.0, after - before) / span, 3)

    pools = {}
    for pool, (requests, failed) in last.pools.items():
        old_requests, old_failed = first.pools.get(pool, (0.0, 0.0))
        pools[pool] = (rate(old_requests, requests), rate(old_failed, failed))
    buckets = [max(0, b - a) for a, b in zip(first.buckets, last.buckets, strict=True)]
    return Point(
        time=round(last.time, 3),
        requests_per_second=rate(first.requests, last.requests),
        failed_per_second=rate(first.failed, last.failed),
        p95_seconds=bucket_quantile(buckets, bounds, 0.95),
        tunnels=last.tunnels,
        pools=pools,
    )


def bucket_quantile(counts: list[int], bounds: tuple[float, ...], q: float) -> float | None:
    """The bucket bound under which a fraction q of observations fall (None: no data).

    `counts` has one bucket per bound and one more past the last; past the
    last bound counts as that bound (JSON has no infinity).
    """
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for bound, count in zip((*bounds, bounds[-1]), counts, strict=False):
        seen += count
        if seen >= q * total:
            return bound
    return bounds[-1]


class Trends:
    """The ring of points; `add` takes the totals of now and gives the series."""

    def __init__(
        self, bounds: tuple[float, ...], step: float = STEP, window: float = WINDOW
    ) -> None:
        self.bounds = bounds  # the total-time histogram's bucket bounds
        self.step = step
        self.window = window
        self.points: deque[Point] = deque(maxlen=max(1, int(window // step)))
        self._mark: Sample | None = None  # the end of the last kept point

    def add(self, total: Mapping[str, Any], now: float) -> dict[str, Any]:
        current = sample_of(total, now, len(self.bounds) + 1)
        mark = self._mark
        if mark is None or now < mark.time:  # the first call, or the clock went back
            self._mark = mark = current
        elif now - mark.time >= self.step:
            self.points.append(point_between(mark, current, self.bounds))
            self._mark = mark = current
        while self.points and self.points[0].time <= now - self.window:
            self.points.popleft()
        points = list(self.points)
        if now - mark.time >= LIVE_AFTER:
            points.append(point_between(mark, current, self.bounds))
        return series(points, self.step, self.window)


def series(points: list[Point], step: float, window: float) -> dict[str, Any]:
    """The points column-wise; a pool absent from a point counts 0 there."""
    names = sorted({pool for point in points for pool in point.pools})
    return {
        "step": step,
        "window": window,
        "time": [p.time for p in points],
        "requests_per_second": [p.requests_per_second for p in points],
        "failed_per_second": [p.failed_per_second for p in points],
        "p95_seconds": [p.p95_seconds for p in points],
        "tunnels": [p.tunnels for p in points],
        "pools": {
            name: {
                "requests_per_second": [p.pools.get(name, (0.0, 0.0))[0] for p in points],
                "failed_per_second": [p.pools.get(name, (0.0, 0.0))[1] for p in points],
            }
            for name in names
        },
    }
