"""What Application Gateway adds to a forwarded request and its answer (pure).

Towards the backend, besides X-Forwarded-For/-Proto/-Port and
X-Original-Host (headers.py), every request, WebSocket handshakes included,
carries:

- `X-Original-URL`: the path and query as the client sent them, before any
  URL rewrite or path override;
- `X-AppGW-Trace-Id`: 32 hex characters identifying this request, the same
  value as the access log's transaction id.

A client cannot choose either: fields of those names in the request are
dropped before the gateway's own are added. A rewrite rule set runs after
this and may still replace them.

Towards the client, cookie-based affinity sets two cookies naming the same
server: the affinity cookie, and its twin `<name>CORS` with
`SameSite=None; Secure`, which browsers send on cross-site requests where
the first, without a SameSite attribute, would be dropped. A request
carrying either one is pinned to its server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

Headers = list[tuple[bytes, bytes]]

ORIGINAL_URL = b"x-original-url"
TRACE_ID = b"x-appgw-trace-id"
CORS_SUFFIX = "CORS"


class Trace(NamedTuple):
    """One request's identity towards the backend and in the access log."""

    original_url: str  # origin-form, as the client sent it
    trace_id: str  # 32 lowercase hex characters

    @classmethod
    def new(cls, original_url: str) -> Trace:
        return cls(original_url, new_trace_id())


def new_trace_id() -> str:
    """A fresh request id: 32 lowercase hex characters (128 random bits)."""
    return os.urandom(16).hex()


GATEWAY_HEADERS = frozenset({ORIGINAL_URL, TRACE_ID})  # never taken from a client


def trace_headers(trace: Trace) -> list[tuple[bytes, bytes]]:
    """The gateway's X-Original-URL and X-AppGW-Trace-Id for a request."""
    return [
        (ORIGINAL_URL, trace.original_url.encode("latin-1", "replace")),
        (TRACE_ID, trace.trace_id.encode("ascii")),
    ]


def add_request_headers(headers: Sequence[tuple[bytes, bytes]], trace: Trace | None) -> Headers:
    """`headers` with any client-sent X-Original-URL and X-AppGW-Trace-Id
    replaced by the gateway's (None: `headers` as they are)."""
    if trace is None:
        return list(headers)
    out = [(name, value) for name, value in headers if name.lower() not in GATEWAY_HEADERS]
    out += trace_headers(trace)
    return out


def affinity_cookie(headers: Sequence[tuple[bytes, bytes]], cookie_name: str) -> str | None:
    """The value of the affinity cookie, or else of its CORS twin, or None."""
    name = cookie_name.encode("latin-1")
    twin = name + CORS_SUFFIX.encode()
    found_twin: str | None = None
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for part in value.split(b";"):
            key_part, _, cookie_value = part.strip().partition(b"=")
            if key_part == name:
                return cookie_value.decode("latin-1")
            if key_part == twin and found_twin is None:
                found_twin = cookie_value.decode("latin-1")
    return found_twin


def affinity_set_cookies(cookie_name: str, value: str, https: bool) -> list[bytes]:
    """The Set-Cookie values that pin a client to a server: the cookie and
    its CORS twin (the twin is `Secure`, which browsers accept over plain
    HTTP from localhost only; Application Gateway sends it regardless)."""
    main = f"{cookie_name}={value}; Path=/; HttpOnly"
    if https:
        main += "; Secure"
    twin = f"{cookie_name}{CORS_SUFFIX}={value}; Path=/; HttpOnly; SameSite=None; Secure"
    return [main.encode("latin-1"), twin.encode("latin-1")]
