"""HTTP/2 messages as the exchange knows them, both ways (pure).

The exchange (exchange/) is written for HTTP/1.1's shapes: a `Request`
value in, a response head as bytes out. An HTTP/2 stream (server/h2_stream.py)
translates at its edge, here:

- `request_of`: a stream's request fields (already checked by the codec,
  h2_session.py, as RFC 9113 8.2 and 8.3 say) become a `Request` of version
  "2.0". `:authority` becomes the host (a Host field only stands in when
  there is no `:authority`); the `cookie` fields, which HTTP/2 may split,
  are joined again (RFC 9113 8.2.3); a body without a Content-Length goes to
  the backend chunked. An extended CONNECT with `:protocol websocket` (RFC
  8441) becomes the HTTP/1.1 handshake a backend understands: a GET with
  `Upgrade: websocket` and a fresh Sec-WebSocket-Key, whose accept the
  exchange then checks (handshake.py) as for any WebSocket.
- `response_fields`: a response head the exchange built (status line and
  header lines, maybe with body bytes behind it) becomes the status and the
  fields of a HEADERS frame: names lowercased, the connection-specific
  fields dropped (RFC 9113 8.2.2); a `101` that answers a WebSocket over
  HTTP/2 becomes `200` without its HTTP/1.1 handshake fields (RFC 8441 5).
"""

from __future__ import annotations

import base64
import os

from appgw.errors import BadRequest, GatewayError
from appgw.worker.codec.request import Request

Fields = list[tuple[bytes, bytes]]

_NO_TOKENS: frozenset[bytes] = frozenset()

# What an HTTP/2 response never carries (RFC 9113 8.2.2), and what a
# WebSocket's 200 leaves out of the backend's 101 (RFC 8441 5).
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_SWITCHED = CONNECTION_SPECIFIC | {b"sec-websocket-accept"}


def request_of(fields: Fields, end_stream: bool, *, websocket: bool) -> Request:
    """The exchange's Request for a stream's request fields.

    `end_stream`: the HEADERS frame ended the stream (no body); `websocket`:
    extended CONNECT is on. Raises BadRequest for what the codec leaves to
    the gateway (a Content-Length that is not one number), and 405 for a
    CONNECT the gateway does not tunnel.
    """
    method = target = authority = protocol = b""
    host: bytes | None = None
    headers: Fields = []
    cookies: list[bytes] = []
    length: int | None = None
    expect = False
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
            continue
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            host = value.strip(b" \t")
            continue
        if name == b"content-length":
            length = _length(value, length)
        elif name == b"expect":
            expect = value.strip(b" \t").lower() == b"100-continue"
        headers.append((name, value))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    if authority:
        host = authority
    upgrade = False
    if method == b"CONNECT":
        if not (websocket and protocol.lower() == b"websocket"):
            raise GatewayError(
                "CONNECT is not forwarded" if not protocol else f"no {protocol!r} over HTTP/2",
                status=405 if not protocol else 501,
            )
        # The HTTP/1.1 handshake a backend understands (RFC 8441 5).
        method = b"GET"
        key = base64.b64encode(os.urandom(16))
        headers.append((b"sec-websocket-key", key))
        upgrade = True
    body_expected = not end_stream and length != 0 and not upgrade
    return Request(
        method=method,
        target=target,
        host=host,
        version="2.0",
        headers=tuple(headers),
        content_length=length if body_expected else None,
        chunked=body_expected and length is None,
        body_expected=body_expected,
        websocket=upgrade,
        connection=_NO_TOKENS,
        upgrade=upgrade,
        reuse_backend=True,
        expect_continue=expect and body_expected,
        keep_alive=True,
    )


def _length(value: bytes, seen: int | None) -> int:
    text = value.strip(b" \t")
    if not text.isdigit() or len(text) > 18:
        raise BadRequest("a Content-Length that is not a number")
    length = int(text)
    if seen is not None and seen != length:
        raise BadRequest("Content-Length fields that disagree")
    return length


def response_fields(head: bytes | bytearray | memoryview) -> tuple[int, Fields, int]:
    """(status, fields, where the body starts in `head`) for a response head
    as the exchange builds it (heads.py, error_page.py), body bytes maybe
    behind it."""
    data = bytes(head) if not isinstance(head, bytes) else head
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise GatewayError("a response head without its end", status=500)
    lines = data[:end].split(b"\r\n")
    status = int(lines[0][9:12])
    drop = _SWITCHED if status == 101 else CONNECTION_SPECIFIC
    fields: Fields = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name not in drop:
            fields.append((name, value.strip(b" \t")))
    return (200 if status == 101 else status), fields, end + 4


__all__ = ["CONNECTION_SPECIFIC", "request_of", "response_fields"]
