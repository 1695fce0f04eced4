"""What to probe: one target per (pool, setting, server) that a rule uses.

Application Gateway probes every server of a backend pool once for each
backend setting a rule pairs with that pool (basic rules, and the rules and
defaults of URL path maps; a rule that only redirects probes nothing). A
setting without a custom probe gets the default probe: GET / with the
setting's protocol and port, every 30 s, 30 s timeout, 3 failures, 200-399.

Which port:
- traffic goes to the server's own port if the pool gives one, else to the
  setting's port (`traffic_port`); that port is part of the server's health
  key, the one the worker looks up: (pool, setting, host, traffic port);
- the probe connects to the probe's port if it has one, else to the traffic
  port.

Which Host header (`Target.host_name`, sent with ":port" when the port is not
the protocol's default):
- custom probe with `host`: that host;
- custom probe with `pick_host_name_from_settings`, and the default probe:
  the setting's `host_name`, or the server's address when the setting has
  `pick_host_name_from_backend_address`;
- otherwise 127.0.0.1, as Application Gateway's default probe does.

TLS (https, wss) verifies the backend certificate against the name above,
except that when it fell back to 127.0.0.1 the server's own address is used,
so a backend whose certificate names its address verifies without a host
name in the configuration. The setting's backend TLS options apply as to
requests: `sni_name` replaces that name, `validate_sni` off skips the name
check, `validate_cert_chain_and_expiry` off skips the certificate checks.
"""

from __future__ import annotations

from attrs import frozen

from appgw.config.connect_to import dial
from appgw.config.model import Config, Probe, Server, Setting

# (pool name, setting name, server host, traffic port): how health is keyed.
TargetKey = tuple[str, str, str, int]
# (trusted root PEMs, validate the chain, validate the name, pinned): one SSL context each.
TlsKey = tuple[tuple[bytes, ...], bool, bool, bool]

DEFAULT_PROBE_HOST = "127.0.0.1"
DEFAULT_PROBE_NAME = "(default)"
TLS_PROTOCOLS = frozenset({"https", "wss"})
WEBSOCKET_PROTOCOLS = frozenset({"ws", "wss"})
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def default_probe(setting: Setting) -> Probe:
    """Application Gateway's default probe for a setting without one."""
    return Probe(name=DEFAULT_PROBE_NAME, protocol=setting.protocol)


def traffic_port(setting: Setting, server: Server) -> int:
    """The port requests to `server` go to under `setting`."""
    return setting.port if server.port is None else server.port


def target_key(pool: str, setting: Setting, server: Server) -> TargetKey:
    """The health key of `server` of `pool` under `setting`."""
    return (pool, setting.name, server.host, traffic_port(setting, server))


@frozen
class Target:
    """One server of one pool, probed as one backend setting says."""

    pool: str
    setting: str
    server: Server
    probe: Probe  # the setting's probe, or default_probe(setting)
    is_default_probe: bool
    port: int  # where the probe connects
    traffic_port: int  # where requests go; part of the key
    host_name: str  # Host header, without a port
    tls_server_name: str | None  # https/wss: the name the certificate must carry
    trusted_root_certificates: tuple[bytes, ...] = ()  # PEM; empty: the system store
    validate_chain: bool = True  # the setting's validate_cert_chain_and_expiry
    validate_name: bool = True  # the setting's validate_sni
    pinned: bool = False  # the setting's pinned: the roots are an allow-list (v1)
    dial_to: tuple[str, int] | None = None  # --connect-to: where the probe really connects

    @property
    def tls_key(self) -> TlsKey:
        return (
            self.trusted_root_certificates,
            self.validate_chain,
            self.validate_name,
            self.pinned,
        )

    @property
    def key(self) -> TargetKey:
        return (self.pool, self.setting, self.server.host, self.traffic_port)

    @property
    def host(self) -> str:
        """The server's configured address."""
        return self.server.host

    @property
    def address(self) -> tuple[str, int]:
        """Where the probe connects: the server, or where --connect-to sends it."""
        return self.dial_to or (self.server.host, self.port)

    @property
    def protocol(self) -> str:
        return self.probe.protocol

    @property
    def path(self) -> str:
        return self.probe.path

    @property
    def uses_tls(self) -> bool:
        return self.probe.protocol in TLS_PROTOCOLS

    @property
    def is_websocket(self) -> bool:
        return self.probe.protocol in WEBSOCKET_PROTOCOLS

    @property
    def host_header(self) -> str:
        """The Host header: the host name, with the port unless it is the default."""
        name = self.host_name
        if ":" in name and not name.startswith("["):  # an IPv6 literal
            name = f"[{name}]"
        if self.port == _DEFAULT_PORTS.get(self.protocol):
            return name
        return f"{name}:{self.port}"


