"""Validation of built configurations, shared by the TOML and ARM loaders."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trustme

from appgw.config.model import (
    Certificate,
    Config,
    Gateway,
    HeaderAction,
    Limits,
    Listener,
    PathMap,
    PathRule,
    Pool,
    Probe,
    Redirect,
    RewriteCondition,
    RewriteRule,
    RewriteRuleSet,
    Rule,
    Server,
    Setting,
)
from appgw.config.naming import ARM_NAMING
from appgw.config.validate import validate


@pytest.fixture(scope="module")
def leaf() -> trustme.LeafCert:
    return trustme.CA().issue_cert("localhost")


def certificate(leaf: trustme.LeafCert, name: str = "site") -> Certificate:
    return Certificate(
        name, leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(), source="test"
    )


def base(**changes: Any) -> Config:
    """A valid gateway: one http listener, pool, setting, basic rule."""
    config = Config(
        source="test",
        listeners={"web": Listener("web", "http", 80)},
        pools={"web": Pool("web", (Server("127.0.0.2"),))},
        settings={"web": Setting("web", port=8080)},
        rules={"web": Rule("web", "web", pool="web", setting="web")},
    )
    return attrs.evolve(config, **changes)


def test_a_valid_configuration_has_no_errors(leaf: trustme.LeafCert) -> None:
    assert validate(base()) == []
    config = base(
        certificates={"site": certificate(leaf)},
        listeners={
            "web": Listener("web", "http", 80),
            "secure": Listener("secure", "https", 443, certificate="site", require_sni=True),
        },
        rules={
            "web": Rule("web", "web", redirect="up", priority=1),
            "secure": Rule("secure", "secure", kind="path", path_map="m", priority=2),
        },
        redirects={"up": Redirect("up", target_listener="secure")},
        path_maps={
            "m": PathMap(
                "m",
                rules=(PathRule("api", ("/api/*", "/api"), pool="web", setting="web"),),
                default_redirect="up",
            )
        },
        probes={"p": Probe("p", protocol="wss", match_status_codes=((101, 101), (200, 399)))},
        settings={"web": Setting("web", probe="p")},
    )
    assert validate(config) == []


def test_every_reference_kind_dangling() -> None:
    config = base(
        listeners={
            "web": Listener("web", "https", 443, certificate="nocert"),
        },
        settings={"web": Setting("web", probe="noprobe", trusted_root_certificates=("noroot",))},
        redirects={"r": Redirect("r", target_listener="nolistener")},
        rewrite_rule_sets={"rw": RewriteRuleSet("rw")},
        path_maps={
            "m": PathMap(
                "m",
                rules=(
                    PathRule(
                        "a",
                        ("/a/*",),
                        pool="nopool",
                        setting="nosetting",
                        rewrite_rule_set="norewrite",
                    ),
                    PathRule("b", ("/b",), redirect="noredirect"),
                ),
                default_pool="nopool",
                default_setting="nosetting",
                default_rewrite_rule_set="norewrite",
            ),
            "m2": PathMap("m2", default_redirect="noredirect"),
        },
        rules={
            "basic": Rule(
                "basic", "nolistener", pool="nopool", setting="nosetting", rewrite_rule_set="norw"
            ),
            "redirect": Rule("redirect", "web", redirect="noredirect"),
            "path": Rule("path", "web2", kind="path", path_map="nomap"),
        },
    )
    assert sorted(validate(config)) == sorted(
        [
            "listeners.web.certificate: no certificate named 'nocert'",
            "settings.web.probe: no probe named 'noprobe'",
            "settings.web.trusted_root_certificates: no trusted root certificate named 'noroot'",
            "redirects.r.target_listener: no listener named 'nolistener'",
            "path_maps.m.default_pool: no pool named 'nopool'",
            "path_maps.m.default_setting: no setting named 'nosetting'",
            "path_maps.m.default_rewrite_rule_set: no rewrite rule set named 'norewrite'",
            "path_maps.m.rules.a.pool: no pool named 'nopool'",
            "path_maps.m.rules.a.setting: no setting named 'nosetting'",
            "path_maps.m.rules.a.rewrite_rule_set: no rewrite rule set named 'norewrite'",
            "path_maps.m.rules.b.redirect: no redirect named 'noredirect'",
            "path_maps.m2.default_redirect: no redirect named 'noredirect'",
            "rules.basic.listener: no listener named 'nolistener'",
            "rules.basic.pool: no pool named 'nopool'",
            "rules.basic.setting: no setting named 'nosetting'",
            "rules.basic.rewrite_rule_set: no rewrite rule set named 'norw'",
            "rules.redirect.redirect: no redirect named 'noredirect'",
            "rules.path.listener: no listener named 'web2'",
            "rules.path.path_map: no path map named 'nomap'",
        ]
    )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"listeners": {"web": Listener("web", "http", 0)}},
            "listeners.web.port: must be 1..65535",
        ),
        (
            {"listeners": {"web": Listener("web", "http", 65536)}},
            "listeners.web.port: must be 1..65535",
        ),
        ({"settings": {"web": Setting("web", port=0)}}, "settings.web.port: must be 1..65535"),
        (
            {"settings": {"web": Setting("web", request_timeout=86401)}},
            "settings.web.request_timeout: must be 1..86400",
        ),
        (
            {"settings": {"web": Setting("web", drain_timeout=3601)}},
            "settings.web.drain_timeout: must be 1..3600",
        ),
        ({"probes": {"p": Probe("p", interval=0)}}, "probes.p.interval: must be 1..86400"),
        ({"probes": {"p": Probe("p", timeout=86401)}}, "probes.p.timeout: must be 1..86400"),
        (
            {"probes": {"p": Probe("p", unhealthy_threshold=21)}},
            "probes.p.unhealthy_threshold: must be 1..20",
        ),
        ({"probes": {"p": Probe("p", port=70000)}}, "probes.p.port: must be 1..65535"),
        ({"probes": {"p": Probe("p", min_servers=-1)}}, "probes.p.min_servers: must be >= 0"),
        ({"probes": {"p": Probe("p", path="healthz")}}, "probes.p.path: must start with '/'"),
        (
            {"rules": {"web": Rule("web", "web", pool="web", setting="web", priority=20001)}},
            "rules.web.priority: must be 1..20000",
        ),
        ({"gateway": Gateway(workers=1025)}, "gateway.workers: must be 0..1024"),
        ({"gateway": Gateway(drain_grace=-1)}, "gateway.drain_grace: must be >= 0"),
        (
            {"gateway": Gateway(limits=Limits(max_header_bytes=0))},
            "gateway.limits.max_header_bytes: must be > 0",
        ),
        (
            {"gateway": Gateway(limits=Limits(header_timeout=0))},
            "gateway.limits.header_timeout: must be > 0",
        ),
        (
            {"gateway": Gateway(limits=Limits(max_body_bytes=-1))},
            "gateway.limits.max_body_bytes: must be >= 0",
        ),
        (
            {"gateway": Gateway(limits=Limits(backend_reuse_idle=61))},
            "gateway.limits.backend_reuse_idle: must be 0..60",
        ),
        (
            {"gateway": Gateway(limits=Limits(backend_reuse_idle=-0.5))},
            "gateway.limits.backend_reuse_idle: must be 0..60",
        ),
        (
            {"pools": {"web": Pool("web", (Server("127.0.0.2", 0),))}},
            "pools.web.servers[0]: port must be 1..65535",
        ),
        (
            {"listeners": {"web": Listener("web", "http", 80, address="localhost")}},
            "listeners.web.address: 'localhost' is not an IP address",
        ),
        (
            {"listeners": {"web": Listener("web", "http", 80, host_names=("a b",))}},
            "listeners.web.host_names: 'a b' is not a host name",
        ),
        (
            {"settings": {"web": Setting("web", affinity_cookie_name="a;b")}},
            "settings.web.affinity_cookie_name: must be a cookie name",
        ),
        (
            {"settings": {"web": Setting("web", path="v2/")}},
            "settings.web.path: must start with '/'",
        ),
    ],
)
def test_ranges_and_values(changes: dict[str, Any], error: str) -> None:
    assert validate(base(**changes)) == [error]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"listeners": {"web": Listener("web", "tcp", 80)}},
            "listeners.web.protocol: must be http or https, not 'tcp'",
        ),
        (
            {"settings": {"web": Setting("web", protocol="ws")}},
            "settings.web.protocol: must be http or https, not 'ws'",
        ),
        (
            {"probes": {"p": Probe("p", protocol="tcp")}},
            "probes.p.protocol: must be one of http, https, ws, wss, not 'tcp'",
        ),
        (
            {"rules": {"web": Rule("web", "web", kind="weighted", pool="web", setting="web")}},
            "rules.web.kind: must be basic or path, not 'weighted'",
        ),
    ],
)
def test_enums(changes: dict[str, Any], error: str) -> None:
    assert validate(base(**changes)) == [error]


def test_redirects() -> None:
    config = base(
        redirects={
            "kind": Redirect("kind", redirect_type="moved", target_url="https://a/"),
            "none": Redirect("none"),
            "both": Redirect("both", target_listener="web", target_url="https://a/"),
            "relative": Redirect("relative", target_url="/elsewhere"),
        }
    )
    assert validate(config) == [
        "redirects.kind.redirect_type: must be one of permanent, found, seeother, temporary,"
        " not 'moved'",
        "redirects.none: needs target_listener or target_url",
        "redirects.both.target_url: excludes target_listener",
        "redirects.relative.target_url: must be an absolute http:// or https:// URL",
    ]


def test_https_listener_needs_a_certificate_and_http_has_none(leaf: trustme.LeafCert) -> None:
    config = base(
        certificates={"site": certificate(leaf)},
        listeners={
            "web": Listener("web", "https", 443),
            "plain": Listener("plain", "http", 80, certificate="site", require_sni=True),
        },
        rules={
            "web": Rule("web", "web", pool="web", setting="web"),
            "plain": Rule("plain", "plain", pool="web", setting="web"),
        },
    )
    assert validate(config) == [
        "listeners.web.certificate: required for an https listener",
        "listeners.plain.certificate: only for https listeners",
        "listeners.plain.require_sni: only for https listeners",
    ]


def test_rule_targets() -> None:
    config = base(
        redirects={"r": Redirect("r", target_url="https://example.com/")},
        path_maps={"m": PathMap("m", default_pool="web", default_setting="web")},
        listeners={n: Listener(n, "http", 80 + i) for i, n in enumerate("abcdefg")},
        rules={
            "none": Rule("none", "a"),
            "pool-only": Rule("pool-only", "b", pool="web"),
            "setting-only": Rule("setting-only", "c", setting="web"),
            "both": Rule("both", "d", pool="web", setting="web", redirect="r"),
            "basic-map": Rule("basic-map", "e", redirect="r", path_map="m"),
            "path-none": Rule("path-none", "f", kind="path"),
            "path-pool": Rule("path-pool", "g", kind="path", path_map="m", pool="web"),
        },
    )
    assert validate(config) == [
        "rules.none: needs pool and setting, or redirect",
        "rules.pool-only.setting: required with pool",
        "rules.setting-only.pool: required with setting",
        "rules.both.redirect: excludes pool and setting",
        "rules.basic-map.path_map: only for path rules",
        "rules.path-none.path_map: required for path rules",
        "rules.path-pool.pool: not for path rules: the path map names the targets",
    ]


def test_path_map_targets_and_paths() -> None:
    config = base(
        redirects={"r": Redirect("r", target_url="https://example.com/")},
        path_maps={
            "m": PathMap(
                "m",
                rules=(
                    PathRule("none", ("/a",)),
                    PathRule("both", ("/b",), pool="web", setting="web", redirect="r"),
                    PathRule("bad", ("api/*", "/x*y", "/ok/*")),
                    PathRule("again", ("/ok/*",), redirect="r"),
                    PathRule("again", ("/c",), redirect="r"),
                    PathRule("empty", (), redirect="r"),
                ),
                default_pool="web",
            ),
        },
    )
    assert validate(config) == [
        "path_maps.m.default_setting: required with default_pool",
        "path_maps.m.rules.again: duplicate name",
        "path_maps.m.rules.none: needs pool and setting, or redirect",
        "path_maps.m.rules.both.redirect: excludes pool and setting",
        "path_maps.m.rules.bad.paths: 'api/*' must start with '/' and may only end with '*'",
        "path_maps.m.rules.bad.paths: '/x*y' must start with '/' and may only end with '*'",
        "path_maps.m.rules.bad: needs pool and setting, or redirect",
        "path_maps.m.rules.again.paths: '/ok/*' is already a path of rule 'bad'",
        "path_maps.m.rules.empty.paths: required",
    ]


def test_listeners_sharing_a_port() -> None:
    listeners = {
        "a": Listener("a", "http", 80),
        "b": Listener("b", "https", 80, address="127.0.0.1", certificate="c"),
        "c": Listener("c", "http", 80),
        "d": Listener("d", "http", 8080, host_names=("www.contoso.com", "*.contoso.com")),
        "e": Listener("e", "http", 8080, host_names=("WWW.contoso.com",)),
        "f": Listener("f", "http", 8080),  # the catch-all beside host-named listeners: fine
        "g": Listener("g", "http", 8080, address="127.0.0.5"),  # another address: fine
    }
    rules = {n: Rule(n, n, pool="web", setting="web") for n in listeners}
    errors = validate(base(listeners=listeners, rules=rules))
    assert errors == [
        "listeners.b.certificate: no certificate named 'c'",
        "listeners.b.protocol: https on 127.0.0.1:80 conflicts with http listener 'a'",
        "listeners.c.host_names: listener 'a' already takes every host name on 0.0.0.0:80",
        "listeners.c.protocol: http on 0.0.0.0:80 conflicts with https listener 'b'",
        "listeners.e.host_names: 'www.contoso.com' is already a host name of listener 'd'"
        " on 0.0.0.0:8080",
    ]


def test_a_listener_serves_one_rule_and_priorities_are_unique() -> None:
    config = base(
        rules={
            "one": Rule("one", "web", pool="web", setting="web", priority=5),
            "two": Rule("two", "web", pool="web", setting="web", priority=5),
        }
    )
    assert validate(config) == [
        "rules.two.listener: listener 'web' is already used by rule 'one'",
        "rules.two.priority: 5 is already the priority of rule 'one'",
    ]


def test_certificates(leaf: trustme.LeafCert) -> None:
    other = trustme.CA().issue_cert("localhost")
    config = base(
        certificates={
            "mismatch": Certificate(
                "mismatch", leaf.cert_chain_pems[0].bytes(), other.private_key_pem.bytes(), "x"
            ),
            "nocert": Certificate("nocert", b"garbage", leaf.private_key_pem.bytes(), "x"),
            "nokey": Certificate("nokey", leaf.cert_chain_pems[0].bytes(), b"garbage", "x"),
        },
        trusted_root_certificates={"bad": b"garbage", "good": trustme.CA().cert_pem.bytes()},
    )
    errors = validate(config)
    assert errors[:2] == [
        "certificates.mismatch.key: does not match the certificate",
        "certificates.nocert.cert: not a PEM certificate",
    ]
    assert errors[2].startswith("certificates.nokey.key: not a usable PEM private key")
    assert errors[3:] == ["trusted_root_certificates.bad.cert: not a PEM certificate"]


@pytest.mark.parametrize(
    ("codes", "ok"),
    [
        (((200, 399),), True),
        (((404, 404),), True),
        (((100, 599),), True),
        (((99, 200),), False),
        (((200, 600),), False),
        (((400, 300),), False),
    ],
)
def test_status_code_ranges(codes: tuple[tuple[int, int], ...], ok: bool) -> None:
    errors = validate(base(probes={"p": Probe("p", match_status_codes=codes)}))
    assert (errors == []) is ok
    if not ok:
        assert errors[0].startswith("probes.p.match_status_codes: ")
        assert errors[0].endswith("must be a status code or range within 100..599")


def test_rewrite_rules() -> None:
    rule_set = RewriteRuleSet(
        "rw",
        (
            RewriteRule(
                "r",
                sequence=0,
                conditions=(
                    RewriteCondition("http_req_User-Agent", "(unclosed"),
                    RewriteCondition("user_agent", "ok"),
                ),
                request_headers=(HeaderAction("Bad Header", "x"),),
            ),
            RewriteRule("r"),
        ),
    )
    errors = validate(base(rewrite_rule_sets={"rw": rule_set}))
    assert errors[0] == "rewrite_rule_sets.rw.rules.r: duplicate name"
    assert errors[1] == "rewrite_rule_sets.rw.rules.r.sequence: must be 1..1000"
    assert errors[2].startswith(
        "rewrite_rule_sets.rw.rules.r.conditions[0].pattern: not an RE2 regular expression"
    )
    assert errors[3] == (
        "rewrite_rule_sets.rw.rules.r.conditions[1].variable: 'user_agent' is not "
        "http_req_<header>, http_resp_<header> or var_<server variable>"
    )
    assert (
        errors[4]
        == "rewrite_rule_sets.rw.rules.r.request_headers: 'Bad Header' is not a header name"
    )
    assert len(errors) == 5


def test_contradictory_host_settings() -> None:
    config = base(
        settings={
            "web": Setting("web", host_name="a.example", pick_host_name_from_backend_address=True)
        },
        probes={"p": Probe("p", host="a.example", pick_host_name_from_settings=True)},
    )
    assert validate(config) == [
        "settings.web.host_name: cannot be set with pick_host_name_from_backend_address",
        "probes.p.host: cannot be set with pick_host_name_from_settings",
    ]


def test_names_and_emptiness() -> None:
    assert validate(Config(source="x")) == [
        "listeners: at least one listener is required",
        "rules: at least one rule is required",
    ]
    config = base(pools={"web": Pool("web"), "a b": Pool("a b")})
    assert validate(config) == [
        "pools.a b: invalid name: up to 80 letters, digits, '_', '.' and '-'"
    ]


def test_arm_naming_of_the_same_errors() -> None:
    config = base(
        settings={"chat-settings": Setting("chat-settings", request_timeout=0, drain_timeout=0)},
        rules={"web": Rule("web", "web", kind="path")},
        probes={"p": Probe("p", match_status_codes=((0, 0),))},
        pools={"web": Pool("web", (Server("a b"),))},
    )
    assert validate(config, ARM_NAMING) == [
        "backendAddressPools.web.backendAddresses[0]: 'a b' is not a host name or IP address",
        "backendHttpSettingsCollection.chat-settings.requestTimeout: must be 1..86400",
        "backendHttpSettingsCollection.chat-settings.connectionDraining.drainTimeoutInSec:"
        " must be 1..3600",
        "probes.p.match.statusCodes: '0' must be a status code or range within 100..599",
        "requestRoutingRules.web.urlPathMap: required for PathBasedRouting rules",
    ]
