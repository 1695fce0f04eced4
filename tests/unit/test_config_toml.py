"""appgw's TOML configuration format: loading, strictness, certificates."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.config import ConfigError, load
from appgw.config.model import HeaderAction, RewriteCondition, Server, UrlAction
from appgw.config.toml import parse_server

REPO = Path(__file__).parents[2]


def write(tmp_path: Path, text: str, name: str = "appgw.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def errors_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.errors


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pems(tmp_path: Path, ca: trustme.CA) -> trustme.LeafCert:
    """certs/site.pem and certs/site-key.pem next to the config file."""
    leaf = ca.issue_cert("localhost", "www.contoso.com")
    (tmp_path / "certs").mkdir()
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "certs" / "site.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "certs" / "site-key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "certs" / "ca.pem"))
    return leaf


FULL = """
    [gateway]
    workers = 3
    pid_file = "run/appgw.pid"
    user = "www-data"
    group = "www-data"
    access_log = "/var/log/appgw/access.log"
    drain_grace = 2
    affinity_secret = "s3cret"

    [gateway.limits]
    max_header_bytes = 16384
    max_body_bytes = 0
    header_timeout = 7.5

    [certificates.site]
    cert = "certs/site.pem"
    key = "certs/site-key.pem"

    [trusted_root_certificates.corp]
    cert = "certs/ca.pem"

    [listeners.public]
    protocol = "http"
    port = 80
    host_names = ["www.contoso.com", "*.contoso.com"]

    [listeners.secure]
    protocol = "https"
    address = "127.0.0.1"
    port = 443
    certificate = "site"
    require_sni = true

    [pools.web]
    servers = ["127.0.0.2", "127.0.0.3:8081", "app.internal", "[::1]:9000"]

    [pools.api]
    servers = ["127.0.0.4"]

    [settings.web]
    port = 8080
    request_timeout = 45
    cookie_based_affinity = true
    affinity_cookie_name = "WebAffinity"
    connection_draining = true
    drain_timeout = 60
    probe = "web"

    [settings.api]
    port = 8443
    protocol = "https"
    pick_host_name_from_backend_address = true
    path = "/v2/"
    trusted_root_certificates = ["corp"]

    [probes.web]
    protocol = "http"
    path = "/healthz"
    host = "127.0.0.1"
    interval = 5
    timeout = 3
    unhealthy_threshold = 2
    match_status_codes = ["200-299", "404", 418]
    match_body = "ok"
    min_servers = 1

    [redirects.to-https]
    redirect_type = "permanent"
    target_listener = "secure"

    [redirects.away]
    redirect_type = "temporary"
    target_url = "https://example.com/"
    include_path = false

    [rewrite_rule_sets.api-headers]
    [[rewrite_rule_sets.api-headers.rules]]
    name = "late"
    sequence = 200
    url = { path = "/new", query_string = "a=1", reroute = true }

    [[rewrite_rule_sets.api-headers.rules]]
    name = "client-ip"
    sequence = 100
    conditions = [{ variable = "http_req_User-Agent", pattern = "(Android|iPhone)", negate = true }]
    request_headers = { "X-Client-IP" = "{var_client_ip}" }
    response_headers = { "Server" = "" }

    [path_maps.www]
    default_pool = "web"
    default_setting = "web"
    [[path_maps.www.rules]]
    name = "api"
    paths = ["/api/*"]
    pool = "api"
    setting = "api"
    rewrite_rule_set = "api-headers"
    [[path_maps.www.rules]]
    name = "old"
    paths = ["/old", "/old/*"]
    redirect = "away"

    [rules.secure]
    listener = "secure"
    kind = "path"
    priority = 10
    path_map = "www"

    [rules.public]
    listener = "public"
    priority = 20
    redirect = "to-https"
