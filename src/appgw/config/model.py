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

from appgw.config.waf import GEOIP_DATABASES, WafPolicy

# Application Gateway's names for redirect types, and the status each sends.
REDIRECT_STATUS = {"permanent": 301, "found": 302, "seeother": 303, "temporary": 307}


@frozen
class Certificate:
    """A TLS certificate for HTTPS listeners: leaf first, then its chain."""

    name: str
    cert_pem: bytes
    key_pem: bytes
    source: str  # where it came from, for messages ("certs/site.pem", "sslCertificates[0]")


# The statuses whose page Application Gateway lets a configuration replace.
CUSTOM_ERROR_STATUSES = (400, 403, 405, 408, 500, 502, 503, 504)


@frozen
class ErrorPage:
    """A custom error page: what the gateway answers instead of its own page
    for one status. Fetched once, when the configuration loads."""

    status: int  # one of CUSTOM_ERROR_STATUSES
    url: str  # as configured: http://, https://, file: or a file path
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"


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
    ssl_profile: str | None = None  # name in Config.ssl_profiles; https only
    error_pages: tuple[ErrorPage, ...] = ()  # these win over the gateway's
    # PROXY protocol (v1 or v2) required on every connection, from these
    # sources only (addresses or networks); Azure has no such property.
    proxy_protocol: bool = False
    proxy_protocol_trusted: tuple[str, ...] = ()
    firewall_policy: str | None = None  # name in Config.waf_policies


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
    # pinned: those are v1 authenticationCertificates, an allow-list: a backend
    # whose chain ends at one of them is accepted, its name unchecked.
    pinned: bool = False
    # https backends: check the certificate's chain and dates, and its name
    # against the SNI name; sni_name replaces the name sent (default: the Host).
    validate_cert_chain_and_expiry: bool = True
    validate_sni: bool = True
    sni_name: str | None = None
    # A tunnel peer that goes without a Close frame gets the other side a Close of the
    # gateway's (1014 to the client, 1001 to the backend) instead of the same end (TOML only).
    close_on_peer_loss: bool = False

    @property
    def tunnel_drain_timeout(self) -> int:
        """How long a drain lets this setting's tunnels run: the drain timeout
        with connection draining on, else 30 s, as in Application Gateway."""
        return self.drain_timeout if self.connection_draining else 30


@frozen
class SslPolicy:
    """A TLS policy: predefined by name, or Custom/CustomV2 with a floor and suites.

    policy_type "" is ARM's older form that only lists disabled protocols.
    """

    policy_type: str = "predefined"  # "predefined" | "custom" | "customv2" | ""
    policy_name: str | None = None  # predefined: None is AppGwSslPolicy20220101
    min_protocol_version: str | None = None  # "TLSv1_0" .. "TLSv1_3"
    cipher_suites: tuple[str, ...] = ()  # IANA names, in priority order
    disabled_protocols: tuple[str, ...] = ()


@frozen
class ClientAuth:
    """Mutual TLS on the listeners of an SSL profile."""

    mode: str = "strict"  # "strict" | "passthrough"
    verify_issuer_dn: bool = False  # the client's issuer must be the uploaded chain's last CA
    verify_revocation: str = "none"  # "none" | "ocsp"


@frozen
class SslProfile:
    """Listener-specific TLS: a policy and client authentication."""

    name: str
    ssl_policy: SslPolicy | None = None  # None: the gateway's policy
    trusted_client_certificates: tuple[str, ...] = ()  # names in Config.trusted_client_certificates
    client_auth: ClientAuth = attrs.Factory(ClientAuth)

    @property
    def mutual_tls(self) -> bool:
        """Whether clients are asked for a certificate: trusted client CAs
        (strict), or passthrough mode, which needs none."""
        return bool(self.trusted_client_certificates) or self.client_auth.mode == "passthrough"


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
class ValueMatcher:
    """Application Gateway's headerValueMatcher: which fields of a header an
    action rewrites (Set-Cookie on responses only)."""

    pattern: str  # an RE2 regular expression
    ignore_case: bool = False
    negate: bool = False


