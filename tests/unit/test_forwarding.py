from __future__ import annotations

import re

from appgw.worker.policy.forwarding import (
    Trace,
    add_request_headers,
    affinity_cookie,
    affinity_set_cookies,
    new_trace_id,
)


def test_trace_ids_are_32_hex_characters_and_differ():
    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_client_cannot_choose_original_url_or_trace_id():
    headers = [
        (b"host", b"a"),
        (b"x-original-url", b"/forged"),
        (b"X-AppGW-Trace-Id", b"0" * 32),
        (b"accept", b"*/*"),
    ]
    out = add_request_headers(headers, Trace("/p?q=1", "ab" * 16))
    assert out == [
        (b"host", b"a"),
        (b"accept", b"*/*"),
        (b"x-original-url", b"/p?q=1"),
        (b"x-appgw-trace-id", b"ab" * 16),
    ]
    assert add_request_headers(headers, None) == headers


def test_affinity_cookie_or_its_cors_twin_pins_the_server():
    assert affinity_cookie([(b"cookie", b"a=1; Chat=abc")], "Chat") == "abc"
    assert affinity_cookie([(b"cookie", b"ChatCORS=def")], "Chat") == "def"
    # The main cookie wins over its twin, wherever they are.
    assert (
        affinity_cookie([(b"cookie", b"ChatCORS=def"), (b"cookie", b"Chat=abc")], "Chat") == "abc"
    )
    assert affinity_cookie([(b"cookie", b"ChatX=1")], "Chat") is None
    assert affinity_cookie([], "Chat") is None


def test_affinity_sets_the_cookie_and_its_cors_twin():
    plain = affinity_set_cookies("ApplicationGatewayAffinity", "v", https=False)
    assert plain == [
        b"ApplicationGatewayAffinity=v; Path=/; HttpOnly",
        b"ApplicationGatewayAffinityCORS=v; Path=/; HttpOnly; SameSite=None; Secure",
    ]
    secure = affinity_set_cookies("Chat", "v", https=True)
    assert secure[0] == b"Chat=v; Path=/; HttpOnly; Secure"
    assert secure[1].startswith(b"ChatCORS=v;")
