"""metrics.py and metrics_report.py: counting, adding up, the exposition format."""

from __future__ import annotations

import json

from appgw.metric_families import BUCKETS
from appgw.metrics import MasterTotals, WorkerMetrics, code_class, merge, quantile
from appgw.metrics_report import host_counts, prometheus
from tests.support.admin import parse_prometheus, sample


def worker(requests: int, status: int = 200, seconds: float = 0.02) -> WorkerMetrics:
    metrics = WorkerMetrics()
    for _ in range(requests):
        metrics.request("http", "site", "web", status, status >= 500, seconds)
        metrics.backend("web", "10.0.0.4:80", status, None, seconds / 2)
    metrics.connections_total += 1
    return metrics


def wire(metrics: WorkerMetrics, connections: int = 0) -> dict:
    """Through JSON, as a heartbeat travels."""
    return json.loads(json.dumps(metrics.snapshot(connections, 0)))


def test_code_classes() -> None:
    assert [code_class(s) for s in (101, 200, 302, 404, 504, 0)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "0xx",
    ]


def test_merge_sums_counters_histograms_and_gauges() -> None:
    total = merge([wire(worker(3), connections=2), wire(worker(2, status=502), connections=1)])
    text = prometheus({"metrics": total, "workers": 2, "generation": 1}, None)
    samples = parse_prometheus(text)
    labels = {"listener": "http", "rule": "site", "pool": "web"}
    assert sample(samples, "appgw_requests_total", **labels, code_class="2xx") == 3
    assert sample(samples, "appgw_requests_total", **labels, code_class="5xx") == 2
    assert sample(samples, "appgw_failed_requests_total", **labels) == 2
    assert sample(samples, "appgw_connections_total") == 2
    assert sample(samples, "appgw_connections_current") == 3
    assert sample(samples, "appgw_total_time_seconds_count", listener="http", rule="site") == 5
    assert (
        sample(samples, "appgw_total_time_seconds_bucket", listener="http", rule="site", le="0.01")
        == 0
    )
    assert (
        sample(samples, "appgw_total_time_seconds_bucket", listener="http", rule="site", le="0.025")
        == 5
    )
    assert sample(samples, "appgw_backend_first_byte_seconds_count", pool="web") == 5
    assert sample(samples, "appgw_workers") == 2


def test_exited_workers_keep_their_counts_but_not_their_gauges() -> None:
    totals = MasterTotals()
    totals.worker_exited(wire(worker(4), connections=5))
    document = totals.document(
        [wire(worker(1), connections=1)], generation=2, workers=1, draining=0, now=100.0
    )
    samples = parse_prometheus(prometheus(document, None))
    assert (
        sample(
            samples,
            "appgw_requests_total",
            listener="http",
            rule="site",
            pool="web",
            code_class="2xx",
        )
        == 5
    )
    assert sample(samples, "appgw_connections_current") == 1


def test_reloads_by_result() -> None:
    totals = MasterTotals()
    totals.reload(True)
    totals.reload(False)
    totals.reload(True)
    document = totals.document([], generation=3, workers=1, draining=0)
    samples = parse_prometheus(prometheus(document, None))
    assert sample(samples, "appgw_config_reloads_total", result="ok") == 2
    assert sample(samples, "appgw_config_reloads_total", result="failed") == 1
    assert sample(samples, "appgw_generation") == 3


def test_last_minute_rates_and_latency() -> None:
    totals = MasterTotals()
    metrics = WorkerMetrics()
    totals.document([wire(metrics)], generation=1, workers=1, draining=0, now=1000.0)
    for _ in range(60):
        metrics.request("http", "site", "web", 200, False, 0.04)
    document = totals.document([wire(metrics)], generation=1, workers=1, draining=0, now=1030.0)
    minute = document["last_minute"]
    assert minute["requests_per_second"] == 2.0
    assert minute["failed_per_second"] == 0.0
    assert abs(minute["mean_seconds"] - 0.04) < 1e-9
    assert minute["p95_seconds"] == 0.05
    # Samples older than a minute are dropped.
    later = totals.document([wire(metrics)], generation=1, workers=1, draining=0, now=1100.0)
    assert later["last_minute"]["requests_per_second"] == 0.0


def test_quantile_past_the_last_bucket_is_that_bound() -> None:
    buckets = [0] * (len(BUCKETS) + 1)
    assert quantile(buckets, 0.95) is None
    buckets[-1] = 3
    assert quantile(buckets, 0.95) == BUCKETS[-1]


def test_malformed_snapshots_are_skipped() -> None:
    good = wire(worker(1))
    total = merge(
        [
            good,
            {"counters": {"appgw_requests_total": [["x"], [[], "y", 3]]}},
            {"histograms": {"appgw_total_time_seconds": [[["a"], [1], 0.1]]}},
            "junk",
        ]
    )
    samples = parse_prometheus(prometheus({"metrics": total}, None))
    assert (
        sample(
            samples,
            "appgw_requests_total",
            listener="http",
            rule="site",
            pool="web",
            code_class="2xx",
        )
        == 1
    )


def test_label_values_are_escaped() -> None:
    metrics = WorkerMetrics()
    metrics.request('we"ird\\', "r", "p", 200, False, 0.1)
    text = prometheus({"metrics": merge([wire(metrics)])}, None)
    assert 'listener="we\\"ird\\\\"' in text


def test_host_counts_per_pool() -> None:
    health = {
        "servers": [
            {"pool": "web", "setting": "a", "host": "10.0.0.4", "port": 80, "state": "Healthy"},
            {"pool": "web", "setting": "b", "host": "10.0.0.4", "port": 80, "state": "Unhealthy"},
            {"pool": "web", "setting": "a", "host": "10.0.0.5", "port": 80, "state": "Healthy"},
            {"pool": "api", "setting": "a", "host": "10.0.0.6", "port": 80, "state": "Unknown"},
        ]
    }
    assert host_counts(health) == {"web": (1, 1), "api": (0, 1)}
    samples = parse_prometheus(prometheus({}, health))
    assert sample(samples, "appgw_healthy_hosts", pool="web") == 1
    assert sample(samples, "appgw_unhealthy_hosts", pool="web") == 1


def test_every_family_has_help_and_type() -> None:
    text = prometheus({}, None)
    for name in (
        "appgw_requests_total",
        "appgw_tunnels_current",
        "appgw_total_time_seconds",
        "appgw_backend_connect_time_seconds",
        "appgw_healthy_hosts",
    ):
        assert f"# HELP {name} " in text
        assert f"# TYPE {name} " in text
    assert "appgw_connections_total 0" in text
