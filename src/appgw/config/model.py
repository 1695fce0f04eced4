"""The gateway's resources, as frozen values.

These classes are the one shape of a loaded configuration, whatever file it
came from (appgw's TOML, an ARM template, `az network application-gateway
show` JSON). Loaders build them; everything else only reads them. Resources
refer to each other by name, exactly as in Application Gateway; validation
has already checked that every name resolves, so readers may index the
mappings directly.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from attrs import frozen

# Application Gateway's names for redirect types, and the status each sends.
REDIRECT_STATUS = {"permanent": 301, "found": 302, "seeother": 303, "temporary": 307}


@frozen
class Certificate:
    """A TLS certificate for HTTPS listeners: leaf first, then its chain."""

    name: str
    cert_pem: bytes
    key_pem: bytes
    source: str  # where it came from, for messages ("certs/site.pem", "sslCertificates[0]")


@frozen
class Listener:
    """An HTTP or HTTPS listener: where clients connect."""

    name: str
    protocol: str  # "http" | "https"
    port: int
    address: str = "0.0.0.0"
    host_names: tuple[str, ...] = ()  # empty: a basic listener, any Host
    certificate: str | None = None  # name in Config.certificates; https only
    require_sni: bool = False


@frozen
class Server:
    """One backend address of a pool: an IP address or a host name."""

    host: str
    port: int | None = None  # None: the backend setting's port

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@frozen
class Pool:
    """A backend address pool."""

    name: str
    servers: tuple[Server, ...] = ()


@frozen
class Setting:
    """Backend HTTP settings: how the gateway talks to a pool's servers."""

    name: str
    port: int = 80
    protocol: str = "http"  # "http" | "https"
    request_timeout: int = 20  # seconds; also a tunnel's idle timeout
    host_name: str | None = None  # Host sent to the backend instead of the client's
    pick_host_name_from_backend_address: bool = False
    path: str | None = None  # replaces the matched path prefix towards the backend
    cookie_based_affinity: bool = False
    affinity_cookie_name: str = "ApplicationGatewayAffinity"
    connection_draining: bool = False
    drain_timeout: int = 30  # seconds, used when connection_draining is on
    probe: str | None = None  # name in Config.probes; None: the default probe
    trusted_root_certificates: tuple[str, ...] = ()  # names in Config.trusted_root_certificates

    @property
    def tunnel_drain_timeout(self) -> int:
        """How long a drain lets this setting's tunnels run: the drain timeout
        with connection draining on, else 30 s, as in Application Gateway."""
        return self.drain_timeout if self.connection_draining else 30


@frozen
class Probe:
    """A health probe. The defaults are Application Gateway's default probe."""

    name: str
    protocol: str = "http"  # "http" | "https" | "ws" | "wss"
    host: str | None = None
    pick_host_name_from_settings: bool = False
    path: str = "/"
    port: int | None = None  # None: the setting's port
    interval: int = 30
    timeout: int = 30
    unhealthy_threshold: int = 3
    match_status_codes: tuple[tuple[int, int], ...] = ((200, 399),)  # inclusive ranges
    match_body: str | None = None
    min_servers: int = 0


@frozen
class Redirect:
    """A redirect configuration."""

    name: str
    redirect_type: str = "permanent"  # a key of REDIRECT_STATUS
    target_listener: str | None = None
    target_url: str | None = None
    include_path: bool = True
    include_query_string: bool = True

    @property
    def status(self) -> int:
        return REDIRECT_STATUS[self.redirect_type]


@frozen
class RewriteCondition:
    variable: str  # "http_req_User-Agent", "var_uri_path", ...
    pattern: str  # a regular expression
    ignore_case: bool = True
    negate: bool = False


# Headers a rewrite rule may not set: they carry the framing and the
# connection, which the gateway owns.
UNREWRITABLE_HEADERS = frozenset({"connection", "upgrade", "content-length", "transfer-encoding"})


@frozen
class HeaderAction:
    """Set a header to a value; an empty value removes the header."""

    name: str
    value: str