"""


def test_full_configuration_loads(tmp_path: Path, pems: trustme.LeafCert) -> None:
    config = load(write(tmp_path, FULL))

    g = config.gateway
    assert (g.workers, g.user, g.group, g.drain_grace, g.affinity_secret) == (
        3,
        "www-data",
        "www-data",
        2.0,
        "s3cret",
    )
    assert g.pid_file == str(tmp_path / "run" / "appgw.pid")  # relative to the file
    assert g.access_log == "/var/log/appgw/access.log"
    assert g.error_log is None
    assert (g.limits.max_header_bytes, g.limits.header_timeout) == (16384, 7.5)
    assert g.limits.max_uri_bytes == 32 * 1024  # default kept: Application Gateway's 32 KB

    site = config.certificates["site"]
    assert site.cert_pem == pems.cert_chain_pems[0].bytes()
    assert site.key_pem == pems.private_key_pem.bytes()
    assert site.source == "certs/site.pem"
    assert b"BEGIN CERTIFICATE" in config.trusted_root_certificates["corp"]

    public, secure = config.listeners["public"], config.listeners["secure"]
    assert (public.protocol, public.address, public.port) == ("http", "0.0.0.0", 80)
    assert public.host_names == ("www.contoso.com", "*.contoso.com")
    assert (secure.protocol, secure.address, secure.port) == ("https", "127.0.0.1", 443)
    assert (secure.certificate, secure.require_sni) == ("site", True)

    assert config.pools["web"].servers == (
        Server("127.0.0.2"),
        Server("127.0.0.3", 8081),
        Server("app.internal"),
        Server("::1", 9000),
    )

    web, api = config.settings["web"], config.settings["api"]
    assert (web.port, web.protocol, web.request_timeout, web.probe) == (8080, "http", 45, "web")
    assert (web.cookie_based_affinity, web.affinity_cookie_name) == (True, "WebAffinity")
    assert (web.connection_draining, web.drain_timeout) == (True, 60)
    assert (api.protocol, api.path, api.pick_host_name_from_backend_address) == (
        "https",
        "/v2/",
        True,
    )
    assert api.trusted_root_certificates == ("corp",)
    assert api.request_timeout == 20  # default

    probe = config.probes["web"]
    assert (probe.path, probe.host, probe.interval, probe.timeout) == (
        "/healthz",
        "127.0.0.1",
        5,
        3,
    )
    assert probe.unhealthy_threshold == 2
    assert probe.match_status_codes == ((200, 299), (404, 404), (418, 418))
    assert (probe.match_body, probe.min_servers) == ("ok", 1)

    assert config.redirects["to-https"].status == 301
    assert config.redirects["to-https"].target_listener == "secure"
    away = config.redirects["away"]
    assert (away.status, away.target_url, away.include_path) == (307, "https://example.com/", False)

    rules = config.rewrite_rule_sets["api-headers"].rules
    assert [r.name for r in rules] == ["client-ip", "late"]  # sorted by sequence
    assert rules[0].conditions == (
        RewriteCondition("http_req_User-Agent", "(Android|iPhone)", ignore_case=True, negate=True),
    )
    assert rules[0].request_headers == (HeaderAction("X-Client-IP", "{var_client_ip}"),)
    assert rules[0].response_headers == (HeaderAction("Server", ""),)
    assert rules[1].url == UrlAction("/new", "a=1", True)

    www = config.path_maps["www"]
    assert (www.default_pool, www.default_setting) == ("web", "web")
    assert [(r.name, r.paths) for r in www.rules] == [
        ("api", ("/api/*",)),
        ("old", ("/old", "/old/*")),
    ]
    assert www.rules[0].rewrite_rule_set == "api-headers"
    assert www.rules[1].redirect == "away"

    assert (config.rules["secure"].kind, config.rules["secure"].path_map) == ("path", "www")
    assert config.rules["public"].redirect == "to-https"
    assert config.rules["public"].kind == "basic"
    assert config.warnings == ()
    assert config.source == str(tmp_path / "appgw.toml")


def test_example_configuration_passes_check_with_its_certificates(tmp_path: Path) -> None:
    shutil.copy(REPO / "conf" / "appgw.toml", tmp_path / "appgw.toml")
    # Without the certificate files, the one error says which file is missing.
    errors = errors_of(str(tmp_path / "appgw.toml"))
    assert all(e.startswith("certificates.localhost.") for e in errors), errors
    assert any("localhost.pem" in e for e in errors)

    leaf = trustme.CA().issue_cert("localhost")
    (tmp_path / "certs").mkdir()
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "certs" / "localhost.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "certs" / "localhost-key.pem"))
    config = load(str(tmp_path / "appgw.toml"))
    assert {(x.protocol, x.port) for x in config.listeners.values()} == {
        ("http", 80),
        ("https", 443),
    }
    assert len(config.pools["web"].servers) == 2
    assert config.settings["web"].probe == "web"
    assert len(config.rules) == 2


def test_broken_file_lists_every_error_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [gateway]
        workers = -1
        colour = "blue"

        [listeners.web]
        prot = "http"
        port = "80"

        [pools.web]
        servers = ["127.0.0.2:99999", "a b"]

        [settings.chat]
        request_timeout = 0
        probe = "nope"

        [probes.p]
        match_status_codes = ["200-699", "abc"]

        [rules.web]
        listener = "web"
        pool = "wbe"
        setting = "chat"
        """,
    )
    errors = errors_of(path)
    expected = [
        "gateway.colour: unknown key",
        "gateway.workers: must be 0..1024",
        "listeners.web.prot: unknown key (did you mean port?)",
        "listeners.web.protocol: required",
        "listeners.web.port: must be an integer",
        "pools.web.servers[0]: port must be 1..65535",
        "pools.web.servers[1]: 'a b' is not a host name or IP address",
        "settings.chat.request_timeout: must be 1..86400",
        "settings.chat.probe: no probe named 'nope'",
        "probes.p.match_status_codes: 'abc' is not a status code or a range like '200-399'",
        "probes.p.match_status_codes: '200-699' must be a status code or range within 100..599",
        "rules.web.pool: no pool named 'wbe'",
    ]
    assert sorted(errors) == sorted(expected)


