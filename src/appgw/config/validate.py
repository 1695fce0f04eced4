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
from collections.abc import Iterable
from typing import Any

import attrs

from appgw.config.admin import admin_problems
from appgw.config.certs import ca_problem, pair_problem
from appgw.config.model import Config, Limits, Listener
from appgw.config.naming import TOML_NAMING, Naming
from appgw.config.validate_routing import check_routing
from appgw.config.validate_tls import check_tls

LISTENER_PROTOCOLS = ("http", "https")
SETTING_PROTOCOLS = ("http", "https")
PROBE_PROTOCOLS = ("http", "https", "ws", "wss")

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
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
    checks = Checks(config, naming)
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


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Checks:
    """The error list of one validation and the helpers that fill it."""

    def __init__(self, config: Config, naming: Naming) -> None:
        self.config = config
        self.naming = naming
        self.errors: list[str] = []

    # -- helpers --------------------------------------------------------------

    def error(self, schema: str, names: Iterable[str], message: str) -> None:
        self.errors.append(f"{self.naming.path(schema, *names)}: {message}")

    def key(self, schema: str) -> str:
        """The last key of `schema` as the file spells it ("backendAddressPool")."""
        blanks = ["_"] * schema.count("*")
        return self.naming.path(schema, *blanks).rsplit(".", 1)[-1]

    def range(
        self, schema: str, names: Iterable[str], value: float | None, low: int, high: int
    ) -> None:
        if value is not None and not low <= value <= high:
            self.error(schema, names, f"must be {low}..{high}")

    def at_least(self, schema: str, names: Iterable[str], value: float, low: int) -> None:
        if value < low:
            self.error(schema, names, f"must be >= {low}")

    def choice(
        self, schema: str, names: Iterable[str], value: str, choices: tuple[str, ...]
    ) -> None:
        if value not in choices:
            shown = self.naming.show(schema, value)
            self.error(
                schema, names, f"must be {self.naming.choices(schema, choices)}, not {shown!r}"
            )

    def ref(self, schema: str, names: Iterable[str], value: str | None, collection: str) -> None:
        """A reference by name to a resource of `collection`; None is no reference."""
        if value is None:
            return
        if value == "":
            self.error(schema, names, "required")
        elif value not in getattr(self.config, collection):
            self.error(schema, names, f"no {self.naming.noun(collection)} named {value!r}")

    def target(
        self,
        base: str,
        names: tuple[str, ...],
        pool: str | None,
        setting: str | None,
        redirect: str | None,
        keys: tuple[str, str, str] = ("pool", "setting", "redirect"),
    ) -> None:
        """A pool and a setting, or a redirect, never both (rules, path maps)."""
        pool_key, setting_key, redirect_key = (f"{base}.{k}" for k in keys)
        words = [self.key(k) for k in (pool_key, setting_key, redirect_key)]
        if redirect is not None:
            if pool is not None or setting is not None:
                self.error(redirect_key, names, f"excludes {words[0]} and {words[1]}")
        elif pool is None and setting is None:
            self.error(base, names, f"needs {words[0]} and {words[1]}, or {words[2]}")
        elif pool is None:
            self.error(pool_key, names, f"required with {words[1]}")
        elif setting is None:
            self.error(setting_key, names, f"required with {words[0]}")
        self.ref(pool_key, names, pool, "pools")
        self.ref(setting_key, names, setting, "settings")
        self.ref(redirect_key, names, redirect, "redirects")

    def unique_names(self, schema: str, names: tuple[str, ...], items: Iterable[Any]) -> None:
        """Names of entries of a list (path rules, rewrite rules): valid and unique."""
        seen: set[str] = set()
        for item in items:
            if not item.name:
                continue  # reported by the loader
            if item.name in seen:
                self.error(f"{schema}.*", (*names, item.name), "duplicate name")
            elif not NAME.match(item.name):
                self.error(f"{schema}.*", (*names, item.name), _BAD_NAME)
            seen.add(item.name)

    # -- resources ------------------------------------------------------------

    def names(self) -> None:
        for collection in COLLECTIONS:
            for name in getattr(self.config, collection):
                if not NAME.match(name):
                    self.error(f"{collection}.*", (name,), _BAD_NAME)
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
            if field.name == "max_body_bytes":  # 0: no limit
                self.at_least(f"gateway.limits.{field.name}", (), value, 0)
            elif field.name == "backend_reuse_idle":  # 0: never; idle ones go at 60 s
                self.range(f"gateway.limits.{field.name}", (), value, 0, 60)
            elif value <= 0:
                self.error(f"gateway.limits.{field.name}", (), "must be > 0")

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


_BAD_NAME = "invalid name: up to 80 letters, digits, '_', '.' and '-'"
