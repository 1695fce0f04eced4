"""`appgw metrics`: the gateway's counters in Prometheus' text format.

Reads what the master writes beside its pid file (the workers' counters,
summed) and the latest health snapshot. A node exporter's textfile
collector, or any scraper that runs a command, can take the output as it is.
"""

from __future__ import annotations

from typing import Any

_HELP = {
    "connections_total": ("counter", "Client connections accepted."),
    "requests_total": ("counter", "Requests answered (or aborted)."),
    "backend_errors_total": ("counter", "502 answers: no server reachable or an unusable answer."),
    "backend_timeouts_total": ("counter", "504 answers: a backend did not answer in time."),
    "tunnels_total": ("counter", "WebSocket tunnels opened."),
    "response_body_bytes_total": ("counter", "Response body bytes sent to clients."),
    "connections_active": ("gauge", "Client connections open now."),
    "tunnels_active": ("gauge", "WebSocket tunnels open now."),
}


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus(data: dict[str, Any], health: dict[str, Any] | None) -> str:
    metrics = data.get("metrics", {})
    lines = [
        "# HELP appgw_workers Worker processes serving the current configuration.",
        "# TYPE appgw_workers gauge",
        f"appgw_workers {int(data.get('workers', 0))}",
        "# HELP appgw_generation Configurations loaded since start (1 + reloads).",
        "# TYPE appgw_generation gauge",
        f"appgw_generation {int(data.get('generation', 0))}",
        "# HELP appgw_responses_total Responses by status class.",
        "# TYPE appgw_responses_total counter",
    ]
    for group in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        lines.append(
            f'appgw_responses_total{{code="{group}"}} {int(metrics.get(f"responses_{group}", 0))}'
        )
    for name, (kind, text) in _HELP.items():
        lines += [
            f"# HELP appgw_{name} {text}",
            f"# TYPE appgw_{name} {kind}",
            f"appgw_{name} {int(metrics.get(name, 0))}",
        ]
    servers = (health or {}).get("servers", [])
    if servers:
        lines += [
            "# HELP appgw_backend_up Whether a backend server gets traffic (1) or not (0).",
            "# TYPE appgw_backend_up gauge",
        ]
        for server in servers:
            labels = ",".join(
                f'{key}="{_label(value)}"'
                for key, value in (
                    ("pool", server.get("pool")),
                    ("setting", server.get("setting")),
                    ("server", f"{server.get('host')}:{server.get('port')}"),
                    ("state", server.get("state")),
                )
            )
            lines.append(f"appgw_backend_up{{{labels}}} {1 if server.get('routable') else 0}")
    return "\n".join(lines) + "\n"
