"""What an exchange leaves behind: one record, counted and logged.

The request path builds one `Exchanged` value when a request is over
(answered, refused, broken off, or its tunnel closed) and calls
`observe(worker, record)` once. That is the whole surface between the
engine and observability:
- the worker's metrics (metrics.WorkerMetrics) are updated in memory;
- the access log gets one JSON line (access_entry), if configured.
Nothing else is written, nothing is locked, nothing waits. With no access
log, a request calls `count` alone, with just what the metrics need, and
no record is built (the per-request path's fast path).

Fields the engine does not know are left at their defaults ("" / 0 /
None). Times are seconds. `failure` is the exception that ended the
exchange, if any; error_info() turns it into Application Gateway's
ERRORINFO_* code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import attrs

from appgw import logs
from appgw.errors import (
    BackendAborted,
    BadGateway,
    BadRequest,
    ClientGone,
    GatewayError,
    GatewayTimeout,
    RequestTimeout,
)

if TYPE_CHECKING:
    from appgw.worker.exchange.downstream import Context
    from appgw.worker.tunnel.tunnel import TunnelEnd


@attrs.frozen(slots=True)
class Exchanged:
    """One request as the access log and the metrics see it."""

    time: float  # wall clock (time.time()) when the request arrived
    client_ip: str
    client_port: int
    status: int  # sent to the client; 0 if nothing was
    seconds: float  # from the request's arrival to its end (the tunnel's end for a 101)
    method: str = ""
    uri: str = ""  # as sent on (after URL rewrites), path and query
    original_uri: str = ""  # as the client sent it
    host: str = ""  # as sent to the backend (after host overrides)
    original_host: str = ""  # as the client sent it
    user_agent: str = ""
    http_version: str = ""
    received_bytes: int = 0  # from the client: head, body (and tunnel)
    sent_bytes: int = 0  # to the client: body (and tunnel)
    tls_protocol: str = ""  # "" on plain HTTP
    tls_cipher: str = ""
    listener: str = ""
    rule: str = ""
    pool: str = ""
    setting: str = ""
    server: str = ""  # "host:port" of the backend server that answered
    server_status: int = 0
    server_latency: float | None = None  # request sent -> response head received
    connect_seconds: float | None = None  # only when a new connection was opened
    upstream_port: int = 0  # the gateway's source port towards the server
    trace_id: str = ""
    failure: BaseException | None = None
    tunnel: TunnelEnd | None = None


def observe(services: Context, record: Exchanged) -> None:
    """Count and log one finished exchange."""
    count(
        services,
        record.received_bytes,
        record.sent_bytes,
        record.status,
        record.failure,
        None if record.tunnel is not None else record.seconds,
        record.listener,
        record.rule,
        record.pool,
        record.server,
        record.server_status,
        record.connect_seconds,
        record.server_latency,
    )
    access = logs.access_log
    if access.enabled:
        access.write(access_entry(record, error_info(record)))


def observe_refused(
    services: Context,
    peer: tuple[str, int],
    seconds: float,
    status: int,
    failure: BaseException,
    received: int,
    sent: int,
    http_version: str = "",
) -> None:
    """Count and log a request refused before it was read whole (its head
    over a limit, malformed, timed out): only what the connection knows."""
    observe(
        services,
        Exchanged(
            time=time.time() - seconds,
            client_ip=peer[0],
            client_port=peer[1],
            status=status,
            seconds=seconds,
            http_version=http_version,
            received_bytes=received,
            sent_bytes=sent,
            failure=failure,
        ),
    )


def count(
    services: Context,
    received_bytes: int,
    sent_bytes: int,
    status: int,
    failure: BaseException | None,
    seconds: float | None,
    listener: str,
    rule: str,
    pool: str,
    server: str = "",
    server_status: int = 0,
    connect_seconds: float | None = None,
    server_latency: float | None = None,
) -> None:
    """The metrics of one finished exchange: what `observe` counts of a record.

    With no access log, the request path calls this alone and builds no
    record (the fields mean what Exchanged's do; `seconds` None for a tunnel).
    """
    metrics = services.metrics
    metrics.received_bytes += received_bytes
    metrics.sent_bytes += sent_bytes
    failed = status >= 500 or isinstance(failure, BackendAborted)
    metrics.request(listener, rule, pool, status, failed, seconds)
    if server:
        metrics.backend(pool, server, server_status, connect_seconds, server_latency)


# Application Gateway's error_info codes, by what went wrong.
NO_ERROR = "ERRORINFO_NO_ERROR"
_BY_STATUS = {
    400: "ERRORINFO_INVALID_REQUEST",
    404: "ERRORINFO_INVALID_HOST",
    405: "ERRORINFO_INVALID_METHOD",
    408: "ERRORINFO_CLIENT_TIMED_OUT",
    411: "ERRORINFO_INVALID_CONTENT_LENGTH",
    413: "ERRORINFO_REQUEST_ENTITY_TOO_LARGE",
    414: "ERRORINFO_REQUEST_URI_TOO_LONG",
    426: "ERRORINFO_INVALID_REQUEST",
    431: "ERRORINFO_INVALID_HEADER",
    502: "ERRORINFO_UPSTREAM_CLOSED_CONNECTION",
    504: "ERRORINFO_UPSTREAM_TIMED_OUT",
}


def error_info(record: Exchanged) -> str:
    failure = record.failure
    if failure is None:
        return NO_ERROR
    if isinstance(failure, BadGateway) and not record.server:
        return "ERRORINFO_UPSTREAM_NO_LIVE"  # no server could be reached
    if isinstance(failure, GatewayTimeout):
        return "ERRORINFO_UPSTREAM_TIMED_OUT"
    if isinstance(failure, RequestTimeout):
        return "ERRORINFO_CLIENT_TIMED_OUT"
    if isinstance(failure, BadRequest):
        return "ERRORINFO_INVALID_REQUEST"
    if isinstance(failure, GatewayError):
        return _BY_STATUS.get(failure.status, "ERRORINFO_INVALID_REQUEST")
    if isinstance(failure, BackendAborted):
        return "ERRORINFO_UPSTREAM_CLOSED_CONNECTION"
    if isinstance(failure, ClientGone):
        return "ERRORINFO_CLIENT_CLOSED_REQUEST"
    if record.status in _BY_STATUS:  # a protocol error of the client's request
        return _BY_STATUS[record.status]
    return "ERRORINFO_INVALID_REQUEST" if 400 <= record.status < 500 else NO_ERROR


def _stamp(when: float) -> str:
    seconds = int(when)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        f".{int((when - seconds) * 1e6):06d}Z"
    )


def access_entry(r: Exchanged, error_info: str) -> dict[str, object]:
    """One exchange as an access-log object, with Application Gateway's field names.

    Azure's fields come first; a tunnel's line adds appgw's own `tunnel*`
    fields (Azure has none for a WebSocket session).
    """
    entry: dict[str, object] = {
        "timeStamp": _stamp(r.time),
        "clientIP": r.client_ip,
        "clientPort": r.client_port,
        "httpMethod": r.method,
        "requestUri": r.uri,
        "originalRequestUriWithArgs": r.original_uri,
        "originalHost": r.original_host,
        "host": r.host,
        "userAgent": r.user_agent,
        "httpStatus": r.status,
        "httpVersion": r.http_version,
        "receivedBytes": r.received_bytes,
        "sentBytes": r.sent_bytes,
        "timeTaken": round(r.seconds, 6),
        "sslEnabled": "on" if r.tls_protocol else "off",
        "sslProtocol": r.tls_protocol,
        "sslCipher": r.tls_cipher,
        "listenerName": r.listener,
        "ruleName": r.rule,
        "backendPoolName": r.pool,
        "backendSettingName": r.setting,
        "serverRouted": r.server,
        "serverStatus": str(r.server_status) if r.server_status else "",
        "serverResponseLatency": ("" if r.server_latency is None else f"{r.server_latency:.3f}"),
        "upstreamSourcePort": str(r.upstream_port) if r.upstream_port else "",
        "transactionId": r.trace_id,
        "error_info": error_info,
    }
    if r.tunnel is not None:
        entry["tunnelDuration"] = round(r.tunnel.duration, 6)
        entry["tunnelBytesFromClient"] = r.tunnel.client_bytes
        entry["tunnelBytesFromBackend"] = r.tunnel.backend_bytes
        entry["tunnelClosedBy"] = r.tunnel.closed_by
        entry["tunnelCloseCode"] = r.tunnel.code
        entry["tunnelCloseReason"] = r.tunnel.reason
    return entry
