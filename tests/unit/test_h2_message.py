"""HTTP/2 messages as the exchange knows them (codec/h2_message.py)."""

from __future__ import annotations

import pytest

from appgw.errors import BadRequest, GatewayError
from appgw.worker.codec.h2_message import request_of, response_fields

GET = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"a.example"),
    (b":path", b"/x?y"),
]


def test_a_get_becomes_a_request_of_version_2() -> None:
    request = request_of(
        [*GET, (b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")], True, websocket=True
    )
    assert (request.method, request.target, request.host, request.version) == (
        b"GET",
        b"/x?y",
        b"a.example",
        "2.0",
    )
    assert request.headers == ((b"accept", b"*/*"), (b"cookie", b"a=1; b=2"))  # RFC 9113 8.2.3
    assert not request.body_expected and not request.chunked and request.keep_alive


def test_bodies_without_a_length_go_chunked() -> None:
    post = [(b":method", b"POST"), *GET[1:]]
    assert request_of(post, False, websocket=False).chunked
    sized = request_of([*post, (b"content-length", b"5")], False, websocket=False)
    assert (sized.chunked, sized.content_length, sized.body_expected) == (False, 5, True)
    assert not request_of([*post, (b"content-length", b"0")], False, websocket=False).body_expected
    with pytest.raises(BadRequest):
        request_of(
            [*post, (b"content-length", b"5"), (b"content-length", b"6")], False, websocket=False
        )
    with pytest.raises(BadRequest):
        request_of([*post, (b"content-length", b"-1")], False, websocket=False)


def test_host_stands_in_for_a_missing_authority() -> None:
    fields = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/"),
        (b"host", b"h.example"),
    ]
    assert request_of(fields, True, websocket=False).host == b"h.example"


def test_extended_connect_becomes_a_websocket_handshake() -> None:
    connect = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        *GET[1:],
        (b"sec-websocket-version", b"13"),
    ]
    request = request_of(connect, False, websocket=True)
    assert request.method == b"GET" and request.websocket and not request.body_expected
    keys = [v for k, v in request.headers if k == b"sec-websocket-key"]
    assert len(keys) == 1 and len(keys[0]) == 24  # 16 random bytes, base64
    assert request_of(connect, False, websocket=True).headers != request.headers  # fresh each time
    with pytest.raises(GatewayError) as off:
        request_of(connect, False, websocket=False)
    assert off.value.status == 501
    with pytest.raises(GatewayError) as plain:
        request_of([(b":method", b"CONNECT"), (b":authority", b"a:443")], False, websocket=True)
    assert plain.value.status == 405


def test_response_heads_become_fields() -> None:
    head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\nX-A: b\r\n\r\nabc"
    status, fields, offset = response_fields(head)
    assert (status, fields, head[offset:]) == (
        404,
        [(b"content-length", b"3"), (b"x-a", b"b")],
        b"abc",
    )
    switched = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    switched += b"sec-websocket-accept: k\r\nsec-websocket-protocol: chat\r\n\r\n"
    assert response_fields(switched)[:2] == (200, [(b"sec-websocket-protocol", b"chat")])
