"""Checks on a built configuration, shared by both loaders.

`validate(config, naming)` returns every problem, never only the first, each
as "key.path: message" in the vocabulary of the file the configuration came
from (naming.py): "settings.chat.request_timeout: must be 1..86400" for
appgw's TOML, "backendHttpSettingsCollection.chat.requestTimeout: ..." for
ARM. The checks are Application Gateway's: ranges, allowed values, references
that resolve, a target for every rule, listeners that do not fight over a
port, certificates whose key belongs to them. Routing checks (redirects,
rewrites, path maps, rules) are in validate_routing.py.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from appgw import nghttp2_library
from appgw.config.admin import admin_problems
from appgw.config.certs import ca_problem, pair_problem
from appgw.config.checks import BAD_NAME, NAME, Checks
from appgw.config.model import Config, Limits, Listener
from appgw.config.naming import TOML_NAMING, Naming
from appgw.config.validate_routing import check_routing
from appgw.config.validate_tls import check_tls

LISTENER_PROTOCOLS = ("http", "https")
SETTING_PROTOCOLS = ("http", "https")
PROBE_PROTOCOLS = ("http", "https", "ws", "wss")

HOST_NAME = re.compile(r"^[A-Za-z0-9_*?]([A-Za-z0-9_*?.-]{0,251}[A-Za-z0-9_*?.])?$")
SERVER_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$")
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header or cookie name
COLLECTIONS = (
    "certificates",
    "trusted_root_certificates",
    "listeners",
    "pools",
    "settings",
    "probes",
    "redirects",
    "rewrite_rule_sets",
    "path_maps",
    "rules",
    "ssl_profiles",
    "trusted_client_certificates",
)


def validate(config: Config, naming: Naming = TOML_NAMING) -> list[str]:
    """Every problem of `config`, each "key.path: message"; [] when it is usable."""
    checks = GatewayChecks(config, naming)
    checks.names()
    checks.gateway()
    checks.certificates()
    checks.listeners()
    checks.listener_conflicts()
    checks.pools()
    checks.settings()
    checks.probes()
    check_routing(checks)
    check_tls(checks)
    return checks.errors


# What [gateway.http2] accepts: (key, lowest, highest).
HTTP2_RANGES = (
    ("max_requests", 1, 1_000_000),
    ("idle_timeout", 1, 86400),
    ("max_concurrent_streams", 1, 256),
    ("max_header_field_bytes", 1024, 65536),
    ("max_header_list_bytes", 1024, 262144),
    ("initial_window_bytes", 65535, 2**31 - 1),
)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class GatewayChecks(Checks):
    """Application Gateway's checks of each kind of resource (routing and TLS
    are in validate_routing.py and validate_tls.py)."""

    # -- resources ------------------------------------------------------------

    def names(self) -> None:
        for collection in COLLECTIONS:
            for name in getattr(self.config, collection):
                if not NAME.match(name):
                    self.error(f"{collection}.*", (name,), BAD_NAME)
        if not self.config.listeners:
            self.error("listeners", (), "at least one listener is required")
        if not self.config.rules:
            self.error("rules", (), "at least one rule is required")

    def gateway(self) -> None:
        g = self.config.gateway
        self.range("gateway.workers", (), g.workers, 0, 1024)
        self.at_least("gateway.drain_grace", (), g.drain_grace, 0)
        self.range("gateway.stall_timeout", (), g.stall_timeout, 1, 3600)
        if g.admin is not None:
            for key, message in admin_problems(g.admin, self.config.listeners.values()):
                self.error(f"gateway.admin.{key}", (), message)
        for field in attrs.fields(Limits):
            value = getattr(g.limits, field.name)
            if isinstance(value, bool):
                continue
            if field.name == "max_body_bytes":  # 0: no limit
                self.at_least(f"gateway.limits.{field.name}", (), value, 0)
            elif field.name == "backend_reuse_idle":  # 0: never; idle ones go at 60 s
                self.range(f"gateway.limits.{field.name}", (), value, 0, 60)
            elif value <= 0:
                self.error(f"gateway.limits.{field.name}", (), "must be > 0")
        self.http2()
        for kind in ("request", "response"):
            one = getattr(g.limits, f"{kind}_buffer_bytes")
            if one > getattr(g.limits, f"worker_{kind}_buffer_bytes"):
                self.error(
                    f"gateway.limits.{kind}_buffer_bytes",
                    (),
                    f"must be at most worker_{kind}_buffer_bytes",
                )

    def http2(self) -> None:
        h2 = self.config.gateway.http2
        if h2.enabled:
            problem = nghttp2_library.problem()
            if problem:
                self.error("gateway.http2.enabled", (), problem)
        for key, low, high in HTTP2_RANGES:
            self.range(f"gateway.http2.{key}", (), getattr(h2, key), low, high)
        if h2.max_header_field_bytes > h2.max_header_list_bytes:
            self.error(
                "gateway.http2.max_header_field_bytes", (), "must be at most max_header_list_bytes"
            )

    def certificates(self) -> None:
        for name, cert in self.config.certificates.items():
            problem = pair_problem(cert.cert_pem, cert.key_pem)
            if problem is not None:
                self.error(f"certificates.*.{problem[0]}", (name,), problem[1])
        for name, pem in self.config.trusted_root_certificates.items():
            message = ca_problem(pem)
            if message is not None:
                self.error("trusted_root_certificates.*.cert", (name,), message)

    def listeners(self) -> None:
        for name, listener in self.config.listeners.items():
            names = (name,)
            self.choice("listeners.*.protocol", names, listener.protocol, LISTENER_PROTOCOLS)
            self.range("listeners.*.port", names, listener.port, 1, 65535)
            if not is_ip(listener.address):
                self.error(
                    "listeners.*.address", names, f"{listener.address!r} is not an IP address"
                )
            for host in listener.host_names:
                if not HOST_NAME.match(host):
                    self.error("listeners.*.host_names", names, f"{host!r} is not a host name")
            if listener.protocol == "https":
                if listener.certificate is None:
                    self.error("listeners.*.certificate", names, "required for an https listener")
                self.ref("listeners.*.certificate", names, listener.certificate, "certificates")
            elif listener.protocol == "http":
                if listener.certificate is not None:
                    self.error("listeners.*.certificate", names, "only for https listeners")
                if listener.require_sni:
                    self.error("listeners.*.require_sni", names, "only for https listeners")
            self._proxy_protocol(listener)

    def _proxy_protocol(self, listener: Listener) -> None:
        """A PROXY protocol listener names the sources it trusts, each one parsing."""
        names = (listener.name,)
        if not listener.proxy_protocol:
            if listener.proxy_protocol_trusted:
                self.error(
                    "listeners.*.proxy_protocol_trusted", names, "only with proxy_protocol = true"
                )
            return
        if not listener.proxy_protocol_trusted:
            self.error(
                "listeners.*.proxy_protocol_trusted",
                names,
                "required with proxy_protocol: the balancer's addresses or networks"
                ' (["10.0.0.0/8"], or ["0.0.0.0/0", "::/0"] for any source)',
            )
        for i, source in enumerate(listener.proxy_protocol_trusted):
            problem = network_problem(source)
            if problem is not None:
                self.error("listeners.*.proxy_protocol_trusted[*]", (*names, str(i)), problem)

    def listener_conflicts(self) -> None:
        """Listeners sharing a port: one protocol, and host names that tell them apart."""
        by_port: dict[int, list[Listener]] = {}
        for listener in self.config.listeners.values():
            by_port.setdefault(listener.port, []).append(listener)
        for port, listeners in by_port.items():
            for i, b in enumerate(listeners):
                for a in listeners[:i]:
                    self._conflict(a, b, port)

    def _conflict(self, a: Listener, b: Listener, port: int) -> None:
        wildcards = ("0.0.0.0", "::")
        if a.address != b.address and a.address not in wildcards and b.address not in wildcards:
            return
        where = f"{b.address}:{port}"
        if a.protocol != b.protocol:
            if {a.protocol, b.protocol} <= set(LISTENER_PROTOCOLS):
                message = f"{b.protocol} on {where} conflicts with {a.protocol} listener {a.name!r}"
                self.error("listeners.*.protocol", (b.name,), message)
            return
        if a.address != b.address:
            return
        if (a.proxy_protocol, a.proxy_protocol_trusted) != (
            b.proxy_protocol,
            b.proxy_protocol_trusted,
        ):
            message = f"differs from listener {a.name!r} on {where}, which shares its socket"
            self.error("listeners.*.proxy_protocol", (b.name,), message)
        if not a.host_names and not b.host_names:
            message = f"listener {a.name!r} already takes every host name on {where}"
            self.error("listeners.*.host_names", (b.name,), message)
            return
        shared = {h.lower() for h in a.host_names} & {h.lower() for h in b.host_names}
        for host in sorted(shared):
            message = f"{host!r} is already a host name of listener {a.name!r} on {where}"
            self.error("listeners.*.host_names", (b.name,), message)

    def pools(self) -> None:
        for name, pool in self.config.pools.items():
            for i, server in enumerate(pool.servers):
                names = (name, str(i))
                if not (is_ip(server.host) or SERVER_NAME.match(server.host)):
                    self.error(
                        "pools.*.servers[*]",
                        names,
                        f"{server.host!r} is not a host name or IP address",
                    )
                if server.port is not None and not 1 <= server.port <= 65535:
                    self.error("pools.*.servers[*]", names, "port must be 1..65535")

    def settings(self) -> None:
        for name, s in self.config.settings.items():
            names = (name,)
            self.choice("settings.*.protocol", names, s.protocol, SETTING_PROTOCOLS)
            self.range("settings.*.port", names, s.port, 1, 65535)
            self.range("settings.*.request_timeout", names, s.request_timeout, 1, 86400)
            self.range("settings.*.drain_timeout", names, s.drain_timeout, 1, 3600)
            self.ref("settings.*.probe", names, s.probe, "probes")
            for root in s.trusted_root_certificates:
                self.ref(
                    "settings.*.trusted_root_certificates", names, root, "trusted_root_certificates"
                )
            if s.path is not None and not s.path.startswith("/"):
                self.error("settings.*.path", names, "must start with '/'")
            if not TOKEN.match(s.affinity_cookie_name):
                self.error("settings.*.affinity_cookie_name", names, "must be a cookie name")
            if s.host_name is not None and s.pick_host_name_from_backend_address:
                other = self.key("settings.*.pick_host_name_from_backend_address")
                self.error("settings.*.host_name", names, f"cannot be set with {other}")

    def probes(self) -> None:
        for name, p in self.config.probes.items():
            names = (name,)
            self.choice("probes.*.protocol", names, p.protocol, PROBE_PROTOCOLS)
            self.range("probes.*.port", names, p.port, 1, 65535)
            self.range("probes.*.interval", names, p.interval, 1, 86400)
            self.range("probes.*.timeout", names, p.timeout, 1, 86400)
            self.range("probes.*.unhealthy_threshold", names, p.unhealthy_threshold, 1, 20)
            self.at_least("probes.*.min_servers", names, p.min_servers, 0)
            if not p.path.startswith("/"):
                self.error("probes.*.path", names, "must start with '/'")
            for low, high in p.match_status_codes:
                if not 100 <= low <= high <= 599:
                    shown = str(low) if low == high else f"{low}-{high}"
                    message = f"{shown!r} must be a status code or range within 100..599"
                    self.error("probes.*.match_status_codes", names, message)
            if p.host is not None and p.pick_host_name_from_settings:
                other = self.key("probes.*.pick_host_name_from_settings")
                self.error("probes.*.host", names, f"cannot be set with {other}")




def network_problem(text: str) -> str | None:
    """Why `text` is not an IP address or network ("10.0.0.0/8"), None if it is one."""
    try:
        ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            try:
                near = ipaddress.ip_network(text, strict=False)
            except ValueError:
                pass
            else:
                return f"{text!r} has host bits set (did you mean {str(near)!r}?)"
        return f"{text!r} is not an IP address or network"
    return None
