"""A client request: routing, rewrites and redirects, then the exchange.

The request is routed (listener by Host, rule, path map); the rule's rewrite
rule set runs on it (and may reroute it once); a redirect is answered by the
gateway itself; anything else becomes an exchange with a backend
(exchange.py). Every request is counted and, when configured, logged.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import trio

from appgw import logs
from appgw.errors import BadRequest, GatewayError
from appgw.worker.codec import error_page as errorpage
from appgw.worker.codec import headers as rules
from appgw.worker.codec import strict
from appgw.worker.codec.request import Request
from appgw.worker.exchange import firewall_step
from appgw.worker.exchange.backend import Exchange
from appgw.worker.exchange.downstream import Downstream
from appgw.worker.exchange.heads import Rewrite
from appgw.worker.exchange.observe import Exchanged, count, observe
from appgw.worker.io.tls_stream import TlsStream
from appgw.worker.policy.forwarding import Trace
from appgw.worker.policy.routing import Route, redirect_location
from appgw.worker.policy.variables import RequestContext

log = logs.log


async def handle_request(client: Downstream, request: Request) -> None:
    started = time.monotonic()
    services = client.services
    original = target = request.target.decode("ascii", "replace")
    host = request.host
    route: Route | None = None
    exchange: Exchange | None = None
    trace: Trace | None = None
    status = 0
    failure: BaseException | None = None
    try:
        if not target.startswith("/"):
            target, host = _origin_form(target, host)
        if len(target) > client.limits.max_uri_bytes:
            raise GatewayError("request URI too long", status=414)
        trace = Trace.new(target)
        certificate = client.client_certificate
        if certificate is not None and certificate.refused:  # mutual TLS, strict: see mtls.py
            raise BadRequest(f"client certificate {certificate.verification}")
        path = target.partition("?")[0]
        route = services.router.route(client.socket.bound, host, path)
        if route is None:
            raise GatewayError(f"no listener for host {host!r}", status=404)
        if services.firewall is not None:
            # The WAF screens the request as the client sent it (worker/exchange/firewall_step.py).
            request, status = await firewall_step.screen(
                client, request, route, host, target, trace.trace_id
            )
            if status:
                return  # a custom block response, sent
        rewrite = None
        if route.rewrite_rule_set is not None and route.redirect is None:
            route, target, rewrite = _rewrite(client, request, route, host, target)
        if route.redirect is not None:
            status = await _redirect(client, route, host, target)
            return
        exchange = Exchange(client, request, route, host, target, rewrite, trace)
        await exchange.run()
        status = exchange.status
    except GatewayError as exc:
        status, failure = exc.status, exc
        raise
    except BaseException as exc:
        failure = exc
        if exchange is not None and client.response_started:
            status = exchange.status
        raise
    finally:
        # -- observability: one record, one call (worker/exchange/observe.py) --
        status = client_status(status, request.version)
        if logs.access_log.enabled:
            record = _exchanged(
                client, request, started, status, failure, route, exchange, original, host, trace
            )
            observe(services, record)
        else:
            _count(client, started, status, failure, route, exchange, host)


def client_status(status: int, version: str) -> int:
    """The status the client received: a WebSocket over HTTP/2 is answered
    `:status 200` for the backend's 101 (RFC 8441 5)."""
    return 200 if status == 101 and version == "2.0" else status


def _count(
    client: Downstream,
    started: float,
    status: int,
    failure: BaseException | None,
    route: Route | None,
    exchange: Exchange | None,
    host: bytes | None,
) -> None:
    """The metrics alone, when there is no access log: no record is built."""
    tunnel = exchange.tunnel if exchange is not None else None
    sent = _sent(client, status, failure, host)
    if route is None:
        listener = rule = pool = ""
    else:
        listener, rule = route.listener.name, route.rule
        pool = route.pool.name if route.pool is not None else ""
    backend = (
        ()
        if exchange is None
        else (exchange.server, exchange.status, exchange.connect_seconds, exchange.latency)
    )
    count(
        client.services,
        client.received + (tunnel.client_bytes if tunnel else 0),
        sent + (tunnel.backend_bytes if tunnel else 0),
        status,
        failure,
        None if tunnel is not None else time.monotonic() - started,
        listener,
        rule,
        pool,
        *backend,
    )