@frozen
class UrlAction:
    path: str | None = None
    query_string: str | None = None
    reroute: bool = False


@frozen
class RewriteRule:
    name: str
    sequence: int = 100
    conditions: tuple[RewriteCondition, ...] = ()
    request_headers: tuple[HeaderAction, ...] = ()
    response_headers: tuple[HeaderAction, ...] = ()
    url: UrlAction | None = None


@frozen
class RewriteRuleSet:
    name: str
    rules: tuple[RewriteRule, ...] = ()  # sorted by sequence


@frozen
class PathRule:
    """One entry of a URL path map: paths to a pool+setting, or a redirect."""

    name: str
    paths: tuple[str, ...]  # "/api/*", "/live"
    pool: str | None = None
    setting: str | None = None
    redirect: str | None = None
    rewrite_rule_set: str | None = None


@frozen
class PathMap:
    name: str
    rules: tuple[PathRule, ...] = ()
    default_pool: str | None = None
    default_setting: str | None = None
    default_redirect: str | None = None
    default_rewrite_rule_set: str | None = None


@frozen
class Rule:
    """A request routing rule: a listener to a target.

    kind "basic" names a pool and setting, or a redirect; kind "path" names a
    path map.
    """

    name: str
    listener: str
    kind: str = "basic"  # "basic" | "path"
    priority: int | None = None  # lower first; None after every numbered rule
    pool: str | None = None
    setting: str | None = None
    redirect: str | None = None
    path_map: str | None = None
    rewrite_rule_set: str | None = None


@frozen
class Limits:
    """Protection against bad and slow clients; Application Gateway's values."""

    max_header_bytes: int = 32 * 1024  # request line + headers -> 431
    max_uri_bytes: int = 32 * 1024  # request target -> 414 (Application Gateway: 32 KB)
    max_body_bytes: int = 0  # 0: no limit -> 413
    header_timeout: float = 15.0  # seconds to receive a request head
    request_timeout: float = 60.0  # seconds to receive a whole request -> 408
    keepalive_timeout: float = 75.0  # client keep-alive idle
    connect_timeout: float = 5.0  # backend connect
    max_connections: int = 10000  # per worker; accepting pauses at the limit
    max_response_header_bytes: int = 32 * 1024  # from a backend -> 502


@frozen
class Gateway:
    """Process-wide options (no Application Gateway equivalent)."""

    workers: int = 0  # 0: one per CPU
    pid_file: str | None = None
    user: str | None = None
    group: str | None = None
    error_log: str | None = None  # None: stderr
    access_log: str | None = None  # None: no access log
    drain_grace: float = 1.0  # seconds an idle keep-alive connection stays open on drain
    stall_timeout: float = 15.0  # seconds without a worker heartbeat before it is replaced
    # Signs cookie-based affinity cookies; instances that share it route a
    # session alike. Empty: derived from the pools (not secret).
    affinity_secret: str = ""
    limits: Limits = attrs.Factory(Limits)


@frozen
class Config:
    """A whole, validated gateway configuration."""

    source: str  # the file it was loaded from
    gateway: Gateway = attrs.Factory(Gateway)
    certificates: Mapping[str, Certificate] = attrs.Factory(dict)
    trusted_root_certificates: Mapping[str, bytes] = attrs.Factory(dict)  # name -> PEM
    listeners: Mapping[str, Listener] = attrs.Factory(dict)
    pools: Mapping[str, Pool] = attrs.Factory(dict)
    settings: Mapping[str, Setting] = attrs.Factory(dict)
    probes: Mapping[str, Probe] = attrs.Factory(dict)
    redirects: Mapping[str, Redirect] = attrs.Factory(dict)
    rewrite_rule_sets: Mapping[str, RewriteRuleSet] = attrs.Factory(dict)
    path_maps: Mapping[str, PathMap] = attrs.Factory(dict)
    rules: Mapping[str, Rule] = attrs.Factory(dict)
    # Things loaded but worth telling the operator (Azure-only keys ignored, ...).
    warnings: tuple[str, ...] = ()
