"""What the admin listener answers, built from the master's run files.

Every answer comes from the files the master keeps beside its pid file
(state, health, metrics: runfiles.py) and from the answering worker's
configuration, never from the worker's own counters. So whichever worker
accepts an admin connection, the answer is the same: the whole gateway's.

- /metrics          Prometheus text (metrics_report.py)
- /healthz          200 while the gateway serves, 503 while it starts, drains or stops
- /backend-health   `appgw health --json`
- /status.json      what the status page shows
- /                 the status page (status.html, no external assets)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from appgw import runfiles
from appgw.config.model import Config
from appgw.metrics import value
from appgw.metrics_report import CONTENT_TYPE, prometheus
from appgw.prober.report import as_backend_health

STATUS_PAGE = Path(__file__).with_name("status.html")
JSON = "application/json"


@attrs.frozen
class Answer:
    status: int
    content_type: str
    body: bytes


def _read(path: str) -> Any:
    try:
        return runfiles.read_json(path)
    except (OSError, ValueError):
        return None


class Views:
    """The admin endpoints of one worker's configuration."""

    def __init__(self, config: Config, generation: int) -> None:
        self.config = config
        self.generation = generation
        self.pid_file = config.gateway.pid_file or runfiles.default_pid_file()
        self.page = STATUS_PAGE.read_bytes()

    def answer(self, method: str, target: str) -> Answer:
        path = target.partition("?")[0]
        if method not in ("GET", "HEAD"):
            return _text(405, "only GET and HEAD\n")
        if path == "/metrics":
            data = self._metrics() or {}
            return Answer(200, CONTENT_TYPE, prometheus(data, self._health()).encode())
        if path == "/healthz":
            serving, why = self.serving()
            return _text(200 if serving else 503, why + "\n")
        if path == "/backend-health":
            return _json(as_backend_health(self._health() or {}))
        if path == "/status.json":
            return _json(self.status())
        if path in ("/", "/index.html"):
            return Answer(200, "text/html; charset=utf-8", self.page)
        return _text(404, "not found: try /, /metrics, /healthz or /backend-health\n")

    def _state(self) -> Mapping[str, Any]:
        state = _read(runfiles.state_file(self.pid_file))
        return state if isinstance(state, Mapping) else {}

    def _health(self) -> Mapping[str, Any] | None:
        health = _read(runfiles.health_file(self.pid_file))
        return health if isinstance(health, Mapping) else None

    def _metrics(self) -> Mapping[str, Any] | None:
        data = _read(runfiles.metrics_file(self.pid_file))
        return data if isinstance(data, Mapping) else None

    def serving(self) -> tuple[bool, str]:
        state = self._state()
        if state.get("stopping"):
            return False, "stopping"
        if not state:
            return False, "no state file"
        if not state.get("ready"):
            return False, "starting"
        return True, "serving"

    def status(self) -> dict[str, Any]:
        """Everything the status page shows, in one JSON object."""
        state = self._state()
        data = self._metrics() or {}
        total = data.get("metrics") or {}
        serving, why = self.serving()
        return {
            "serving": serving,
            "condition": why,
            "generation": state.get("generation"),
            "workers": data.get("workers", state.get("workers")),
            "draining_workers": data.get("draining_workers", 0),
            "last_reload": state.get("last_reload") or None,
            "reloads": data.get("reloads", {}),
            "config": state.get("config"),
            "config_generation": self.generation,
            "traffic": {
                "connections": value(total, "appgw_connections_current") if total else 0,
                "tunnels": value(total, "appgw_tunnels_current") if total else 0,
                "connections_total": value(total, "appgw_connections_total") if total else 0,
                "tunnels_total": value(total, "appgw_tunnels_total") if total else 0,
                "last_minute": data.get("last_minute") or {},
            },
            # The last 15 minutes, one point per 10 s, kept by the master (trends.py).
            "trends": data.get("trends") or {},
            "listeners": self._listeners(),
            "pools": self._pools(self._health()),
            "firewall": _firewall(total),
            "time": data.get("time"),
        }

    def _listeners(self) -> list[dict[str, Any]]:
        config = self.config
        listeners = []
        for name, listener in config.listeners.items():
            rules = []
            for rule in config.rules.values():
                if rule.listener != name:
                    continue
                rules.append({"name": rule.name, "targets": _targets(config, rule)})
            listeners.append(
                {
                    "name": name,
                    "protocol": listener.protocol,
                    "address": listener.address,
                    "port": listener.port,
                    "host_names": list(listener.host_names),
                    "rules": rules,
                }
            )
        return listeners

    def _pools(self, health: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        probed: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for entry in (health or {}).get("servers", ()):
            if isinstance(entry, Mapping):
                probed.setdefault((str(entry.get("pool")), str(entry.get("host"))), []).append(
                    entry
                )
        pools = []
        for name, pool in self.config.pools.items():
            servers = []
            for server in pool.servers:
                checks = [
                    {
                        "setting": entry.get("setting"),
                        "port": entry.get("port"),
                        "state": entry.get("state"),
                        "routable": entry.get("routable"),
                        "reason": entry.get("reason", ""),
                        "since": entry.get("since"),
                    }
                    for entry in probed.get((name, server.host), ())
                    if server.port is None or entry.get("port") == server.port
                ]
                servers.append({"address": str(server), "checks": checks})
            pools.append({"name": name, "servers": servers})
        return pools


def _targets(config: Config, rule: Any) -> list[str]:
    """A rule's targets in words: "pool web via setting web", "redirect r", per path."""
    if rule.redirect:
        return [f"redirect {rule.redirect}"]
    if rule.path_map:
        path_map = config.path_maps.get(rule.path_map)
        if path_map is None:
            return [f"path map {rule.path_map}"]
        lines = [
            f"{', '.join(p.paths)} → "
            + (f"redirect {p.redirect}" if p.redirect else f"pool {p.pool} via {p.setting}")
            for p in path_map.rules
        ]
        default = (
            f"redirect {path_map.default_redirect}"
            if path_map.default_redirect
            else f"pool {path_map.default_pool} via {path_map.default_setting}"
        )
        return [*lines, f"anything else → {default}"]
    return [f"pool {rule.pool} via {rule.setting}"]


def _firewall(total: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Requests each WAF policy screened and blocked (AzwafTotalRequests)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    counters = (total.get("counters") or {}) if total else {}
    for labels, count in counters.get("appgw_AzwafTotalRequests", ()):
        policy, scope, mode, action = labels
        row = rows.setdefault(
            (policy, scope),
            {"policy": policy, "scope": scope, "mode": mode, "screened": 0, "blocked": 0},
        )
        row["screened"] += count
        if action == "Block":
            row["blocked"] += count
    return list(rows.values())


def _text(status: int, text: str) -> Answer:
    return Answer(status, "text/plain; charset=utf-8", text.encode())


def _json(data: Any) -> Answer:
    return Answer(200, JSON, json.dumps(data, indent=1, default=str).encode())
