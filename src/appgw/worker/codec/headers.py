"""Header rules for both directions of an exchange (pure).

Towards the backend: hop-by-hop headers go (Connection and every header it
names, Keep-Alive, TE, Trailer, Upgrade, Proxy-Connection), framing headers
go and are set anew from the body the gateway will actually send (one
Content-Length or chunked, never both), and the forwarding headers are
added. A WebSocket handshake keeps Upgrade and gets `Connection: Upgrade`.
Towards the client: the same hop-by-hop rules on the response.

Header names arrive lowercased from the parser (wire.py) and leave as given.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable, Sequence

from appgw.errors import BadGateway
from appgw.websocket import accept_key

Headers = list[tuple[bytes, bytes]]
HeaderSeq = Sequence[tuple[bytes, bytes]]  # what the parser hands over

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"content-length",  # framing: set anew by the side that sends the body
    }
)

FORWARDING = frozenset({b"x-forwarded-proto", b"x-forwarded-port", b"x-original-host"})

# What never goes on to a backend as the client sent it.
_REQUEST_DROP = HOP_BY_HOP | FORWARDING | {b"host", b"x-forwarded-for"}


@functools.lru_cache(maxsize=16)
def _request_drop(drop: frozenset[bytes]) -> frozenset[bytes]:
    return _REQUEST_DROP | drop


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The lowercased tokens of every Connection header."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return frozenset(tokens)


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _without_hop_by_hop(headers: Iterable[tuple[bytes, bytes]], drop: Iterable[bytes]) -> Headers:
    tokens = connection_tokens(headers)
    remove = HOP_BY_HOP | tokens | frozenset(drop)
    return [(name, value) for name, value in headers if name not in remove]


def request_headers(
    headers: HeaderSeq,
    *,
    client_ip: str,
    scheme: str,
    port: int,
    host: bytes | None,
    host_override: bytes | None,
    content_length: int | None,
    chunked: bool,
    websocket: bool,
    drop: frozenset[bytes] = frozenset(),
    tokens: frozenset[bytes] | None = None,
) -> Headers:
    """The headers of the request sent to the backend.

    `content_length` / `chunked` describe the body the gateway will send;
    neither means no body. Headers named in `drop` go too (in the same
    walk over the request's headers). `tokens`: the request's Connection
    tokens, when they are known already.
    """
    remove = _request_drop(drop)
    if tokens is None:
        tokens = connection_tokens(headers)
    if tokens:
        remove = remove | tokens
    out = [(b"host", host_override or host or b"")]
    forwarded_for = []
    for name, value in headers:
        if name not in remove:
            out.append((name, value))
        elif name == b"x-forwarded-for":
            forwarded_for.append(value)
    forwarded_for.append(client_ip.encode())
    out.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    out.append((b"x-forwarded-proto", scheme.encode()))
    out.append((b"x-forwarded-port", str(port).encode()))
    if host is not None:
        out.append((b"x-original-host", host))
    if websocket:
        out.append((b"connection", b"Upgrade"))
        out.append((b"upgrade", b"websocket"))
    if chunked:
        out.append((b"transfer-encoding", b"chunked"))
    elif content_length is not None:
        out.append((b"content-length", str(content_length).encode()))
    return out


def build_head(first_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A message head as bytes; refuses a header that would break the framing."""
    parts = [first_line]
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    if head.count(b"\n") != len(parts) or head.count(b"\r") != len(parts):
        raise BadGateway("a header with a line break")
    return head


def response_headers(headers: HeaderSeq, *, close: bool) -> Headers:
    """The headers of a response sent to the client.

    Content-Length is kept (it tells the client the length, and the body is
    relayed by it); chunked framing is redone towards the client (bodies.py).
    """
    tokens = connection_tokens(headers)
    remove = HOP_BY_HOP | tokens if tokens else HOP_BY_HOP
    out = []
    length = None
    chunked = False
    for name, value in headers:
        if name not in remove:
            out.append((name, value))
        elif name == b"content-length":
            length = value
        elif name == b"transfer-encoding":
            chunked = True
    if length is not None and not chunked:
        out.append((b"content-length", length))
    if close:
        out.append((b"connection", b"close"))
    return out


def switching_headers(headers: HeaderSeq) -> Headers:
    """The headers of a 101 answer to a WebSocket handshake, as relayed."""
    out = _without_hop_by_hop(headers, ())
    out.append((b"connection", b"Upgrade"))
    out.append((b"upgrade", b"websocket"))
    return out


def wants_websocket(method: bytes, headers: HeaderSeq, http_version: bytes = b"1.1") -> bool:
    """Whether a request asks for a WebSocket upgrade (RFC 6455 §4.1: GET, HTTP/1.1+)."""
    if method != b"GET" or http_version < b"1.1":
        return False
    if b"upgrade" not in connection_tokens(headers):
        return False
    upgrade = header_value(headers, b"upgrade")
    return upgrade is not None and upgrade.strip().lower() == b"websocket"


def websocket_key_problem(headers: HeaderSeq) -> str | None:
    """Why a WebSocket handshake request is not acceptable, or None.

    Only version 13 with a key that is the base64 of 16 bytes starts an
    upgrade (RFC 6455 §4.2.1).
    """
    version = header_value(headers, b"sec-websocket-version")
    if version is None or version.strip() != b"13":
        return "Sec-WebSocket-Version must be 13"
    key = header_value(headers, b"sec-websocket-key")
    if key is None:
        return "Sec-WebSocket-Key is missing"
    try:
        decoded = base64.b64decode(key.strip(), validate=True)
    except (ValueError, binascii.Error):
        return "Sec-WebSocket-Key is not base64"
    if len(decoded) != 16:
        return "Sec-WebSocket-Key must encode 16 bytes"
    return None


def switching_problem(request: HeaderSeq, response: HeaderSeq) -> str | None:
    """Why a backend's 101 must not become a tunnel, or None."""
    upgrade = header_value(response, b"upgrade")
    if upgrade is None or upgrade.strip().lower() != b"websocket":
        return "101 without Upgrade: websocket"
    key = header_value(request, b"sec-websocket-key") or b""
    accept = header_value(response, b"sec-websocket-accept")
    if accept is None or accept.strip() != accept_key(key):
        return "101 with a wrong Sec-WebSocket-Accept"
    return None