def test_unknown_keys_at_every_level(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        colour = 1
        [gateway.limits]
        max_headers = 1
        [listeners.web]
        protocol = "http"
        port = 80
        prot = "http"
        [pools.p]
        servers = []
        size = 3
        [settings.s]
        timeout = 3
        [rewrite_rule_sets.r]
        [[rewrite_rule_sets.r.rules]]
        name = "one"
        conditions = [{ variable = "var_uri_path", pattern = "x", case = true }]
        url = { path = "/", query = "" }
        [path_maps.m]
        default_pool = "p"
        default_setting = "s"
        [[path_maps.m.rules]]
        name = "a"
        paths = ["/a"]
        pool = "p"
        setting = "s"
        pools = "p"
        [rules.r]
        listener = "web"
        pool = "p"
        setting = "s"
        """,
    )
    unknown = sorted(e for e in errors_of(path) if ": unknown key" in e)
    assert unknown == [
        "colour: unknown key",
        "gateway.limits.max_headers: unknown key (did you mean max_header_bytes?)",
        "listeners.web.prot: unknown key (did you mean port?)",
        "path_maps.m.rules.a.pools: unknown key (did you mean pool?)",
        "pools.p.size: unknown key",
        "rewrite_rule_sets.r.rules.one.conditions[0].case: unknown key",
        "rewrite_rule_sets.r.rules.one.url.query: unknown key (did you mean query_string?)",
        "settings.s.timeout: unknown key (did you mean drain_timeout?)",
    ]


def test_wrong_types_name_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [gateway]
        workers = "two"
        drain_grace = true
        [listeners.web]
        protocol = "http"
        port = 80
        host_names = "www.contoso.com"
        [pools.p]
        servers = [1, 2]
        [settings]
        web = 3
        [settings.s]
        port = "8080"
        cookie_based_affinity = "yes"
        [rules.r]
        listener = "web"
        pool = "p"
        setting = "s"
        priority = 1.5
        """,
    )
    assert sorted(errors_of(path)) == sorted(
        [
            "gateway.workers: must be an integer",
            "gateway.drain_grace: must be a number",
            "listeners.web.host_names: must be a list",
            "pools.p.servers: must be a list of strings",
            "settings.web: must be a table",
            "settings.s.port: must be an integer",
            "settings.s.cookie_based_affinity: must be true or false",
            "rules.r.priority: must be an integer",
        ]
    )


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[listeners.web]\nprotocol = "http"\nport = = 80\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.errors[0].startswith("line 3, column ")
    assert "not valid TOML" in info.value.errors[0]
    assert str(info.value).startswith(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path / "missing.toml"))
    assert info.value.errors == ["cannot read: No such file or directory"]
    assert "missing.toml" in str(info.value)


