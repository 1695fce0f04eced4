"""The WAF's step in the request path: between routing and the exchange.

After routing picked the listener and path rule, the policy attached there
(path rule, else listener, else gateway) screens the request: its body's
size against the policy's limits (413), its body read ahead when the policy
inspects bodies (at most `max_request_body_size_kb`, then handed back to the
connection so the exchange streams it as if unread), then the decision of
the firewall (waf/firewall.py). Every rule that matched goes to the
firewall log; a blocked request is answered here (the policy's status and
body, or the gateway's 403 page) and never reaches a backend. A WebSocket
upgrade is screened like any request; nothing after its 101 is.

A gateway without policies has no firewall: `screen` returns at once, and
nothing of appgw.waf is imported.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from appgw import logs
from appgw.errors import GatewayError
from appgw.worker.codec import error_page as errorpage
from appgw.worker.codec import headers as rules
from appgw.worker.codec.request import Request
from appgw.worker.exchange.downstream import Downstream
from appgw.worker.policy.routing import Route

if TYPE_CHECKING:
    from appgw.waf.firewall import Decision, Firewall

log = logs.log


class Blocked(GatewayError):
    """A request the WAF blocked (its status is the policy's)."""

    status = 403


def build(config: Any) -> Firewall | None:
    """The worker's firewall, or None for a configuration without WAF policies."""
    if not config.waf_policies:
        return None
    from appgw.waf.firewall import Firewall

    firewall = Firewall(config)
    logs.firewall_log.open(config.firewall_log)
    return firewall


async def screen(
    client: Downstream,
    request: Request,
    route: Route,
    host: bytes | None,
    target: str,
    trace_id: str,
) -> tuple[Request, int]:
    """The request passed by the firewall (its body maybe read ahead), and 0;
    or the status of a custom block response already sent. Raises Blocked
    for a block answered with the gateway's own page."""
    firewall: Firewall | None = client.services.firewall
    if firewall is None:
        return request, 0
    attached = firewall.attached(route.rule, route.listener.name, route.path_rule)
    if attached is None:
        return request, 0
    policy = attached.policy.policy
    content_type = (rules.header_value(request.headers, b"content-type") or b"").lower()
    upload = content_type.startswith(b"multipart/form-data")
    limit = policy.max_request_body_size_kb * 1024
    if upload:
        enforced, bound = policy.file_upload_enforcement, policy.file_upload_limit_mb << 20
    else:
        enforced, bound = policy.request_body_enforcement, limit
    length = request.content_length
    if enforced and length is not None and length > bound:
        _report(client, host, target, trace_id, firewall.refuse(attached, f"{length} > {bound}"))
        raise Blocked("request body too large for the WAF policy", status=413)
    body: bytes | None = None
    over = False
    if attached.policy.inspects_body and request.body_expected:
        request, body, over = await _read_ahead(client, request, limit)
        if over and enforced and not upload:
            _report(client, host, target, trace_id, firewall.refuse(attached, f"over {bound}"))
            raise Blocked("request body too large for the WAF policy", status=413)
    transaction = _transaction(client, request, target, body, trace_id, over)
    # What the custom rules look at, only for a policy that has some.
    facts = _facts(client, request, target, body) if attached.policy.custom else None
    decision = firewall.inspect(attached, transaction, facts)
    _report(client, host, target, trace_id, decision)
    if not decision.blocked:
        return request, 0
    if decision.body is not None:
        await _answer(client, decision.status, decision.body)
        return request, decision.status
    ids = ", ".join(e.rule_id for e in decision.entries if e.action != "Matched")
    raise Blocked(f"blocked by WAF policy {policy.name} ({ids})", status=decision.status)


def _transaction(
    client: Downstream,
    request: Request,
    target: str,
    body: bytes | None,
    trace_id: str,
    partial: bool,
) -> Any:
    """What ModSecurity is given of the request."""
    from appgw.waf.engine import Transaction

    server = client.socket.bound
    return Transaction(
        client=(client.peer[0], client.peer[1]),
        server=(server[0], client.socket.port),
        method=request.method,
        uri=target.encode("latin-1", "replace"),
        version=request.version.encode(),
        headers=tuple(request.headers),
        body=body,
        partial=partial,
        unique_id=trace_id,
    )


def _facts(client: Downstream, request: Request, target: str, body: bytes | None) -> Any:
    """What the custom rules are given of the request."""
    from appgw.waf.custom import Facts, form_args

    table: dict[str, str] = {}
    for name, value in request.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        table[key] = f"{table[key]}, {text}" if key in table else text
    cookies: dict[str, str] = {}
    for part in table.get("cookie", "").split(";"):
        cookie, eq, cookie_value = part.strip().partition("=")
        if eq:
            cookies.setdefault(cookie, cookie_value)
    forwarded = table.get("x-forwarded-for", "").split(",")[0].strip()
    text_body = body.decode("latin-1") if body else ""
    form = table.get("content-type", "").lower().startswith("application/x-www-form-urlencoded")
    return Facts(
        remote_addr=forwarded or client.peer[0],
        socket_addr=client.peer[0],
        method=request.method.decode("latin-1"),
        uri=target,
        query=target.partition("?")[2],
        headers=table,
        cookies=cookies,
        body=text_body,
        post_args=form_args(text_body) if form else {},
    )


async def _read_ahead(
    client: Downstream, request: Request, limit: int
) -> tuple[Request, bytes, bool]:
    """Up to `limit` bytes of the body, handed back to the connection to be read
    again; whether the body is longer."""
    if request.expect_continue:
        await client.send_continue()
        request = request._replace(expect_continue=False)
    pieces: list[bytes] = []
    seen = 0
    while seen <= limit:
        piece = await client.receive_body()
        if piece is None:
            break
        pieces.append(piece)
        seen += len(piece)
    client.replay_body(pieces)
    return request, b"".join(pieces)[:limit], seen > limit


async def _answer(client: Downstream, status: int, body: bytes) -> None:
    """The policy's custom block response (the body is the policy's, as is)."""
    head = b"HTTP/1.1 %d %s\r\ncontent-type: text/html\r\ncontent-length: %d\r\n" % (
        status,
        errorpage.reason(status),
        len(body),
    )
    if client.closing or not client.request_done:
        head += b"connection: close\r\n"
        client.close_after()
    await client.send_head(head + b"\r\n", body)
    client.sent = len(body)


def _report(
    client: Downstream, host: bytes | None, target: str, trace_id: str, decision: Decision
) -> None:
    """The firewall log's lines and the WAF metrics of one decision."""
    from appgw.waf.report import firewall_entries, metric_labels

    client.services.metrics.firewall(*metric_labels(decision))
    name = (host or b"").decode("latin-1")
    for entry in firewall_entries(decision, client.peer, name, target, trace_id):
        if logs.firewall_log.enabled:
            logs.firewall_log.write(entry)
        else:
            log.warning("firewall: %s", json.dumps(entry, separators=(",", ":")))
