from __future__ import annotations

from appgw.config.model import (
    Config,
    Listener,
    PathMap,
    PathRule,
    Pool,
    Redirect,
    Rule,
    Server,
    Setting,
)
from appgw.worker.routing import Router, backend_target, redirect_location, request_host


def multisite() -> Config:
    listeners = {
        "chat": Listener(
            "chat",
            "https",
            443,
            host_names=("chat.contoso.com", "*.chat.contoso.com"),
            certificate="c",
        ),
        "www": Listener("www", "https", 443, host_names=("www.contoso.com",), certificate="c"),
        "any": Listener("any", "https", 443, certificate="c"),
        "plain": Listener("plain", "http", 80),
    }
    pools = {
        name: Pool(name, (Server(f"127.0.0.{i + 2}"),))
        for i, name in enumerate(["chat", "api", "static", "fallback"])
    }
    settings = {
        "chat": Setting("chat", 8080),
        "api": Setting("api", 443, protocol="https", path="/v2/"),
        "static": Setting("static", 80),
    }
    path_maps = {
        "www": PathMap(
            "www",
            rules=(
                PathRule("api", ("/api/*",), pool="api", setting="api"),
                PathRule("apiv", ("/api/v/*",), pool="chat", setting="chat"),
                PathRule("live", ("/live", "/live/*"), pool="chat", setting="chat"),
                PathRule("old", ("/old/*",), redirect="away"),
            ),
            default_pool="static",
            default_setting="static",
        )
    }
    redirects = {
        "away": Redirect(
            "away", "found", target_url="https://new.contoso.com/", include_path=False
        ),
        "secure": Redirect("secure", "permanent", target_listener="www"),
    }
    rules = {
        "chat": Rule("chat", "chat", priority=10, pool="chat", setting="chat"),
        "www": Rule("www", "www", kind="path", priority=20, path_map="www"),
        "any": Rule("any", "any", priority=30, pool="fallback", setting="static"),
        "plain": Rule("plain", "plain", redirect="secure"),
    }
    return Config(
        source="t",
        listeners=listeners,
        pools=pools,
        settings=settings,
        path_maps=path_maps,
        redirects=redirects,
        rules=rules,
    )


def test_request_host_strips_port_and_case():
    assert request_host(b"WWW.Contoso.com:8443") == "www.contoso.com"
    assert request_host(b"[::1]:80") == "[::1]"
    assert request_host(None) == ""


def test_multisite_host_matching_prefers_host_names_over_basic_listener():
    router = Router(multisite())
    bound = ("0.0.0.0", 443)
    assert router.route(bound, b"chat.contoso.com", "/").pool.name == "chat"
    assert router.route(bound, b"eu.chat.contoso.com:443", "/").pool.name == "chat"
    assert router.route(bound, b"www.contoso.com", "/index.html").pool.name == "static"
    assert router.route(bound, b"other.example", "/").pool.name == "fallback"


def test_priority_decides_even_against_host_names():
    # As in Application Gateway: a basic listener's rule with a better
    # priority takes every host on its port.
    import attrs

    config = multisite()
    rules = dict(config.rules)
    rules["any"] = attrs.evolve(rules["any"], priority=1)
    router = Router(attrs.evolve(config, rules=rules))
    assert router.route(("0.0.0.0", 443), b"chat.contoso.com", "/").pool.name == "fallback"


def test_without_priorities_multisite_listeners_go_before_basic_ones():
    import attrs

    config = multisite()
    rules = {name: attrs.evolve(rule, priority=None) for name, rule in config.rules.items()}
    router = Router(attrs.evolve(config, rules=rules))
    assert router.route(("0.0.0.0", 443), b"chat.contoso.com", "/").pool.name == "chat"
    assert router.route(("0.0.0.0", 443), b"nobody.example", "/").pool.name == "fallback"


def test_path_map_exact_then_longest_wildcard_then_default():
    router = Router(multisite())
    bound = ("0.0.0.0", 443)
    host = b"www.contoso.com"
    assert router.route(bound, host, "/api/users").pool.name == "api"
    assert router.route(bound, host, "/api/v/1").pool.name == "chat"
    assert router.route(bound, host, "/live").pool.name == "chat"
    assert router.route(bound, host, "/live/feed").pool.name == "chat"
    assert router.route(bound, host, "/liveness").pool.name == "static"
    route = router.route(bound, host, "/old/page")
    assert route.redirect is not None and route.redirect.name == "away"


def test_unknown_socket_routes_nowhere():
    assert Router(multisite()).route(("127.0.0.1", 9), b"x", "/") is None


def test_backend_path_override():
    router = Router(multisite())
    route = router.route(("0.0.0.0", 443), b"www.contoso.com", "/api/users")
    assert backend_target(route, "/api/users?x=1") == "/v2/users?x=1"
    plain = router.route(("0.0.0.0", 443), b"chat.contoso.com", "/a/b")
    assert backend_target(plain, "/a/b?q") == "/a/b?q"


def test_redirects():
    config = multisite()
    router = Router(config)
    route = router.route(("0.0.0.0", 80), b"www.contoso.com", "/p")
    assert redirect_location(route, route.redirect, config, b"www.contoso.com", "/p?a=1") == (
        "https://www.contoso.com/p?a=1"
    )
    old = router.route(("0.0.0.0", 443), b"www.contoso.com", "/old/x")
    assert redirect_location(old, old.redirect, config, b"www.contoso.com", "/old/x?a=1") == (
        "https://new.contoso.com/?a=1"
    )
    assert old.redirect.status == 302
