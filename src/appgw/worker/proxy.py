"""A client request: routing, rewrites and redirects, then the exchange.

The request is routed (listener by Host, rule, path map); the rule's rewrite
rule set runs on it (and may reroute it once); a redirect is answered by the
gateway itself; anything else becomes an exchange with a backend
(exchange.py). Every request is counted and, when configured, logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h11
import trio

from appgw import logs
from appgw.errors import BadRequest, GatewayError
from appgw.worker import headers as rules
from appgw.worker.exchange import Exchange, Rewrite
from appgw.worker.forwarding import Trace
from appgw.worker.routing import Route, redirect_location
from appgw.worker.variables import RequestContext

if TYPE_CHECKING:
    from appgw.worker.connection import ClientConnection

log = logs.log


async def handle_request(client: ClientConnection, request: h11.Request) -> None:
    started = time.monotonic()
    worker = client.worker
    target = request.target.decode("ascii", "replace")
    host = rules.header_value(request.headers, b"host")
    if not target.startswith("/"):
        target, host = _origin_form(target, host)
    if len(target) > client.limits.max_uri_bytes:
        raise GatewayError("request URI too long", status=414)
    trace = Trace.new(target)
    path = target.partition("?")[0]
    certificate = client.client_certificate
    if certificate is not None and certificate.refused:  # mutual TLS, strict: see mtls.py
        raise BadRequest(f"client certificate {certificate.verification}")
    route = worker.router.route(client.socket.bound, host, path)
    status = 0
    upstream_label = ""
    try:
        if route is None:
            raise GatewayError(f"no listener for host {host!r}", status=404)
        rewrite = None
        if route.rewrite_rule_set is not None and route.redirect is None:
            route, target, rewrite = _rewrite(client, request, route, host, target)
        if route.redirect is not None:
            status = await _redirect(client, route, host, target)
            return
        exchange = Exchange(client, request, route, host, target, rewrite, trace)
        await exchange.run()
        status, upstream_label = exchange.status, exchange.upstream_label
    except GatewayError as exc:
        status = exc.status
        raise
    finally:
        worker.counters.exchange(status, client.sent)
        logs.access_line(
            client.peer[0],
            request.method.decode("ascii", "replace"),
            target,
            status,
            client.sent,
            time.monotonic() - started,
            upstream_label,
            (host or b"").decode("latin-1"),
            trace.trace_id,
        )


def _rewrite(
    client: ClientConnection, request: h11.Request, route: Route, host: bytes | None, target: str
) -> tuple[Route, str, Rewrite]:
    """Apply the route's rewrite rule set to the request.

    A URL rewrite with reroute re-evaluates routing once with the new path
    (the new route's own rewrite set does not run again, so rules cannot
    loop).
    """
    assert route.rewrite_rule_set is not None
    path, _, query = target.partition("?")
    context = RequestContext(
        client_ip=client.peer[0],
        client_port=client.peer[1],
        server_port=client.socket.port,
        scheme=client.scheme,
        method=request.method.decode("ascii", "replace"),
        path=path,
        query=query,
        host=(host or b"").decode("latin-1"),
        headers=list(request.headers),
        http_version=request.http_version.decode("ascii", "replace"),
        client_certificate=client.client_certificate,
    )
    rule_set = client.worker.rewrites[route.rewrite_rule_set.name]
    result = rule_set.rewrite_request(context)
    if result.url_rewritten:
        target = result.target
        if result.reroute:
            rerouted = client.worker.router.route(client.socket.bound, host, result.path)
            if rerouted is None:
                raise GatewayError("no route after URL rewrite", status=404)
            route = rerouted
    return route, target, Rewrite(rule_set, context, result)


def _origin_form(target: str, host: bytes | None) -> tuple[str, bytes | None]:
    """An absolute-form target becomes origin-form; its authority is the host."""
    if target == "*":
        raise BadRequest("asterisk-form is only for OPTIONS to a server, not a gateway")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest("request target must be origin-form or absolute-form")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path, parts.netloc.encode()


async def _redirect(client: ClientConnection, route: Route, host: bytes | None, target: str) -> int:
    assert route.redirect is not None
    location = redirect_location(route, route.redirect, client.worker.config, host, target)
    status = route.redirect.status
    await _discard_body(client)
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    if client.closing:
        headers.append((b"connection", b"close"))
    await client.send(h11.Response(status_code=status, headers=headers))
    await client.send(h11.EndOfMessage())
    return status


async def _discard_body(client: ClientConnection, limit: int = 1024 * 1024) -> None:
    """Read and drop a small request body so the connection can be reused."""
    seen = 0
    with trio.move_on_after(client.limits.request_timeout):
        while client.h11.their_state is h11.SEND_BODY and seen <= limit:
            event = await client.next_event()
            if isinstance(event, h11.Data):
                seen += len(event.data)
    if client.h11.their_state is not h11.DONE:
        client.closing = True
