"""The server variables and headers a rewrite rule reads (pure).

A Scope is one evaluation: a request as the gateway received it, and for
response rules the backend's status and headers. `server(name)` answers
Application Gateway's server variables (`var_client_ip`, `var_uri_path`,
... and `var_cookie_<name>`); `header(response, name)` the request's or
response's fields, joined as one value. Anything unknown is "".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from attrs import frozen

if TYPE_CHECKING:
    from appgw.mtls import ClientCertificate


@frozen
class RequestContext:
    """What variables read: one request as the gateway received it.

    Text fields are as decoded by the caller; non-ASCII text is used as UTF-8.
    Header names are lowercase, as the parser gives them.
    """

    client_ip: str
    client_port: int
    server_port: int
    scheme: str  # "http" | "https"
    method: str
    path: str  # without the query
    query: str  # without the "?"
    host: str  # from the request target or the Host header, "" if neither
    headers: Sequence[tuple[bytes, bytes]]
    http_version: str = "1.1"
    client_certificate: ClientCertificate | None = None  # mutual TLS listeners only


def latin1(text: str) -> str:
    """Text as the str of its UTF-8 bytes, the form header values take here."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


class Scope:
    """What variables read during one evaluation; headers grouped on first use."""

    __slots__ = ("ctx", "status", "_request", "_response", "_response_headers")

    def __init__(
        self,
        ctx: RequestContext,
        status: int | None = None,
        response_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.ctx = ctx
        self.status = status
        self._request: dict[bytes, list[bytes]] | None = None
        self._response: dict[bytes, list[bytes]] | None = None
        self._response_headers = response_headers

    def header(self, response: bool, name: bytes) -> str:
        if response:
            if self._response is None:
                self._response = _group(self._response_headers)
            fields = self._response.get(name)
        else:
            if self._request is None:
                self._request = _group(self.ctx.headers)
            fields = self._request.get(name)
        if not fields:
            return ""
        return (b"; " if name == b"cookie" else b", ").join(fields).decode("latin-1")

    def server(self, name: str) -> str:
        read = _SERVER.get(name)
        if read is not None:
            return read(self)
        if name.startswith("cookie_"):
            return _cookie(self.header(False, b"cookie"), name[7:])
        return ""


def _group(headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    grouped: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    return grouped


def _host(ctx: RequestContext) -> str:
    host = latin1(ctx.host.strip().lower())
    if host.startswith("["):
        end = host.find("]")
        return host if end < 0 else host[: end + 1]
    return host.partition(":")[0]


def _forwarded_for(scope: Scope) -> str:
    seen = scope.header(False, b"x-forwarded-for")
    client = latin1(scope.ctx.client_ip)
    return f"{seen}, {client}" if seen else client


def _request_uri(ctx: RequestContext) -> str:
    return latin1(f"{ctx.path}?{ctx.query}" if ctx.query else ctx.path)


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            return value
    return ""


def _client_certificate(field: str) -> Callable[[Scope], str]:
    """A client_certificate* variable: "" without mutual TLS; on a mutual TLS
    listener without a certificate, only _verification says something (NONE)."""

    def read(scope: Scope) -> str:
        certificate = scope.ctx.client_certificate
        return "" if certificate is None else str(getattr(certificate, field))

    return read


_CLIENT_CERTIFICATE = {
    "client_certificate": "pem",
    "client_certificate_subject": "subject",
    "client_certificate_issuer": "issuer",
    "client_certificate_serial": "serial",
    "client_certificate_fingerprint": "fingerprint",
    "client_certificate_start_date": "start_date",
    "client_certificate_end_date": "end_date",
    "client_certificate_verification": "verification",
}

# Application Gateway's server variables that a gateway without byte
# counters or authentication can know.
_SERVER: dict[str, Callable[[Scope], str]] = {
    **{name: _client_certificate(field) for name, field in _CLIENT_CERTIFICATE.items()},
    "add_x_forwarded_for_proxy": _forwarded_for,
    "client_ip": lambda s: latin1(s.ctx.client_ip),
    "client_port": lambda s: str(s.ctx.client_port),
    "host": lambda s: _host(s.ctx),
    "http_method": lambda s: latin1(s.ctx.method),
    "http_status": lambda s: "" if s.status is None else str(s.status),
    "http_version": lambda s: f"HTTP/{latin1(s.ctx.http_version)}",
    "query_string": lambda s: latin1(s.ctx.query),
    "request_query": lambda s: latin1(s.ctx.query),
    "request_scheme": lambda s: latin1(s.ctx.scheme),
    "request_uri": lambda s: _request_uri(s.ctx),
    "server_port": lambda s: str(s.ctx.server_port),
    "ssl_enabled": lambda s: "on" if s.ctx.scheme == "https" else "",
    "uri_path": lambda s: latin1(s.ctx.path),
}
