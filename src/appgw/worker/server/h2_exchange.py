"""One request stream served: the exchange, and this one place where its
errors become answers (as server/http1.py's loop does for HTTP/1.1).

A GatewayError raised before the response started becomes the gateway's
error page (the listener's or the gateway's custom one, or appgw's); after,
and for a backend that broke off, the stream is reset; a client that reset
the stream or went away ends the exchange quietly. A head refused by the
codec (HeadersRefused: over a header limit) is answered at once, without an
exchange. Requests refused before an exchange began are counted and logged
here; every other one by the exchange itself (exchange/handler.py).
"""

from __future__ import annotations

from time import monotonic

from appgw import logs
from appgw.errors import BackendAborted, ClientGone, GatewayError
from appgw.worker.codec import error_page as errorpage
from appgw.worker.codec.h2_events import ErrorCode
from appgw.worker.codec.h2_message import Fields, request_of
from appgw.worker.exchange.downstream import Handler
from appgw.worker.exchange.observe import observe_refused
from appgw.worker.server.h2_stream import H2Stream

log = logs.log

HTML = b"text/html; charset=utf-8"


async def serve_stream(
    stream: H2Stream, handle: Handler, fields: Fields, end_stream: bool, websocket: bool
) -> None:
    """Run the request on `stream` to its end with `handle` (exchange/handler.py)."""
    arrived = monotonic()
    request = None
    peer = stream.peer[0]
    try:
        with stream.scope:  # cancelled by the client's reset
            try:
                request = stream.request = request_of(fields, end_stream, websocket=websocket)
                await handle(stream, request)
            except GatewayError as exc:
                await _failed(stream, exc, request is None, arrived)
            except ClientGone:
                stream.abort(ErrorCode.CANCEL)
            except BackendAborted as exc:
                log.info("resetting stream %d of %s: %s", stream.id, peer, exc)
                stream.abort()
    except Exception:  # noqa: BLE001 - one stream's bug must not end the connection
        log.exception("HTTP/2 stream %d from %s failed", stream.id, peer)
        stream.abort()
    finally:
        stream.finish()


async def _failed(stream: H2Stream, exc: GatewayError, unread: bool, arrived: float) -> None:
    """A GatewayError: the gateway's error page, or a reset once the response started."""
    peer = stream.peer[0]
    if stream.response_started:
        log.info("resetting stream %d of %s: %s", stream.id, peer, exc)
        stream.abort()
        return
    log.info("%s %s: %s", exc.status, peer, exc.detail or type(exc).__name__)
    request = stream.request
    host = None if request is None else request.host
    page, content_type = stream.services.error_pages.page(
        stream.socket.bound, host, exc.status
    ) or (errorpage.body(exc.status), HTML)
    try:
        await stream.send_head(
            errorpage.head(exc.status, len(page), False, exc.headers, content_type), page
        )
    except ClientGone:
        stream.abort(ErrorCode.CANCEL)
    finally:
        if unread:  # refused before the exchange began: counted and logged here
            _observe_refused(stream, exc.status, exc, arrived)


def refuse(stream: H2Stream, status: int) -> None:
    """A head over the limits: its status (431) at once, no exchange."""
    try:
        page, content_type = stream.services.error_pages.page(
            stream.socket.bound, None, status
        ) or (errorpage.body(status), HTML)
        stream.send_head_now(errorpage.head(status, len(page), False, (), content_type), page)
        error = GatewayError("request header fields too large", status=status)
        _observe_refused(stream, status, error, monotonic())
    finally:
        stream.finish()


def _observe_refused(stream: H2Stream, status: int, failure: BaseException, arrived: float) -> None:
    observe_refused(
        stream.services,
        stream.peer,
        monotonic() - arrived,
        status,
        failure,
        stream.received,
        stream.sent,
        "HTTP/2.0",
    )


__all__ = ["refuse", "serve_stream"]