@frozen
class HeaderAction:
    """Set a header to a value; an empty value removes the header.

    With a matcher, only the fields whose value the matcher selects are
    rewritten (each on its own), and the value may use the matcher's groups.
    """

    name: str
    value: str
    matcher: ValueMatcher | None = None


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
    firewall_policy: str | None = None  # name in Config.waf_policies


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
    # Request and response buffering (Application Gateway's
    # globalConfiguration.enableRequestBuffering / enableResponseBuffering).
    request_buffering: bool = True  # read and check a body before the backend is reached
    request_buffer_bytes: int = 128 * 1024  # per request, read before the head goes out
    worker_request_buffer_bytes: int = 32 * 1024 * 1024  # all requests of a worker together
    response_buffering: bool = True  # read a response ahead of a slow client
    response_buffer_bytes: int = 1024 * 1024  # per response
    worker_response_buffer_bytes: int = 64 * 1024 * 1024  # all responses of a worker together
    # Seconds a pooled backend connection may have been idle and still carry
    # a request that cannot be sent twice (POST, a body); below the backends'
    # own keep-alive timeout, that request never meets a closing connection.
    backend_reuse_idle: float = 1.0


@frozen
class Admin:
    """The admin listener (no Application Gateway equivalent): metrics, health, status."""

    port: int
    address: str = "127.0.0.1"
    public: bool = False  # allow a non-loopback address


@frozen
class Http2:
    """HTTP/2 to clients on HTTPS listeners (ARM enableHttp2), Azure's limits as defaults."""

    enabled: bool = False
    websocket: bool = True  # WebSocket over HTTP/2 (RFC 8441, extended CONNECT)
    max_requests: int = 1000  # per connection, then GOAWAY
    idle_timeout: float = 180.0  # seconds without an open stream, then GOAWAY
    max_concurrent_streams: int = 100
    max_header_field_bytes: int = 8192  # one header field -> 431
    max_header_list_bytes: int = 16384  # all of a request's headers -> 431
    initial_window_bytes: int = 262144  # each stream's receive window


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
    watch: bool = False  # reload when the configuration file changes (config watch)
    # Signs cookie-based affinity cookies; instances that share it route a
    # session alike. Empty: derived from the pools (not secret).
    affinity_secret: str = ""
    limits: Limits = attrs.Factory(Limits)
    http2: Http2 = attrs.Factory(Http2)
    admin: Admin | None = None  # None: no admin listener


@frozen
class Config:
    """A whole, validated gateway configuration."""

    source: str  # the file it was loaded from
    gateway: Gateway = attrs.Factory(Gateway)
    # Files read besides `source`, as absolute paths (certificates, keys and CA
    # chains; a template, its parameters and linked templates; --certificate
    # files): config watch follows them too.
    files: tuple[str, ...] = ()
    # --connect-to: (host, port or None) -> where connections really go (connect_to.py)
    connect_to: Mapping[tuple[str, int | None], tuple[str, int | None]] = attrs.Factory(dict)
    certificates: Mapping[str, Certificate] = attrs.Factory(dict)
    trusted_root_certificates: Mapping[str, bytes] = attrs.Factory(dict)  # name -> PEM
    ssl_policy: SslPolicy = attrs.Factory(SslPolicy)  # the gateway's TLS policy
    ssl_profiles: Mapping[str, SslProfile] = attrs.Factory(dict)
    trusted_client_certificates: Mapping[str, bytes] = attrs.Factory(dict)  # name -> CA PEM chain
    listeners: Mapping[str, Listener] = attrs.Factory(dict)
    pools: Mapping[str, Pool] = attrs.Factory(dict)
    settings: Mapping[str, Setting] = attrs.Factory(dict)
    probes: Mapping[str, Probe] = attrs.Factory(dict)
    redirects: Mapping[str, Redirect] = attrs.Factory(dict)
    rewrite_rule_sets: Mapping[str, RewriteRuleSet] = attrs.Factory(dict)
    path_maps: Mapping[str, PathMap] = attrs.Factory(dict)
    rules: Mapping[str, Rule] = attrs.Factory(dict)
    error_pages: tuple[ErrorPage, ...] = ()  # for every listener without its own
    waf_policies: Mapping[str, WafPolicy] = attrs.Factory(dict)  # config/waf.py
    firewall_policy: str | None = None  # the gateway's: name in waf_policies
    firewall_log: str | None = None  # the WAF's log (JSON lines); None: the error log
    geoip_databases: tuple[str, str] = GEOIP_DATABASES  # IPv4, IPv6 (waf/geo.py)
    # Things loaded but worth telling the operator (Azure-only keys ignored, ...).
    warnings: tuple[str, ...] = ()
