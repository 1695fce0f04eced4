from __future__ import annotations

import pytest

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
from appgw.worker.policy.routing import (
    PathTable,
    Router,
    backend_target,
    redirect_location,
    request_host,
)


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


def test_path_map_first_match_in_list_order_then_default():
    router = Router(multisite())
    bound = ("0.0.0.0", 443)
    host = b"www.contoso.com"
    assert router.route(bound, host, "/api/users").pool.name == "api"
    # "/api/*" is listed before "/api/v/*", so it takes "/api/v/1" too.
    assert router.route(bound, host, "/api/v/1").pool.name == "api"
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


# -- path maps, from Application Gateway's documentation -------------------------
#
# "URL Path Based Routing overview": rules are processed in the order they are
# listed; a wildcard listed first takes priority even over a more specific
# path listed after it. Path patterns match case-insensitively, on the path
# without the query; "*" may end a pattern, with or without "/" before it.


def table(*patterns: tuple[str, ...]) -> PathTable:
    rules = tuple(
        PathRule(f"r{i}", paths, pool="p", setting="s") for i, paths in enumerate(patterns)
    )
    return PathTable(PathMap("m", rules=rules, default_pool="p", default_setting="s"))


PATH_CASES = [
    # (patterns in list order, request path, rule expected (None: default), matched part)
    ((("/video/*",), ("/images/*",)), "/video/a.mp4", "r0", "/video/"),
    ((("/video/*",), ("/images/*",)), "/images/a.png", "r1", "/images/"),
    ((("/video/*",), ("/images/*",)), "/other", None, None),
    # The documentation's example: the wildcard listed first catches the longer path.
    ((("/master-dev*",), ("/master-dev/api-core/",)), "/master-dev/api-core/", "r0", "/master-dev"),
    ((("/master-dev/api-core/",), ("/master-dev*",)), "/master-dev/api-core/", "r0", None),
    ((("/master-dev/api-core/",), ("/master-dev*",)), "/master-dev/other", "r1", "/master-dev"),
    # An exact path listed after a wildcard that covers it never wins.
    ((("/api/*",), ("/api/live",)), "/api/live", "r0", "/api/"),
    # Both wildcard forms.
    ((("/images*",),), "/images", "r0", "/images"),
    ((("/images*",),), "/imagesX/a", "r0", "/images"),
    ((("/images/*",),), "/images", None, None),
    ((("/images/*",),), "/images/", "r0", "/images/"),
    # Case-insensitive, the matched part as the client wrote it.
    ((("/api/*",),), "/API/x", "r0", "/API/"),
    ((("/Live",),), "/lIVE", "r0", None),
    # Several patterns of one rule count at their own positions.
    ((("/a", "/b/*"), ("/b/c",)), "/b/c", "r0", "/b/"),
    ((("/*",), ("/api/*",)), "/api/x", "r0", "/"),
]


@pytest.mark.parametrize(("patterns", "path", "expected", "matched"), PATH_CASES)
def test_path_rules_first_match_in_list_order(patterns, path, expected, matched):
    rule, part = table(*patterns).match(path)
    assert (rule.name if rule else None) == expected
    if expected is not None:
        assert part == (matched if matched is not None else path)


def test_path_rules_ignore_the_query():
    router = Router(multisite())
    # The proxy routes on the path alone; a query that looks like a path
    # does not change the match.
    route = router.route(("0.0.0.0", 443), b"www.contoso.com", "/index.html")
    assert route.pool.name == "static" and route.path_rule is None


OVERRIDE_CASES = [
    # "Override backend path" in the backend settings documentation:
    # (rule kind, path pattern, override, request path, path to the backend)
    ("basic", None, "/override/", "/home/", "/override/home/"),
    ("basic", None, "/override/", "/home/secondhome/", "/override/home/secondhome/"),
    ("path", "/pathrule/home/", "/override/", "/pathrule/home/", "/override/"),
    ("path", "/pathrule/home*", "/override/", "/pathrule/home/", "/override/"),
    (
        "path",
        "/pathrule/home*",
        "/override/",
        "/pathrule/home/secondhome/",
        "/override/secondhome/",
    ),
    ("path", "/pathrule/home/*", "/override/", "/pathrule/home/", "/override/"),
    (
        "path",
        "/pathrule/home/*",
        "/override/",
        "/pathrule/home/secondhome/",
        "/override/secondhome/",
    ),
    ("path", "/pathrule/home/*", "/override", "/pathrule/home/a", "/override/a"),
    ("path", "/pathrule/*", "/override/", "/PathRule/Home", "/override/Home"),
]


@pytest.mark.parametrize(("kind", "pattern", "override", "path", "expected"), OVERRIDE_CASES)
def test_backend_path_override_as_documented(kind, pattern, override, path, expected):
    listeners = {"l": Listener("l", "http", 80)}
    pools = {"p": Pool("p", (Server("127.0.0.2"),))}
    settings = {"s": Setting("s", 80, path=override)}
    if kind == "basic":
        rules = {"r": Rule("r", "l", pool="p", setting="s")}
        maps = {}
    else:
        maps = {
            "m": PathMap(
                "m",
                rules=(PathRule("pr", (pattern,), pool="p", setting="s"),),
                default_pool="p",
                default_setting="s",
            )
        }
        rules = {"r": Rule("r", "l", kind="path", path_map="m")}
    config = Config(
        source="t", listeners=listeners, pools=pools, settings=settings, path_maps=maps, rules=rules
    )
    route = Router(config).route(("0.0.0.0", 80), b"x", path)
    assert backend_target(route, path + "?q=1") == expected + "?q=1"
