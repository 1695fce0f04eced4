"""The heads of an exchange, built as bytes: pure.

- The request head a backend gets, in one walk over the client's headers:
  what is hop-by-hop, the forwarding headers a client may not set, `Expect`
  (answered by the gateway itself) and the gateway's own (forwarding.py)
  go; the forwarding headers, the trace and the host override come; the
  rewrite rule set's result is applied last.
- The response head the client gets: the backend's headers less what is
  hop-by-hop, the framing the client can read, the affinity cookies, the
  rewrite rule set's response rules.
- Whether the client connection outlives the response: one decision.
"""

from __future__ import annotations

import attrs

from appgw.config.model import Server, Setting
from appgw.errors import BadGateway, BadRequest
from appgw.worker.codec import error_page
from appgw.worker.codec import headers as rules
from appgw.worker.codec.request import Request
from appgw.worker.codec.response_reader import ResponseHead
from appgw.worker.policy import forwarding
from appgw.worker.policy.rewrite import CompiledRuleSet, RequestRewrite
from appgw.worker.policy.variables import RequestContext


@attrs.frozen
class Rewrite:
    """A rewrite rule set's outcome for one request, kept for its response."""

    rule_set: CompiledRuleSet
    context: RequestContext
    result: RequestRewrite


_DROP = frozenset({b"expect"})  # answered by the gateway itself (100 Continue)
_DROP_TRACED = _DROP | forwarding.GATEWAY_HEADERS


def sticky(setting: Setting, request: Request) -> str | None:
    """The server the request's affinity cookie names, if the setting keeps affinity."""
    if not setting.cookie_based_affinity:
        return None
    return forwarding.affinity_cookie(request.headers, setting.affinity_cookie_name)


def host_override(setting: Setting, server: Server) -> bytes | None:
    """The Host the backend gets instead of the client's, if the setting says so."""
    if setting.host_name:
        return setting.host_name.encode()
    if setting.pick_host_name_from_backend_address:
        return server.host.encode()
    return None


def backend_head(
    request: Request,
    target: str,
    *,
    client: tuple[str, str, int],
    host: bytes | None,
    host_override: bytes | None,
    trace: forwarding.Trace | None,
    rewrite: RequestRewrite | None,
) -> bytes:
    """The head for `target`; `client` is the client's address, the scheme
    and the port it came to."""
    client_ip, scheme, port = client
    built = rules.request_headers(
        request.headers,
        client_ip=client_ip,
        scheme=scheme,
        port=port,
        host=host,
        host_override=host_override,
        content_length=request.content_length,
        chunked=request.chunked,
        websocket=request.websocket,
        drop=_DROP_TRACED if trace is not None else _DROP,
        tokens=request.connection,
    )
    if trace is not None:
        built += forwarding.trace_headers(trace)
    if rewrite is not None:
        built = rewrite.apply(built)
    encoded = target.encode("latin-1", "replace")
    if b" " in encoded or not encoded:
        raise BadRequest("request target with a space")
    return rules.build_head(request.method + b" " + encoded + b" HTTP/1.1\r\n", built)


def closes_after(
    *, closing: bool, draining: bool, unframed_for_client: bool, upload_unfinished: bool
) -> bool:
    """Whether the client connection ends with this response (said in its head).

    It does when the connection was to close already (the request asked, or
    an earlier step of the exchange decided so), when the worker drains,
    when the body can only be framed by the close (a body without a length
    to an HTTP/1.0 client), or when the request body is still on its way
    (the backend answered early; the rest has nowhere to go).
    """
    return closing or draining or unframed_for_client or upload_unfinished


def response_head(
    response: ResponseHead,
    *,
    close: bool,
    chunk_out: bool,
    cookies: list[bytes],
    rewrite: Rewrite | None,
    label: str,
) -> bytes:
    """The client's response head for the backend's `response` (`label` names
    the backend in an error)."""
    out = rules.response_headers(response.headers, close=close)
    if chunk_out:
        out.append((b"transfer-encoding", b"chunked"))
    out.extend((b"set-cookie", cookie) for cookie in cookies)
    if rewrite is not None:
        out = rewrite.rule_set.rewrite_response(rewrite.context, response.status, out)
    reason = response.reason or error_page.reason(response.status)
    try:
        return rules.build_head(b"HTTP/1.1 %d %s\r\n" % (response.status, reason), out)
    except BadGateway as exc:
        raise BadGateway(f"{label} sent an unusable response head: {exc}") from None
