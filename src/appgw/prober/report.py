"""Backend health for people and scripts: what `appgw health` prints.

format_text() lists, per pool and setting, each server's state, since when,
and the reason. as_backend_health() gives the same data in the shape of
`az network application-gateway show-backend-health` output:

    {"backendAddressPools": [
      {"backendAddressPool": {"id": ".../backendAddressPools/web"},
       "backendHttpSettingsCollection": [
         {"backendHttpSettings": {"id": ".../backendHttpSettingsCollection/web"},
          "servers": [{"address": "10.0.0.4", "health": "Healthy",
                       "healthProbeLog": "Success. Received 200 status code",
                       "ipConfiguration": null,
                       "port": 8080, "since": "2024-05-01T12:00:00Z", "routable": true}]}]}]}

`port`, `since` and `routable` are appgw's additions (a pool may hold one
host on several ports; `routable` shows servers kept in rotation by
min_servers), and so is `passive`: when workers pass a server over after
failed connects (passive health, worker/policy/passive.py), its reason, the
failures counted and the end of the back-off; else null. Both functions
take a snapshot as the prober publishes it, and the workers' passive
entries as the master collects them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from appgw.config.model import Config, Probe
from appgw.prober.targets import Target, probe_targets

ARM_PREFIX = "/providers/Microsoft.Network/applicationGateways"


def format_text(
    snapshot: Mapping[str, Any],
    config: Config | None = None,
    passive: Iterable[Mapping[str, Any]] | None = None,
) -> str:
    """A readable report; with `config`, each group also names its probe."""
    now = float(snapshot.get("time") or time.time())
    backoff = passive_by_server(passive, time.time())
    groups = _groups(snapshot)
    lines = [f"Backend health at {_local(now)}"]
    if not groups:
        lines.append("No backend server is probed: no rule routes to a backend pool.")
        return "\n".join(lines) + "\n"
    probes: dict[tuple[str, str], Target] = {}
    if config is not None:
        for target in probe_targets(config):
            probes.setdefault((target.pool, target.setting), target)
    for (pool, setting), servers in groups.items():
        lines.append("")
        header = f"pool {pool}, setting {setting}"
        described = probes.get((pool, setting))
        if described is not None:
            header += f" ({describe_probe(described.probe, described.is_default_probe)})"
        lines.append(header)
        rows = [
            (
                _address(s),
                _state_text(s),
                f"since {_local(float(s['since']))} ({_age(now - float(s['since']))})",
                str(s.get("reason", "")) + _passive_text(backoff.get(_key(s))),
            )
            for s in servers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
            lines.append("  " + "  ".join([*cells, row[3]]).rstrip())
    return "\n".join(lines) + "\n"


def as_backend_health(
    snapshot: Mapping[str, Any],
    *,
    gateway_name: str = "appgw",
    passive: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The snapshot shaped like `az network application-gateway show-backend-health`."""
    base = f"{ARM_PREFIX}/{gateway_name}"
    backoff = passive_by_server(passive, time.time())
    pools: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (pool, setting), servers in _groups(snapshot).items():
        pools.setdefault(pool, {})[setting] = [
            {
                "address": s["host"],
                "health": s["state"],
                "healthProbeLog": s.get("reason", ""),
                "ipConfiguration": None,
                "port": s["port"],
                "since": _iso(float(s["since"])),
                "routable": bool(s.get("routable", s["state"] != "Unhealthy")),
                "passive": _passive_json(backoff.get(_key(s))),
            }
            for s in servers
        ]
    return {
        "backendAddressPools": [
            {
                "backendAddressPool": {"id": f"{base}/backendAddressPools/{pool}"},
                "backendHttpSettingsCollection": [
                    {
                        "backendHttpSettings": {
                            "id": f"{base}/backendHttpSettingsCollection/{setting}"
                        },
                        "servers": servers,
                    }
                    for setting, servers in settings.items()
                ],
            }
            for pool, settings in pools.items()
        ]
    }


def passive_by_server(
    entries: Iterable[Mapping[str, Any]] | None, now: float
) -> dict[tuple[str, int], dict[str, Any]]:
    """The workers' passive back-offs still running, one per server: the
    latest end, the failures of every worker added up, the latest reason."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in entries or ():
        try:
            key = (str(entry["host"]), int(entry["port"]))
            until, failures = float(entry["until"]), int(entry.get("failures", 1))
        except (KeyError, TypeError, ValueError):
            continue
        if until <= now:
            continue
        seen = merged.get(key)
        if seen is None:
            merged[key] = {
                "reason": str(entry.get("reason", "")),
                "until": until,
                "failures": failures,
            }
            continue
        seen["failures"] += failures
        if until > seen["until"]:
            seen["until"], seen["reason"] = until, str(entry.get("reason", ""))
    return merged


def _key(server: Mapping[str, Any]) -> tuple[str, int]:
    return (str(server["host"]), int(server["port"]))


def _passive_text(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return ""
    return (
        f"; passed over until {_local(entry['until'])} after {entry['failures']} failed "
        f"connect{'s' if entry['failures'] != 1 else ''}: {entry['reason']}"
    )


def _passive_json(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "reason": entry["reason"],
        "failures": entry["failures"],
        "until": _iso(entry["until"]),
    }


def describe_probe(probe: Probe, is_default: bool) -> str:
    """One line about a probe: "probe web: http GET /healthz every 5 s, ..."."""
    name = "default probe" if is_default else f"probe {probe.name}"
    text = f"{name}: {probe.protocol} GET {probe.path}"
    if probe.port is not None:
        text += f" on port {probe.port}"
    text += (
        f" every {probe.interval} s, timeout {probe.timeout} s,"
        f" unhealthy after {probe.unhealthy_threshold} failures"
    )
    if probe.min_servers:
        text += f", min_servers {probe.min_servers}"
    return text


def _groups(snapshot: Mapping[str, Any]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for server in snapshot.get("servers", ()):
        groups.setdefault((server["pool"], server["setting"]), []).append(server)
    return groups


def _address(server: Mapping[str, Any]) -> str:
    host = str(server["host"])
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{server['port']}"


def _state_text(server: Mapping[str, Any]) -> str:
    state = str(server["state"])
    if state == "Unhealthy" and server.get("routable"):
        return f"{state} (kept in rotation by min_servers)"
    return state


def _local(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(seconds: float) -> str:
    """A short duration: 42s, 3m 10s, 2h 5m, 3d 4h."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
