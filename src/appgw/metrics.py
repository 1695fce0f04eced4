"""The gateway's metrics: what is counted, by whom, and how it adds up.

A worker counts into plain dicts keyed by label tuples (WorkerMetrics):
no lock, no allocation beyond a new label set, one bisect per histogram
observation. Once a second, with its heartbeat, it sends a snapshot of
everything it counted since it started (the wire form below). The master
keeps the last snapshot of each worker and, when a worker exits, folds its
counts into a running total of exited workers (MasterTotals), so the sums
survive a worker restart and a reload. Gauges (open connections, tunnels)
are summed over live workers only.

Wire form, JSON-friendly: {"counters": {family: [[labels, value], ...]},
"gauges": {...}, "histograms": {family: [[labels, bucket counts, sum],
...]}}, where bucket counts are per bucket (not cumulative), one more than
BUCKETS for +Inf.

metric_families.py fixes names, kinds and labels; metrics_report.py turns a total into
Prometheus' text format.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from appgw.metric_families import BUCKETS, FAMILY
from appgw.trends import Trends, bucket_quantile

RECENT_WINDOW = 60.0  # seconds of history kept for the status page



Labels = tuple[str, ...]


_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


def code_class(status: int) -> str:
    """ "2xx" for 200; "0xx" for an exchange that ended without an answer."""
    return _CLASSES[status // 100] if 100 <= status < 600 else "0xx"


class Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value


class WorkerMetrics:
    """One worker's counts since it started. Only the worker's loop touches it."""

    def __init__(self) -> None:
        self.requests: dict[Labels, int] = {}
        self.failed: dict[Labels, int] = {}
        self.backend_responses: dict[Labels, int] = {}
        self.total_time: dict[Labels, Histogram] = {}
        self.connect_time: dict[Labels, Histogram] = {}
        self.first_byte: dict[Labels, Histogram] = {}
        self.connections_total = 0
        self.proxy_refused: dict[Labels, int] = {}  # (port, reason)
        self.accept_pauses = 0
        self.accepts_deferred = 0
        self.tunnels_total = 0
        self.protocol_connections: dict[Labels, int] = {}  # (protocol,)
        self.protocol_requests: dict[Labels, int] = {}  # (protocol,)
        self.received_bytes = 0
        self.sent_bytes = 0
        self.waf_requests: dict[Labels, int] = {}
        self.waf_sec_rules: dict[Labels, int] = {}
        self.waf_custom_rules: dict[Labels, int] = {}

    def firewall(
        self, requests: Labels, sec_rules: Iterable[Labels], custom: Iterable[Labels]
    ) -> None:
        """One request a WAF policy screened, and the rules that matched it."""
        self.waf_requests[requests] = self.waf_requests.get(requests, 0) + 1
        for key in sec_rules:
            self.waf_sec_rules[key] = self.waf_sec_rules.get(key, 0) + 1
        for key in custom:
            self.waf_custom_rules[key] = self.waf_custom_rules.get(key, 0) + 1

    def request(
        self, listener: str, rule: str, pool: str, status: int, failed: bool, seconds: float | None
    ) -> None:
        """One answered (or broken-off) request; `seconds` None keeps it out of the timings."""
        key = (listener, rule, pool, code_class(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        if failed:
            short = (listener, rule, pool)
            self.failed[short] = self.failed.get(short, 0) + 1
        if seconds is not None:
            _observe(self.total_time, (listener, rule), seconds)

    def backend(
        self, pool: str, server: str, status: int, connect: float | None, first_byte: float | None
    ) -> None:
        """What one backend server did for a request."""
        if status:
            key = (pool, server, code_class(status))
            self.backend_responses[key] = self.backend_responses.get(key, 0) + 1
        if connect is not None:
            _observe(self.connect_time, (pool,), connect)
        if first_byte is not None:
            _observe(self.first_byte, (pool,), first_byte)

    def protocol_connection(self, protocol: str) -> None:
        key = (protocol,)
        self.protocol_connections[key] = self.protocol_connections.get(key, 0) + 1

    def protocol_request(self, protocol: str) -> None:
        key = (protocol,)
        self.protocol_requests[key] = self.protocol_requests.get(key, 0) + 1

    def proxy_refused_one(self, port: int, reason: str) -> None:
        key = (str(port), reason)
        self.proxy_refused[key] = self.proxy_refused.get(key, 0) + 1
    def accept_refused(self, *, paused: bool) -> None:
        """An accept refused by a limit; `paused` when that began a pause."""
        self.accepts_deferred += 1
        self.accept_pauses += paused

    def snapshot(self, connections: int, tunnels: int) -> dict[str, Any]:
        """Everything counted so far, in the wire form."""
        return {
            "counters": {
                "appgw_requests_total": _pairs(self.requests),
                "appgw_failed_requests_total": _pairs(self.failed),
                "appgw_backend_responses_total": _pairs(self.backend_responses),
                "appgw_connections_total": [[[], self.connections_total]],
                "appgw_proxy_protocol_refused_total": _pairs(self.proxy_refused),
                "appgw_accept_pauses_total": [[[], self.accept_pauses]],
                "appgw_accepts_deferred_total": [[[], self.accepts_deferred]],
                "appgw_tunnels_total": [[[], self.tunnels_total]],
                "appgw_client_protocol_connections_total": _pairs(self.protocol_connections),
                "appgw_client_protocol_requests_total": _pairs(self.protocol_requests),
                "appgw_received_bytes_total": [[[], self.received_bytes]],
                "appgw_sent_bytes_total": [[[], self.sent_bytes]],
                "appgw_AzwafTotalRequests": _pairs(self.waf_requests),
                "appgw_AzwafSecRule": _pairs(self.waf_sec_rules),
                "appgw_AzwafCustomRule": _pairs(self.waf_custom_rules),
            },
            "gauges": {
                "appgw_connections_current": [[[], connections]],
                "appgw_tunnels_current": [[[], tunnels]],
            },
            "histograms": {
                "appgw_total_time_seconds": _histograms(self.total_time),
                "appgw_backend_connect_time_seconds": _histograms(self.connect_time),
                "appgw_backend_first_byte_seconds": _histograms(self.first_byte),
            },
        }


def _observe(table: dict[Labels, Histogram], key: Labels, value: float) -> None:
    histogram = table.get(key)
    if histogram is None:
        histogram = table[key] = Histogram()
    histogram.observe(value)


def _pairs(table: Mapping[Labels, int]) -> list[list[Any]]:
    return [[list(key), value] for key, value in table.items()]


def _histograms(table: Mapping[Labels, Histogram]) -> list[list[Any]]:
    return [[list(key), list(h.counts), h.sum] for key, h in table.items()]


# -- adding up (the master) ----------------------------------------------------


def merge(snapshots: Iterable[Mapping[str, Any]], *, gauges: bool = True) -> dict[str, Any]:
    """The sum of several snapshots in the wire form; malformed parts are skipped."""
    counters: dict[str, dict[Labels, float]] = {}
    gauge_sums: dict[str, dict[Labels, float]] = {}
    histograms: dict[str, dict[Labels, tuple[list[int], float]]] = {}
    for snapshot in snapshots:
        if not isinstance(snapshot, Mapping):
            continue
        _add_values(counters, snapshot.get("counters"))
        if gauges:
            _add_values(gauge_sums, snapshot.get("gauges"))
        for name, items in _families(snapshot.get("histograms")):
            table = histograms.setdefault(name, {})
            for item in items:
                try:
                    labels, counts, total = item
                    key = tuple(str(label) for label in labels)
                    counts = [int(c) for c in counts]
                    total = float(total)
                except (TypeError, ValueError):
                    continue
                if len(counts) != len(BUCKETS) + 1:
                    continue
                old = table.get(key)
                if old is not None:
                    counts = [a + b for a, b in zip(old[0], counts, strict=True)]
                    total += old[1]
                table[key] = (counts, total)
    return {
        "counters": {name: _pairs(table) for name, table in counters.items()},  # type: ignore[arg-type]
        "gauges": {name: _pairs(table) for name, table in gauge_sums.items()},  # type: ignore[arg-type]
        "histograms": {
            name: [[list(key), counts, total] for key, (counts, total) in table.items()]
            for name, table in histograms.items()
        },
    }


def _families(part: Any) -> Iterable[tuple[str, list[Any]]]:
    if not isinstance(part, Mapping):
        return ()
    return [
        (name, items) for name, items in part.items() if name in FAMILY and isinstance(items, list)
    ]


def _add_values(into: dict[str, dict[Labels, float]], part: Any) -> None:
    for name, items in _families(part):
        table = into.setdefault(name, {})
        for item in items:
            try:
                labels, value = item
                key = tuple(str(label) for label in labels)
                number = float(value)
            except (TypeError, ValueError):
                continue
            table[key] = table.get(key, 0) + (int(number) if number.is_integer() else number)


def value(total: Mapping[str, Any], name: str, labels: Labels = ()) -> float:
    """One counter's or gauge's value in a total (0 if absent)."""
    kind = "gauges" if FAMILY[name].kind == "gauge" else "counters"
    for item_labels, item_value in total.get(kind, {}).get(name, ()):
        if tuple(item_labels) == labels:
            return float(item_value)
    return 0.0


def family_sum(total: Mapping[str, Any], name: str) -> float:
    """A counter family summed over all its label sets."""
    return float(sum(item[1] for item in total.get("counters", {}).get(name, ())))


class MasterTotals:
    """What the master adds up: exited workers' counts, reloads, the last minute,
    and the last 15 minutes for the status page's charts (trends.py)."""

    def __init__(self) -> None:
        self.exited: dict[str, Any] = merge([])
        self.reloads = {"ok": 0, "failed": 0}
        self.recent: deque[list[Any]] = deque()
        self.trends = Trends(BUCKETS)

    def worker_exited(self, snapshot: Mapping[str, Any]) -> None:
        """Keep what a worker counted; its gauges go with it."""
        if snapshot:
            self.exited = merge([self.exited, snapshot], gauges=False)

    def reload(self, ok: bool) -> None:
        self.reloads["ok" if ok else "failed"] += 1

    def document(
        self,
        live: Iterable[Mapping[str, Any]],
        *,
        generation: int,
        workers: int,
        draining: int,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The metrics file's content: totals over every worker, plus the master's own."""
        now = time.time() if now is None else now
        total = merge([self.exited, *live])
        self._remember(total, now)
        return {
            "time": now,
            "generation": generation,
            "workers": workers,
            "draining_workers": draining,
            "reloads": dict(self.reloads),
            "metrics": total,
            "last_minute": last_minute(list(self.recent)),
            "trends": self.trends.add(total, now),
        }

    def _remember(self, total: Mapping[str, Any], now: float) -> None:
        counts = [0] * (len(BUCKETS) + 1)
        time_sum = 0.0
        for _labels, bucket_counts, bucket_sum in total["histograms"].get(
            "appgw_total_time_seconds", ()
        ):
            counts = [a + b for a, b in zip(counts, bucket_counts, strict=True)]
            time_sum += bucket_sum
        requests = family_sum(total, "appgw_requests_total")
        failed = family_sum(total, "appgw_failed_requests_total")
        self.recent.append([now, requests, failed, counts, time_sum])
        while len(self.recent) > 2 and now - self.recent[1][0] >= RECENT_WINDOW:
            self.recent.popleft()


def last_minute(samples: list[list[Any]]) -> dict[str, Any]:
    """Rates and latency between the oldest and newest sample (about a minute)."""
    if len(samples) < 2:
        return {
            "seconds": 0.0,
            "requests_per_second": 0.0,
            "failed_per_second": 0.0,
            "mean_seconds": None,
            "p95_seconds": None,
        }
    first, last = samples[0], samples[-1]
    span = max(last[0] - first[0], 1e-9)
    buckets = [max(0, b - a) for a, b in zip(first[3], last[3], strict=True)]
    timed = sum(buckets)
    return {
        "seconds": round(span, 1),
        "requests_per_second": max(0.0, last[1] - first[1]) / span,
        "failed_per_second": max(0.0, last[2] - first[2]) / span,
        "mean_seconds": (last[4] - first[4]) / timed if timed else None,
        "p95_seconds": quantile(buckets, 0.95),
    }


def quantile(buckets: list[int], q: float) -> float | None:
    """The bucket bound under which a fraction q of observations fall (None: no data)."""
    return bucket_quantile(buckets, BUCKETS, q)
