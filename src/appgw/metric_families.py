"""What the gateway counts: every metric family's name, kind, help and labels
(Prometheus' own vocabulary), and the buckets of its time histograms."""

from __future__ import annotations

import attrs

# Upper bounds (seconds) of the time histograms' buckets.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@attrs.frozen
class Family:
    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    help: str
    labels: tuple[str, ...] = ()


FAMILIES = (
    Family(
        "appgw_requests_total",
        "counter",
        "Requests answered, by listener, rule, backend pool and status class.",
        ("listener", "rule", "pool", "code_class"),
    ),
    Family(
        "appgw_failed_requests_total",
        "counter",
        "Requests answered with a 5xx status or broken off.",
        ("listener", "rule", "pool"),
    ),
    Family(
        "appgw_backend_responses_total",
        "counter",
        "Responses received from backend servers, by status class.",
        ("pool", "server", "code_class"),
    ),
    Family("appgw_connections_current", "gauge", "Client connections open now."),
    Family("appgw_connections_total", "counter", "Client connections accepted."),
    Family(
        "appgw_proxy_protocol_refused_total",
        "counter",
        "Connections refused on a PROXY protocol listener, by listening port and reason.",
        ("port", "reason"),
    ),
    Family(
        "appgw_accept_pauses_total",
        "counter",
        "Times a worker paused accepting on a listener: out of descriptors (or kernel memory).",
    ),
    Family(
        "appgw_accepts_deferred_total",
        "counter",
        "Accepts refused by a descriptor or memory limit and retried (every 0.1 s while paused).",
    ),
    Family(
        "appgw_client_protocol_connections_total",
        "counter",
        "Client connections, by the protocol they speak (http/1.1, h2).",
        ("protocol",),
    ),
    Family(
        "appgw_client_protocol_requests_total",
        "counter",
        "Client requests, by the protocol they came in (http/1.1, h2).",
        ("protocol",),
    ),
    Family("appgw_tunnels_current", "gauge", "WebSocket tunnels open now."),
    Family("appgw_tunnels_total", "counter", "WebSocket tunnels opened."),
    Family("appgw_received_bytes_total", "counter", "Bytes received from clients."),
    Family("appgw_sent_bytes_total", "counter", "Bytes sent to clients."),
    Family("appgw_healthy_hosts", "gauge", "Backend servers the probes find healthy.", ("pool",)),
    Family(
        "appgw_unhealthy_hosts", "gauge", "Backend servers the probes find unhealthy.", ("pool",)
    ),
    Family(
        "appgw_total_time_seconds",
        "histogram",
        "Time from the request's first byte to the response's last (tunnels excluded).",
        ("listener", "rule"),
    ),
    Family(
        "appgw_backend_connect_time_seconds",
        "histogram",
        "Time to open a new connection to a backend server (TLS included).",
        ("pool",),
    ),
    Family(
        "appgw_backend_first_byte_seconds",
        "histogram",
        "Time from the request sent to a backend to its response head.",
        ("pool",),
    ),
    # The WAF's, by Azure's metric names (AzwafTotalRequests, AzwafSecRule, AzwafCustomRule).
    Family(
        "appgw_AzwafTotalRequests",
        "counter",
        "Requests a WAF policy screened, by its action (Allow, Block, Log).",
        ("policy", "scope", "mode", "action"),
    ),
    Family(
        "appgw_AzwafSecRule",
        "counter",
        "Managed rule matches, by rule.",
        ("policy", "mode", "action", "rule_set", "rule_group", "rule_id"),
    ),
    Family(
        "appgw_AzwafCustomRule",
        "counter",
        "Custom rule matches, by rule.",
        ("policy", "mode", "action", "rule"),
    ),
    Family("appgw_workers", "gauge", "Worker processes serving the current configuration."),
    Family("appgw_generation", "gauge", "Configurations loaded since start (1 + reloads)."),
    Family(
        "appgw_config_reloads_total", "counter", "Configuration reloads, by result.", ("result",)
    ),
)
FAMILY = {family.name: family for family in FAMILIES}