def used_pairs(config: Config) -> list[tuple[str, str]]:
    """Every (pool, setting) a rule routes to, in rule order, once each."""
    pairs: dict[tuple[str, str], None] = {}
    for rule in config.rules.values():
        if rule.kind == "path" and rule.path_map is not None:
            path_map = config.path_maps[rule.path_map]
            for path_rule in path_map.rules:
                if path_rule.pool is not None and path_rule.setting is not None:
                    pairs[(path_rule.pool, path_rule.setting)] = None
            if path_map.default_pool is not None and path_map.default_setting is not None:
                pairs[(path_map.default_pool, path_map.default_setting)] = None
        elif rule.pool is not None and rule.setting is not None:
            pairs[(rule.pool, rule.setting)] = None
    return list(pairs)


def probe_targets(config: Config) -> list[Target]:
    """Every probe target of `config`, grouped by (pool, setting), servers in pool order.

    A server listed twice in a pool (same host, same traffic port) is probed once.
    """
    targets: dict[TargetKey, Target] = {}
    for pool_name, setting_name in used_pairs(config):
        setting = config.settings[setting_name]
        for server in config.pools[pool_name].servers:
            key = target_key(pool_name, setting, server)
            if key not in targets:
                targets[key] = make_target(config, pool_name, setting, server)
    return list(targets.values())


def make_target(config: Config, pool: str, setting: Setting, server: Server) -> Target:
    """The target for one server of `pool` under `setting`."""
    if setting.probe is None:
        probe, is_default = default_probe(setting), True
    else:
        probe, is_default = config.probes[setting.probe], False
    port = traffic_port(setting, server)
    host_name = probe_host_name(probe, is_default, setting, server)
    tls_name: str | None = None
    roots: tuple[bytes, ...] = ()
    if probe.protocol in TLS_PROTOCOLS:
        tls_name = server.host if host_name == DEFAULT_PROBE_HOST else host_name
        tls_name = setting.sni_name or tls_name
        roots = tuple(
            config.trusted_root_certificates[n] for n in setting.trusted_root_certificates
        )
    probe_port = probe.port if probe.port is not None else port
    dialed = dial(config.connect_to, server.host, probe_port)
    return Target(
        pool=pool,
        setting=setting.name,
        server=server,
        probe=probe,
        is_default_probe=is_default,
        port=probe_port,
        traffic_port=port,
        host_name=host_name,
        tls_server_name=tls_name,
        trusted_root_certificates=roots,
        validate_chain=setting.validate_cert_chain_and_expiry,
        validate_name=setting.validate_sni,
        pinned=setting.pinned,
        dial_to=dialed if dialed != (server.host, probe_port) else None,
    )


def probe_host_name(probe: Probe, is_default: bool, setting: Setting, server: Server) -> str:
    """The host name a probe sends in its Host header (see the module docstring)."""
    if not is_default and probe.host:
        return probe.host
    if is_default or probe.pick_host_name_from_settings:
        if setting.host_name:
            return setting.host_name
        if setting.pick_host_name_from_backend_address:
            return server.host
    return DEFAULT_PROBE_HOST