def test_content_that_parses_as_toml_is_toml(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, name="gateway.conf")
    assert list(load(path).listeners) == ["web"]


MINIMAL = """
    [listeners.web]
    protocol = "http"
    port = 8080
    [pools.p]
    servers = ["127.0.0.2"]
    [settings.s]
    [rules.r]
    listener = "web"
    pool = "p"
    setting = "s"
"""


def https_config(cert_lines: str) -> str:
    return MINIMAL.replace('protocol = "http"', 'protocol = "https"\n    certificate = "site"') + (
        "\n    [certificates.site]\n" + textwrap.indent(textwrap.dedent(cert_lines), "    ")
    )


def test_certificate_file_missing(tmp_path: Path) -> None:
    path = write(tmp_path, https_config('cert = "certs/none.pem"\nkey = "certs/none-key.pem"\n'))
    errors = errors_of(path)
    assert errors == [
        f"certificates.site.cert: cannot read {tmp_path}/certs/none.pem: No such file or directory",
        f"certificates.site.key: cannot read {tmp_path}/certs/none-key.pem: "
        "No such file or directory",
    ]


def test_key_that_does_not_match(tmp_path: Path, pems: trustme.LeafCert, ca: trustme.CA) -> None:
    other = ca.issue_cert("localhost")
    other.private_key_pem.write_to_path(str(tmp_path / "certs" / "other-key.pem"))
    path = write(tmp_path, https_config('cert = "certs/site.pem"\nkey = "certs/other-key.pem"\n'))
    assert errors_of(path) == ["certificates.site.key: does not match the certificate"]


def test_certificate_and_key_in_one_file(tmp_path: Path, pems: trustme.LeafCert) -> None:
    both = tmp_path / "certs" / "both.pem"
    both.write_bytes(pems.private_key_pem.bytes() + pems.cert_chain_pems[0].bytes())
    config = load(write(tmp_path, https_config('cert = "certs/both.pem"\n')))
    assert config.certificates["site"].key_pem == pems.private_key_pem.bytes()
    assert b"PRIVATE KEY" not in config.certificates["site"].cert_pem


def test_encrypted_key_needs_its_password(tmp_path: Path, pems: trustme.LeafCert) -> None:
    key = serialization.load_pem_private_key(pems.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    (tmp_path / "certs" / "enc-key.pem").write_bytes(encrypted)
    lines = 'cert = "certs/site.pem"\nkey = "certs/enc-key.pem"\n'
    assert errors_of(write(tmp_path, https_config(lines))) == [
        "certificates.site.key: the private key is encrypted; give its password"
    ]
    config = load(write(tmp_path, https_config(lines + 'password = "pw"\n')))
    assert b"ENCRYPTED" not in config.certificates["site"].key_pem


def test_pfx_certificate(tmp_path: Path, pems: trustme.LeafCert, ca: trustme.CA) -> None:
    key = serialization.load_pem_private_key(pems.private_key_pem.bytes(), None)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pems.cert_chain_pems[0].bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    pfx = pkcs12.serialize_key_and_certificates(
        b"site", key, cert, [ca_cert], serialization.BestAvailableEncryption(b"secret")
    )
    (tmp_path / "certs" / "site.pfx").write_bytes(pfx)
    config = load(write(tmp_path, https_config('pfx = "certs/site.pfx"\npassword = "secret"\n')))
    site = config.certificates["site"]
    assert site.cert_pem.startswith(pems.cert_chain_pems[0].bytes())
    assert site.cert_pem.count(b"BEGIN CERTIFICATE") == 2  # leaf, then the chain
    assert site.source == "certs/site.pfx"

    wrong = write(tmp_path, https_config('pfx = "certs/site.pfx"\npassword = "nope"\n'))
    assert errors_of(wrong) == ["certificates.site.pfx: not PFX data, or a wrong password"]

    both = write(tmp_path, https_config('pfx = "certs/site.pfx"\ncert = "certs/site.pem"\n'))
    assert errors_of(both) == ["certificates.site: give cert and key, or pfx, not both"]


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("127.0.0.2", Server("127.0.0.2")),
        ("127.0.0.2:8080", Server("127.0.0.2", 8080)),
        ("app.internal", Server("app.internal")),
        ("[::1]:8080", Server("::1", 8080)),
        ("[::1]", Server("::1")),
        ("::1", Server("::1")),
    ],
)
def test_parse_server(text: str, server: Server) -> None:
    assert parse_server(text) == server


