"""One HTTP/2 client connection (ALPN h2 on an HTTPS listener).

How it works: the codec (codec/h2_session.py, libnghttp2) is sans-IO, and
this connection is its I/O. One task reads the socket and feeds the codec;
the events that come out open request streams, hand them their body,
reset them or end the connection. A second task, the writer, sends what
the codec has to send (`pending`) in one write per batch: whatever every
stream queued since the last write leaves together. Each request stream
runs the same exchange as an HTTP/1.1 request (exchange/handler.py) in a
task of its own, through h2_stream.py's Downstream; a client's reset
cancels that task (the backend connection is dropped with it).

Limits and lifecycle, as Application Gateway does it ([gateway.http2]):
the `max_requests`-th request and `idle_timeout` seconds without an open
stream retire the connection with GOAWAY (its last stream id: the streams
in flight finish, no new ones start); so does a drain, whose deadline
(the worker's handler nursery) bounds the streams in flight. The header
limits, the concurrent streams and the floods a hostile client can send
are the codec's. Once the codec has nothing more to read or write
(`closed`), the connection closes.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

import trio

from appgw import logs
from appgw.errors import STREAM_ERRORS
from appgw.worker.codec.h2_events import (
    ConnectionEnded,
    ErrorCode,
    HeadersRefused,
    RequestData,
    RequestHeaders,
    RequestTrailers,
    StreamReset,
    WindowOpened,
)
from appgw.worker.codec.h2_session import H2Session
from appgw.worker.codec.h2_settings import H2Settings
from appgw.worker.io.duplex import Duplex
from appgw.worker.io.endpoint import INF, Endpoint, Expired, abort
from appgw.worker.server.h2_exchange import refuse, serve_stream
from appgw.worker.server.h2_stream import H2Stream

if TYPE_CHECKING:
    from appgw.config.model import Http2
    from appgw.mtls import ClientCertificate
    from appgw.worker.exchange.downstream import ListeningSocket
    from appgw.worker.server.http1 import Served

log = logs.log

LINGER = 1.0  # seconds what a client still sends is read before the close
TUNNEL_END_BUDGET = 2.0  # seconds the tunnels of a connection that ended have to end

_WRITE_ERRORS: tuple[type[Exception], ...] = (*STREAM_ERRORS, Expired)


def codec_settings(http2: Http2) -> H2Settings:
    """What the codec advertises and enforces, from [gateway.http2]."""
    return H2Settings(
        max_concurrent_streams=http2.max_concurrent_streams,
        initial_window_bytes=http2.initial_window_bytes,
        max_header_field_bytes=http2.max_header_field_bytes,
        max_header_list_bytes=http2.max_header_list_bytes,
        enable_connect_protocol=http2.websocket,
    )


class Http2Connection:
    def __init__(
        self,
        services: Served,
        stream: trio.abc.Stream,
        socket: ListeningSocket,
        peer: tuple[str, int],
    ) -> None:
        self.services = services
        self.stream = stream
        self.socket = socket
        self.peer = peer
        self.limits = services.limits
        self.http2 = services.config.gateway.http2
        self.session = H2Session(codec_settings(self.http2))
        self.endpoint = Endpoint(stream, services.timer)
        self.reading = Duplex(self.endpoint, self.flush)  # the reader, beside the writer
        self.client_certificate: ClientCertificate | None = None
        self.streams: dict[int, H2Stream] = {}
        self.requests = 0
        self.retired = False  # GOAWAY sent: the streams in flight are the last
        self._highest = 0  # the last stream opened
        self._last = 1 << 31  # GOAWAY's last stream id: later streams are refused
        self._nursery: trio.Nursery | None = None
        self._dirty = trio.Event()  # the writer has something to send
        self._over = trio.Event()  # the connection is done
        self._in_flight = 0  # bytes of the batch the writer waits to send
        self._parked: list[H2Stream] = []  # streams waiting for the writer's batch
        self._client_closed = False  # the client closed (or broke) its side
        self._last_streams: trio.Event | None = None  # set once the connection's end is seen
        # Streams answered whole while the client's request goes on: reset
        # (NO_ERROR) once the response's end is out (RFC 9113 8.1).
        self._half_open: list[int] = []

    # -- what the worker sees (main.py) --------------------------------------

    @property
    def idle(self) -> bool:
        """A drain reaches every HTTP/2 connection: cut_idle retires it."""
        return True

    def cut_idle(self, at: float) -> None:
        """A drain: GOAWAY; the streams in flight finish (by the drain's deadline)."""
        self.retire("the worker drains")

    def retire(self, why: str, last: int | None = None) -> None:
        """GOAWAY: the streams up to `last` (the last opened) finish, no more start."""
        if not self.retired:
            self.retired = True
            self._last = self._highest if last is None else last
            log.debug("HTTP/2 connection from %s retired: %s", self.peer[0], why)
            self.session.goaway(ErrorCode.NO_ERROR, self._last)
            self.flush()
            self._check_closed()

    # -- writing -------------------------------------------------------------

    def flush(self) -> None:
        """The codec has something to send: the writer sends it with the batch."""
        self._dirty.set()

    @property
    def backlogged(self) -> bool:
        """Whether the writer waits for the client to read (its socket is full)."""
        return self._in_flight > 0

    async def written(self, stream: H2Stream) -> None:
        """Wait for the writer to send the batch it is on."""
        self._parked.append(stream)
        await stream.written()

    async def _write(self) -> None:
        session = self.session
        endpoint = self.endpoint
        timeout = self.limits.request_timeout
        try:
            while True:
                data = session.pending()
                if not data and self._half_open and self._stop_requests():
                    continue
                if not data and self.reading.flush_wanted:
                    self._in_flight = 1
                    await self.reading.flush(timeout)  # what a read left to send
                    self._in_flight = 0
                    continue
                if not data:
                    if self._check_closed():
                        return
                    self._dirty = trio.Event()
                    await self._dirty.wait()
                    continue
                self._in_flight = len(data)
                await endpoint.write(data, timeout)
                self._in_flight = 0
                self.reading.wrote()
                if self._parked:
                    parked, self._parked = self._parked, []
                    for stream in parked:
                        stream.wake()
        except _WRITE_ERRORS:
            self._end("the client stopped reading" if self._in_flight else "the client is gone")

    def _stop_requests(self) -> bool:
        """RST_STREAM NO_ERROR for the answered streams whose response left
        whole; whether there are any (their resets are then to send)."""
        waiting = []
        stopped = False
        for stream_id in self._half_open:
            if self.session.response_sent(stream_id):
                self.session.reset(stream_id, ErrorCode.NO_ERROR)
                stopped = True
            else:
                waiting.append(stream_id)
        self._half_open = waiting
        return stopped

    def _check_closed(self) -> bool:
        """Whether the codec is done (nothing more to read or write): then so is the connection."""
        if self.session.closed and not self.streams:
            self._over.set()
            return True
        return False

    def _end(self, why: str) -> None:
        """The connection is over: every stream's exchange stops."""
        for stream in list(self.streams.values()):
            stream.gone(why)
        self._over.set()

    # -- reading -------------------------------------------------------------

    async def _read(self) -> None:
        endpoint = self.endpoint
        session = self.session
        endpoint.read_by(monotonic() + self.limits.header_timeout)  # the preface
        while True:
            try:
                data = await self.reading.read()
            except Expired:
                if self.streams:
                    continue  # the deadline was set while the last stream was open
                if self.retired:  # and told so a moment ago: done
                    self._end("idle")
                    return
                self.retire(f"idle for {self.http2.idle_timeout:g}s")
                endpoint.read_by(monotonic() + LINGER)  # the client's answer, if any
                continue
            except STREAM_ERRORS:
                data = b""
            if not data:
                self._client_closed = True
                self._end("the client closed the connection")
                return
            for event in session.receive(data):
                self._dispatch(event)
            self.flush()
            if self._check_closed():
                return
            if self.streams:
                endpoint.read_at = INF  # the streams keep their own time

    def _dispatch(self, event: object) -> None:
        _ON[type(event)](self, event)

    def _data(self, event: RequestData) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.data(event.data, event.flow_length, event.end_stream)
        elif event.flow_length:
            self.session.consumed(event.stream_id, event.flow_length)

    def _window(self, event: WindowOpened) -> None:
        if event.stream_id == 0:
            for stream in self.streams.values():
                stream.wake()
        elif (opened := self.streams.get(event.stream_id)) is not None:
            opened.wake()

    def _trailers(self, event: RequestTrailers) -> None:
        if (stream := self.streams.get(event.stream_id)) is not None:
            stream.end()

    def _reset(self, event: StreamReset) -> None:
        if (stream := self.streams.get(event.stream_id)) is not None:
            why = "the client reset the stream" if event.remote else "a stream error"
            stream.gone(f"{why} ({ErrorCode(event.error_code).name})")

    def _ended(self, event: ConnectionEnded) -> None:
        self.retired = True  # no new streams either way
        if event.remote and event.error_code == ErrorCode.NO_ERROR:
            return  # the client's GOAWAY: the streams it started finish
        log.info(
            "HTTP/2 connection from %s: %s (%s)",
            self.peer[0],
            event.reason,
            ErrorCode(event.error_code).name,
        )
        for stream in list(self.streams.values()):
            stream.gone(event.reason)

    # -- streams -------------------------------------------------------------

    def _open(self, event: RequestHeaders) -> None:
        if event.stream_id > self._last:  # came with or after the GOAWAY
            self.session.reset(event.stream_id, ErrorCode.REFUSED_STREAM)
            return
        self._highest = event.stream_id
        stream = H2Stream(self, event.stream_id)
        stream.received = sum(len(name) + len(value) + 2 for name, value in event.headers)
        if event.end_stream:
            stream.data(b"", 0, True)
        self.streams[event.stream_id] = stream
        self.requests += 1
        self.services.metrics.protocol_request("h2")
        if self.requests >= self.http2.max_requests:
            self.retire(f"{self.requests} requests", event.stream_id)
        assert self._nursery is not None
        self._nursery.start_soon(self._run, stream, event)

    async def _run(self, stream: H2Stream, event: RequestHeaders) -> None:
        try:
            await serve_stream(
                stream, self.services.handle, event.headers, event.end_stream, self.http2.websocket
            )
        finally:
            if not stream.body_received and stream.response_started:
                self._half_open.append(stream.id)
            del self.streams[stream.id]
            self.flush()
            if not self.streams:
                self.endpoint.read_by(monotonic() + self.http2.idle_timeout)
                self._check_closed()
                if self._last_streams is not None:
                    self._last_streams.set()

    def _refuse(self, event: HeadersRefused) -> None:
        """A head over the limits: its status (431) at once, no exchange."""
        self._highest = max(self._highest, event.stream_id)
        self.requests += 1
        self.services.metrics.protocol_request("h2")
        refuse(H2Stream(self, event.stream_id), event.status)

    # -- the loop ------------------------------------------------------------

    async def serve(self) -> None:
        self.flush()  # the server's SETTINGS
        if self.services.draining.is_set():
            self.retire("the worker drains")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write)
                nursery.start_soon(self._read)
                await self._over.wait()
                if self.streams:  # tunnels see their end, and log it
                    self._last_streams = trio.Event()
                    with trio.move_on_after(TUNNEL_END_BUDGET):
                        await self._last_streams.wait()
                nursery.cancel_scope.cancel()
        finally:
            await self._close()

    async def _close(self) -> None:
        """What the codec still has to say (its GOAWAY), then the close.

        Unless the client closed first, what it still sends is read for a
        moment (LINGER) before the close: closing with unread bytes resets
        the connection, and the client could lose the GOAWAY that says why.
        """
        endpoint = self.endpoint
        endpoint.no_deadlines()
        with trio.move_on_after(LINGER + 1) as scope:
            scope.shield = True
            try:
                data = self.session.pending()
                if data:
                    await endpoint.write(data, 1.0)
                if not self._client_closed:
                    endpoint.read_within(LINGER)
                    while await endpoint.read():
                        pass
            except _WRITE_ERRORS:
                pass
            try:
                await self.stream.aclose()
            except _WRITE_ERRORS:
                abort(self.stream)
        if scope.cancelled_caught:
            abort(self.stream)


# What each of the codec's events does to the connection.
_ON: dict[type, Callable[[Http2Connection, Any], None]] = {
    RequestData: Http2Connection._data,
    RequestHeaders: Http2Connection._open,
    WindowOpened: Http2Connection._window,
    RequestTrailers: Http2Connection._trailers,
    StreamReset: Http2Connection._reset,
    HeadersRefused: Http2Connection._refuse,
    ConnectionEnded: Http2Connection._ended,
}


__all__ = ["Http2Connection", "codec_settings"]
