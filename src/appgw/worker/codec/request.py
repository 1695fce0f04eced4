"""A client request, parsed once into one immutable value (pure).

`read` turns the head llhttp read (wire.py) into a `Request`, after the
checks of strict.py: everything the rest of the request path needs to know
about the request is decided here, once, and never looked up again.
"""

from __future__ import annotations

from typing import NamedTuple

from appgw.errors import BadRequest, GatewayError
from appgw.worker.codec import headers as rules
from appgw.worker.codec import strict
from appgw.worker.codec.request_reader import RequestHead

Headers = tuple[tuple[bytes, bytes], ...]


class Request(NamedTuple):
    method: bytes
    target: bytes  # as the client sent it (origin-form or absolute-form)
    host: bytes | None  # the Host header's value
    version: str  # "1.0" or "1.1"
    headers: Headers  # names lowercased
    content_length: int | None  # the body's length (None: chunked or no body)
    chunked: bool
    body_expected: bool  # the framing announces body bytes
    websocket: bool  # a WebSocket handshake (GET, Upgrade: websocket, Connection: upgrade)
    connection: frozenset[bytes]  # the lowercased tokens of its Connection headers
    upgrade: bool  # llhttp stopped at this head for an upgrade (websocket or not)
    reuse_backend: bool  # False: the backend connection must not serve another request
    expect_continue: bool  # the client waits for 100 Continue before its body
    keep_alive: bool  # the client may send another request on this connection


_NO_TOKENS: frozenset[bytes] = frozenset()


def read(head: RequestHead) -> Request:
    """The request of a head, or a GatewayError (400, 505) saying why not."""
    headers = head.headers
    verdict = strict.inspect(head.method, head.version, headers)
    if verdict.problem:
        raise GatewayError(verdict.problem, status=verdict.status, keep_alive=False)
    host = None
    length = None
    chunked = False
    expect = False
    connection = False
    upgrade = None
    for name, value in headers:
        if name == b"host":
            host = value.strip(b" \t")
        elif name == b"content-length":
            length = int(value.strip(b" \t"))
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expect = value.strip(b" \t").lower() == b"100-continue"
        elif name == b"connection":
            connection = True
        elif name == b"upgrade":
            upgrade = value
    tokens = rules.connection_tokens(headers) if connection else _NO_TOKENS
    close = head.version != "1.1" or b"close" in tokens
    body_expected = chunked or bool(length)
    websocket = (
        upgrade is not None
        and b"upgrade" in tokens
        and rules.wants_websocket(head.method, headers, head.version.encode())
    )
    if head.upgrade and body_expected:
        # llhttp hands everything after an upgrade request's head to the
        # tunnel, so a body there would be read by nobody: refuse it.
        raise BadRequest("a body on an upgrade request")
    return Request(
        method=head.method,
        target=head.target,
        host=host,
        version=head.version,
        headers=tuple(headers),
        content_length=None if chunked else length,
        chunked=chunked,
        body_expected=body_expected,
        websocket=websocket,
        connection=tokens,
        upgrade=head.upgrade,
        reuse_backend=verdict.reuse_backend,
        expect_continue=expect and body_expected and head.version == "1.1",
        keep_alive=not close,
    )
