"""Properties of header handling, routing and the WebSocket checks (hypothesis).

Header handling (appgw.worker.codec.headers): whatever a client sends, the
request towards the backend carries exactly the framing the gateway will
send (one Content-Length, or chunked, or neither), no hop-by-hop header and
no header its Connection names; responses likewise. Routing
(appgw.worker.policy.routing): host and path lookups never raise, the first path
pattern in list order that matches wins (case-insensitively), and host
patterns match exactly the names they describe. WebSocket: only version 13 with a
key that is the base64 of 16 bytes passes, and a 101 passes only with the
accept value of RFC 6455 for that key.
"""

from __future__ import annotations

import base64
import hashlib
import re

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from appgw.config.model import Config, Listener, PathMap, PathRule, Pool, Rule, Server, Setting
from appgw.worker.codec import headers as rules
from appgw.worker.policy.routing import PathTable, Router, host_pattern, request_host

settings.register_profile("appgw", deadline=500, max_examples=200)
settings.load_profile("appgw")

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
FRAMING = {b"content-length", b"transfer-encoding"}
ALWAYS_HOP = {b"connection", b"keep-alive", b"te", b"trailer", b"proxy-connection"}

names = st.one_of(
    st.sampled_from(
        [
            b"connection",
            b"keep-alive",
            b"te",
            b"trailer",
            b"transfer-encoding",
            b"upgrade",
            b"proxy-connection",
            b"content-length",
            b"host",
            b"x-forwarded-for",
            b"x-forwarded-proto",
            b"x-forwarded-port",
            b"x-original-host",
            b"cookie",
            b"x-custom",
            b"sec-websocket-key",
            b"sec-websocket-version",
            b"expect",
        ]
    ),
    st.text(TOKEN_CHARS, min_size=1, max_size=20).map(str.encode),
)
values = st.binary(max_size=40).map(lambda v: bytes(c for c in v if c not in b"\r\n\x00").strip())
header_lists = st.lists(st.tuples(names, values), max_size=12)


def connection_named(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    named = set()
    for name, value in headers:
        if name == b"connection":
            named |= {t.strip().lower() for t in value.split(b",") if t.strip()}
    return named


@given(
    headers=header_lists,
    length=st.one_of(st.none(), st.integers(0, 2**63)),
    chunked=st.booleans(),
    websocket=st.booleans(),
    host=st.one_of(st.none(), values),
    override=st.one_of(st.none(), st.just(b"backend.example")),
)
def test_request_headers_carry_one_framing_and_no_hop_by_hop(
    headers, length, chunked, websocket, host, override
) -> None:
    out = rules.request_headers(
        headers,
        client_ip="192.0.2.1",
        scheme="http",
        port=80,
        host=host,
        host_override=override,
        content_length=length,
        chunked=chunked,
        websocket=websocket,
    )
    out_names = [name for name, _ in out]
    framing = [(n, v) for n, v in out if n in FRAMING]
    if chunked:
        assert framing == [(b"transfer-encoding", b"chunked")]
    elif length is not None:
        assert framing == [(b"content-length", str(length).encode())]
    else:
        assert framing == []
    assert out_names[0] == b"host" and out_names.count(b"host") == 1
    assert out[0][1] == (override or host or b"")
    forwarded = [v for n, v in out if n == b"x-forwarded-for"]
    assert len(forwarded) == 1 and forwarded[0].endswith(b"192.0.2.1")
    hop = ALWAYS_HOP | (connection_named(headers) - {b"host", b"upgrade", b"connection"})
    if websocket:
        assert (b"upgrade", b"websocket") in out and (b"connection", b"Upgrade") in out
        assert out_names.count(b"upgrade") == 1 and out_names.count(b"connection") == 1
        hop -= {b"connection"}
    else:
        hop |= {b"upgrade"}
    leaked = hop & set(out_names) - FRAMING - {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-original-host",
    }
    assert not leaked, (leaked, out)


@given(headers=header_lists, close=st.booleans())
def test_response_headers_never_carry_transfer_encoding_or_two_lengths(headers, close) -> None:
    out = rules.response_headers(headers, close=close)
    out_names = [name for name, _ in out]
    assert b"transfer-encoding" not in out_names
    assert out_names.count(b"content-length") <= 1
    assert not (ALWAYS_HOP - {b"connection"}) & set(out_names)
    if close:
        assert (b"connection", b"close") in out
    else:
        assert b"connection" not in out_names


@given(headers=header_lists)
def test_connection_tokens_are_lowercase_and_trimmed(headers) -> None:
    for token in rules.connection_tokens(headers):
        assert token == token.strip().lower() and token and b"," not in token


# -- WebSocket --------------------------------------------------------------------


def handshake(key: bytes, version: bytes = b"13") -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"g"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-version", version),
        (b"sec-websocket-key", key),
    ]


@given(raw=st.binary(min_size=16, max_size=16))
def test_a_key_of_16_bytes_is_accepted(raw) -> None:
    assert rules.websocket_key_problem(handshake(base64.b64encode(raw))) is None


@given(raw=st.binary(max_size=40))
def test_a_key_of_any_other_length_is_refused(raw) -> None:
    assume(len(raw) != 16)
    assert rules.websocket_key_problem(handshake(base64.b64encode(raw))) is not None