def test_gateway_watch(tmp_path: Path) -> None:
    assert load(write(tmp_path, MINIMAL)).gateway.watch is False
    on = write(tmp_path, "[gateway]\nwatch = true\n" + textwrap.dedent(MINIMAL), name="on.toml")
    assert load(on).gateway.watch is True
    bad = write(tmp_path, '[gateway]\nwatch = "yes"\n' + textwrap.dedent(MINIMAL), name="bad.toml")
    assert any(e.startswith("gateway.watch") for e in errors_of(bad)), errors_of(bad)


def test_gateway_http2(tmp_path: Path) -> None:
    default = load(write(tmp_path, MINIMAL)).gateway.http2
    assert (default.enabled, default.websocket, default.max_requests) == (False, True, 1000)
    assert (default.idle_timeout, default.max_concurrent_streams) == (180, 100)
    on = "[gateway.http2]\nenabled = true\nwebsocket = false\nmax_concurrent_streams = 128\n"
    http2 = load(write(tmp_path, on + textwrap.dedent(MINIMAL), name="on.toml")).gateway.http2
    assert (http2.enabled, http2.websocket, http2.max_concurrent_streams) == (True, False, 128)
    bad = "[gateway.http2]\nenabled = 1\nstreams = 5\n"
    assert sorted(errors_of(write(tmp_path, bad + textwrap.dedent(MINIMAL), name="bad.toml"))) == [
        "gateway.http2.enabled: must be true or false",
        "gateway.http2.streams: unknown key",
    ]
    ranges = "[gateway.http2]\nmax_concurrent_streams = 0\nmax_header_field_bytes = 20000\n"
    ranges += "initial_window_bytes = 100\n"
    assert sorted(errors_of(write(tmp_path, ranges + textwrap.dedent(MINIMAL), name="r.toml"))) == [
        "gateway.http2.initial_window_bytes: must be 65535..2147483647",
        "gateway.http2.max_concurrent_streams: must be 1..256",
        "gateway.http2.max_header_field_bytes: must be at most max_header_list_bytes",
    ]


TUNNEL_SETTING = """
[listeners.web]
protocol = "http"
port = 80
[pools.p]
servers = ["10.0.0.4"]
[settings.s]
port = 8080
{extra}
[rules.r]
listener = "web"
pool = "p"
setting = "s"
priority = 1
"""


@pytest.mark.parametrize(("extra", "value"), [("", False), ("close_on_peer_loss = true", True)])
def test_close_on_peer_loss_is_off_unless_asked(tmp_path: Path, extra: str, value: bool) -> None:
    config = load(write(tmp_path, TUNNEL_SETTING.format(extra=extra)))
    assert config.settings["s"].close_on_peer_loss is value


def test_close_on_peer_loss_must_be_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, TUNNEL_SETTING.format(extra='close_on_peer_loss = "yes"'))
    assert errors_of(path) == ["settings.s.close_on_peer_loss: must be true or false"]