def _sent(
    client: Downstream, status: int, failure: BaseException | None, host: bytes | None
) -> int:
    """Body bytes sent to the client, the error page about to be sent included."""
    if isinstance(failure, GatewayError) and not client.response_started:
        # The error page about to be sent (connection.py): the custom one if any.
        custom = client.services.error_pages.page(client.socket.bound, host, status)
        return len(custom[0]) if custom else len(errorpage.body(status))
    return client.sent


def _exchanged(
    client: Downstream,
    request: Request,
    started: float,
    status: int,
    failure: BaseException | None,
    route: Route | None,
    exchange: Exchange | None,
    original: str,
    host: bytes | None,
    trace: Trace | None,
) -> Exchanged:
    """What the access log and the metrics need to know of this request."""
    sent = _sent(client, status, failure, host)
    # What only the access log shows is looked up only when there is one.
    tls_protocol = tls_cipher = user_agent = ""
    if logs.access_log.enabled:
        if isinstance(client.stream, (TlsStream, trio.SSLStream)):
            tls_protocol = client.stream.version() or ""
            cipher = client.stream.cipher()
            tls_cipher = cipher[0] if cipher else ""
        user_agent = (rules.header_value(request.headers, b"user-agent") or b"").decode("latin-1")
    original_host = (host or b"").decode("latin-1")
    forwarded_host = original_host
    if exchange is not None and exchange.setting.host_name:
        forwarded_host = exchange.setting.host_name
    tunnel = exchange.tunnel if exchange is not None else None
    received = client.received + (tunnel.client_bytes if tunnel else 0)
    seconds = time.monotonic() - started
    return Exchanged(
        time=time.time() - seconds,
        client_ip=client.peer[0],
        client_port=client.peer[1],
        status=status,
        seconds=seconds,
        method=request.method.decode("ascii", "replace"),
        uri=exchange.target if exchange is not None else original,
        original_uri=original,
        host=forwarded_host,
        original_host=original_host,
        user_agent=user_agent,
        http_version="HTTP/" + request.version,
        received_bytes=received,
        sent_bytes=sent + (tunnel.backend_bytes if tunnel else 0),
        tls_protocol=tls_protocol,
        tls_cipher=tls_cipher,
        listener=route.listener.name if route is not None else "",
        rule=route.rule if route is not None else "",
        pool=route.pool.name if route is not None and route.pool is not None else "",
        setting=route.setting.name if route is not None and route.setting is not None else "",
        server=exchange.server if exchange is not None else "",
        server_status=exchange.status if exchange is not None else 0,
        server_latency=exchange.latency if exchange is not None else None,
        connect_seconds=exchange.connect_seconds if exchange is not None else None,
        upstream_port=exchange.source_port if exchange is not None else 0,
        trace_id=trace.trace_id if trace is not None else "",
        failure=failure,
        tunnel=tunnel,
    )


def _rewrite(
    client: Downstream, request: Request, route: Route, host: bytes | None, target: str
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
        http_version=request.version,
        client_certificate=client.client_certificate,
    )
    rule_set = client.services.rewrites[route.rewrite_rule_set.name]
    result = rule_set.rewrite_request(context)
    if result.url_rewritten:
        target = result.target
        if result.reroute:
            rerouted = client.services.router.route(client.socket.bound, host, result.path)
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
    authority = parts.netloc.encode()
    problem = strict.authority_problem(authority, host)
    if problem:
        raise BadRequest(problem)
    return path, authority


async def _redirect(client: Downstream, route: Route, host: bytes | None, target: str) -> int:
    assert route.redirect is not None
    location = redirect_location(route, route.redirect, client.services.config, host, target)
    status = route.redirect.status
    await _discard_body(client)
    value = location.encode("latin-1", "replace")
    if b"\r" in value or b"\n" in value:
        raise GatewayError("redirect location with a line break", status=500)
    head = b"HTTP/1.1 %d %s\r\nlocation: %s\r\ncontent-length: 0\r\n" % (
        status,
        errorpage.reason(status),
        value,
    )
    if client.closing:
        head += b"connection: close\r\n"
    await client.send_head(head + b"\r\n")
    return status


async def _discard_body(client: Downstream, limit: int = 1024 * 1024) -> None:
    """Read and drop a small request body so the connection can be reused."""
    seen = 0
    with trio.move_on_after(client.limits.request_timeout):
        while not client.request_done and seen <= limit:
            piece = await client.receive_body()
            if piece is not None:
                seen += len(piece)
    if not client.request_done:
        client.close_after()
