from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from appgw.worker.codec import headers as rules


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def build(headers, **overrides):
    options = dict(
        client_ip="127.0.0.9",
        scheme="https",
        port=443,
        host=b"www.contoso.com",
        host_override=None,
        content_length=None,
        chunked=False,
        websocket=False,
    )
    options.update(overrides)
    return rules.request_headers(headers, **options)


def test_hop_by_hop_headers_and_those_connection_names_are_stripped():
    out = build(
        [
            (b"host", b"www.contoso.com"),
            (b"connection", b"keep-alive, x-secret"),
            (b"x-secret", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"te", b"trailers"),
            (b"trailer", b"x-sum"),
            (b"upgrade", b"h2c"),
            (b"proxy-connection", b"keep-alive"),
            (b"accept", b"*/*"),
        ]
    )
    present = set(names(out))
    for gone in (
        b"connection",
        b"x-secret",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
    ):
        assert gone not in present
    assert (b"accept", b"*/*") in out


def test_forwarding_headers_are_set_and_client_values_replaced():
    out = build(
        [
            (b"host", b"www.contoso.com"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x-forwarded-proto", b"gopher"),
            (b"x-forwarded-port", b"1"),
        ]
    )
    assert rules.header_value(out, b"host") == b"www.contoso.com"
    assert rules.header_value(out, b"x-forwarded-for") == b"10.0.0.1, 127.0.0.9"
    assert rules.header_value(out, b"x-forwarded-proto") == b"https"
    assert rules.header_value(out, b"x-forwarded-port") == b"443"
    assert rules.header_value(out, b"x-original-host") == b"www.contoso.com"
    assert names(out).count(b"x-forwarded-proto") == 1
    assert names(out).count(b"x-forwarded-port") == 1


def test_host_override_keeps_the_original_in_x_original_host():
    out = build([(b"host", b"www.contoso.com")], host_override=b"app.internal")
    assert rules.header_value(out, b"host") == b"app.internal"
    assert rules.header_value(out, b"x-original-host") == b"www.contoso.com"


def test_framing_is_set_anew_never_both():
    both = [(b"host", b"h"), (b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    chunked = build(both, chunked=True)
    assert rules.header_value(chunked, b"transfer-encoding") == b"chunked"
    assert rules.header_value(chunked, b"content-length") is None
    sized = build(both, content_length=5)
    assert rules.header_value(sized, b"content-length") == b"5"
    assert rules.header_value(sized, b"transfer-encoding") is None
    none = build(both)
    assert rules.header_value(none, b"content-length") is None
    assert rules.header_value(none, b"transfer-encoding") is None


def test_websocket_handshake_keeps_upgrade():
    out = build(
        [
            (b"host", b"h"),
            (b"connection", b"Upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-key", b"k"),
        ],
        websocket=True,
    )
    assert rules.header_value(out, b"upgrade") == b"websocket"
    assert rules.header_value(out, b"connection") == b"Upgrade"
    assert rules.header_value(out, b"sec-websocket-key") == b"k"


def test_wants_websocket_needs_get_connection_upgrade_and_websocket():
    good = [(b"connection", b"keep-alive, Upgrade"), (b"upgrade", b"WebSocket")]
    assert rules.wants_websocket(b"GET", good)
    assert not rules.wants_websocket(b"POST", good)
    assert not rules.wants_websocket(b"GET", [(b"upgrade", b"websocket")])
    assert not rules.wants_websocket(b"GET", [(b"connection", b"upgrade"), (b"upgrade", b"h2c")])


def test_websocket_key_checks():
    key = base64.b64encode(b"0123456789abcdef")
    ok = [(b"sec-websocket-version", b"13"), (b"sec-websocket-key", key)]
    assert rules.websocket_key_problem(ok) is None
    assert rules.websocket_key_problem(
        [(b"sec-websocket-version", b"8"), (b"sec-websocket-key", key)]
    )
    assert rules.websocket_key_problem([(b"sec-websocket-version", b"13")])
    short = base64.b64encode(b"short")
    assert rules.websocket_key_problem(
        [(b"sec-websocket-version", b"13"), (b"sec-websocket-key", short)]
    )
    assert rules.websocket_key_problem(
        [(b"sec-websocket-version", b"13"), (b"sec-websocket-key", b"!!!")]
    )


def test_switching_problem():
    request = [(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]
    good = [(b"upgrade", b"websocket"), (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    assert rules.switching_problem(request, good) is None
    assert rules.switching_problem(request, [])  # a bare 101
    assert rules.switching_problem(
        request, [(b"upgrade", b"websocket"), (b"sec-websocket-accept", b"x")]
    )
    assert rules.switching_problem(request, [(b"upgrade", b"h2c"), good[1]])


def test_response_headers_strip_hop_by_hop_and_keep_length():
    out = rules.response_headers(
        [
            (b"content-length", b"3"),
            (b"connection", b"x-a"),
            (b"x-a", b"1"),
            (b"keep-alive", b"5"),
            (b"etag", b"e"),
        ],
        close=True,
    )
    assert rules.header_value(out, b"content-length") == b"3"
    assert rules.header_value(out, b"x-a") is None
    assert rules.header_value(out, b"keep-alive") is None
    assert rules.header_value(out, b"connection") == b"close"
    assert rules.header_value(out, b"etag") == b"e"


token = st.binary(min_size=1, max_size=12).map(lambda b: b.hex().encode())


@given(st.lists(st.tuples(token, token), max_size=20), st.booleans(), st.booleans())
def test_never_two_framings_and_no_hop_by_hop(headers, chunked, websocket):
    out = build(
        headers, chunked=chunked, content_length=None if chunked else 7, websocket=websocket
    )
    out_names = names(out)
    assert not (b"content-length" in out_names and b"transfer-encoding" in out_names)
    assert out_names.count(b"host") == 1
    for name in (b"keep-alive", b"te", b"trailer", b"proxy-connection"):
        assert name not in out_names