@given(key=st.binary(max_size=40), version=st.binary(max_size=4))
@example(key=b"dGhlIHNhbXBsZSBub25jZQ==", version=b"12")
def test_key_and_version_checks_never_raise(key, version) -> None:
    problem = rules.websocket_key_problem(handshake(key, version))
    if version.strip() != b"13":
        assert problem is not None


@given(raw=st.binary(min_size=16, max_size=16), other=st.binary(max_size=30))
def test_a_101_passes_only_with_the_matching_accept(raw, other) -> None:
    key = base64.b64encode(raw)
    right = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    good = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", right),
    ]
    assert rules.switching_problem(handshake(key), good) is None
    assume(other != right)
    wrong = good[:2] + [(b"sec-websocket-accept", other)]
    assert rules.switching_problem(handshake(key), wrong) is not None
    bare = [(b"sec-websocket-accept", right)]
    assert rules.switching_problem(handshake(key), bare) is not None


@given(method=st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"get"]), headers=header_lists)
def test_only_get_with_upgrade_websocket_wants_a_websocket(method, headers) -> None:
    if rules.wants_websocket(method, headers):
        assert method == b"GET"
        assert b"upgrade" in rules.connection_tokens(headers)
        assert rules.header_value(headers, b"upgrade").strip().lower() == b"websocket"


# -- routing ----------------------------------------------------------------------


@given(host=st.one_of(st.none(), st.binary(max_size=60)))
def test_request_host_never_raises(host) -> None:
    name = request_host(host)
    assert name == name.lower()


host_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
host_names = st.lists(host_labels, min_size=1, max_size=4).map(".".join)


@given(pattern_parts=st.lists(host_labels, min_size=1, max_size=3), name=host_names)
def test_wildcard_host_names_match_like_globs(pattern_parts, name) -> None:
    pattern = "*." + ".".join(pattern_parts)
    compiled = host_pattern([pattern])
    assert compiled is not None
    expected = name.endswith("." + ".".join(pattern_parts)) and len(name) > len(pattern) - 1
    assert bool(compiled.fullmatch(name)) == expected


@given(names=st.lists(host_names, min_size=1, max_size=4), name=host_names)
def test_exact_host_names_match_only_themselves(names, name) -> None:
    compiled = host_pattern(names)
    assert bool(compiled.fullmatch(name)) == (name in names)


paths = st.text("/abcxyz-._~%0123456789", max_size=30).map(lambda p: "/" + p.lstrip("/"))


@given(
    patterns=st.lists(st.tuples(paths, st.booleans()), max_size=8),
    path=paths,
)
@example(patterns=[("/api/", True), ("/api/v1", False)], path="/api/v1")
@example(patterns=[("/api/v1", False), ("/api/", True)], path="/API/V1")
def test_the_first_matching_pattern_in_list_order_wins(patterns, path) -> None:
    rules_ = tuple(
        PathRule(f"r{i}", (p + "*" if wild else p,), pool="p", setting="s")
        for i, (p, wild) in enumerate(patterns)
    )
    table = PathTable(PathMap("m", rules=rules_, default_pool="p", default_setting="s"))
    rule, matched = table.match(path)
    folded = path.lower()
    expected = None
    for i, (p, wild) in enumerate(patterns):
        if (wild and folded.startswith(p.lower())) or (not wild and folded == p.lower()):
            expected = i
            break
    if expected is None:
        assert rule is None and matched is None
        return
    assert rule is not None and rule.name == f"r{expected}"
    assert matched is not None and path.lower().startswith(matched.lower())


def router() -> Router:
    listeners = {
        "site": Listener(
            "site",
            "http",
            80,
            address="127.0.0.1",
            host_names=("www.example.com", "*.api.example.com"),
        ),
        "any": Listener("any", "http", 80, address="127.0.0.1"),
    }
    pools = {"p": Pool("p", (Server("127.0.0.2"),))}
    settings_ = {"s": Setting("s", 8080)}
    maps = {
        "m": PathMap(
            "m",
            rules=(
                PathRule("api", ("/api/*",), pool="p", setting="s"),
                PathRule("live", ("/live",), pool="p", setting="s"),
            ),
            default_pool="p",
            default_setting="s",
        )
    }
    rules_ = {
        "site": Rule("site", "site", kind="path", priority=10, path_map="m"),
        "any": Rule("any", "any", priority=20, pool="p", setting="s"),
    }
    return Router(
        Config(
            source="t",
            listeners=listeners,
            pools=pools,
            settings=settings_,
            path_maps=maps,
            rules=rules_,
        )
    )


ROUTER = router()


@given(host=st.one_of(st.none(), st.binary(max_size=60)), path=st.text(max_size=60))
def test_routing_never_raises(host, path) -> None:
    route = ROUTER.route(("127.0.0.1", 80), host, path)
    assert route is not None  # the basic listener takes any host
    name = request_host(host)
    site = name == "www.example.com" or bool(re.fullmatch(r".*\.api\.example\.com", name))
    assert route.rule == ("site" if site else "any")
    assert ROUTER.route(("127.0.0.1", 81), host, path) is None
