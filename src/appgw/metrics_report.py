"""The gateway's metrics in Prometheus' text format (version 0.0.4).

The input is what the master writes beside its pid file (metrics.py's
document: every worker's counts summed, plus the master's own) and the
latest health snapshot (healthy and unhealthy hosts per pool). `appgw
metrics` prints this text; the admin listener serves it at /metrics.

Written here rather than with prometheus-client: its multi-process mode
wants a directory of mmap files per process and cleanup of dead pids,
where appgw's master already sums the workers' heartbeats; and its counters
take a lock on every increment, which the request path must not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from appgw.metric_families import BUCKETS, FAMILIES, Family

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(family: Family, values: list[Any] | tuple[Any, ...], extra: str = "") -> str:
    parts = [f'{name}="{_escape(v)}"' for name, v in zip(family.labels, values, strict=False)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def host_counts(health: Mapping[str, Any] | None) -> dict[str, tuple[int, int]]:
    """Per pool: (healthy, unhealthy) servers.

    A server probed through several settings counts once: healthy when
    every probe of it finds it healthy.
    """
    servers: dict[str, dict[str, bool]] = {}
    for server in (health or {}).get("servers", ()):
        try:
            pool = str(server["pool"])
            address = f"{server['host']}:{server['port']}"
            healthy = server.get("state") == "Healthy"
        except (KeyError, TypeError):
            continue
        pool_servers = servers.setdefault(pool, {})
        pool_servers[address] = pool_servers.get(address, True) and healthy
    return {
        pool: (sum(found.values()), len(found) - sum(found.values()))
        for pool, found in servers.items()
    }


def prometheus(data: Mapping[str, Any], health: Mapping[str, Any] | None) -> str:
    """The whole exposition: every family of metric_families.FAMILIES, in order."""
    total = data.get("metrics") or {}
    hosts = host_counts(health)
    reloads = data.get("reloads") or {}
    samples: dict[str, list[tuple[list[Any], float]]] = {
        "appgw_workers": [([], int(data.get("workers", 0)))],
        "appgw_generation": [([], int(data.get("generation", 0)))],
        "appgw_config_reloads_total": [
            (["ok"], int(reloads.get("ok", 0))),
            (["failed"], int(reloads.get("failed", 0))),
        ],
        "appgw_healthy_hosts": [([pool], counts[0]) for pool, counts in sorted(hosts.items())],
        "appgw_unhealthy_hosts": [([pool], counts[1]) for pool, counts in sorted(hosts.items())],
    }
    for kind in ("counters", "gauges"):
        for name, items in (total.get(kind) or {}).items():
            samples.setdefault(name, [(list(labels), value) for labels, value in items])
    lines: list[str] = []
    for family in FAMILIES:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        if family.kind == "histogram":
            items = (total.get("histograms") or {}).get(family.name, [])
            for labels, counts, seconds in sorted(items, key=lambda item: item[0]):
                lines += _histogram(family, labels, counts, seconds)
            continue
        found = samples.get(family.name)
        if not found and not family.labels:
            found = [([], 0)]
        for labels, value in sorted(found or [], key=lambda item: item[0]):
            lines.append(f"{family.name}{_labels(family, labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _histogram(family: Family, labels: list[Any], counts: list[int], seconds: float) -> list[str]:
    lines = []
    running = 0
    for bound, count in zip((*BUCKETS, None), counts, strict=False):
        running += count
        le = "+Inf" if bound is None else repr(bound)
        extra = f'le="{le}"'
        lines.append(f"{family.name}_bucket{_labels(family, labels, extra)} {running}")
    lines.append(f"{family.name}_sum{_labels(family, labels)} {_number(seconds)}")
    lines.append(f"{family.name}_count{_labels(family, labels)} {running}")
    return lines
