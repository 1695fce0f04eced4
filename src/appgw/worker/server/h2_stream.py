"""One HTTP/2 request stream: the exchange's Downstream on a stream.

The exchange (exchange/handler.py) runs on a stream exactly as on an
HTTP/1.1 connection; this is the other implementation of its verbs:

- `receive_body`: the stream's DATA, in the order it came. The bytes a
  piece held in the flow-control windows are given back to the client
  (`consumed`) only when the exchange asks for the next piece, that is
  once it has sent the previous one to the backend (or holds it in its
  request buffer, within its bound): a slow backend slows the client's
  stream, never the worker's memory. The wait for the client is bounded
  by the request timeout, summed over the request, as on HTTP/1.1.
- `send_continue` / `send_head`: `:status 100` / the response head the
  exchange built as bytes, as HEADERS (codec/h2_message.py); body, DATA.
- `send`: DATA, as much as the stream's and the connection's windows take;
  the rest waits for the client to open its window, within the request
  timeout (a client that never does is gone for the exchange), and for
  the connection's writer to have sent the previous batch, so a client
  that does not read holds no more than a write's worth per stream.
- `hand_over`: a WebSocket over HTTP/2 (RFC 8441) relays its bytes as the
  stream's DATA (h2_tunnel.py).

The stream ends (END_STREAM) with the body's last byte: with the last
DATA when the head said how long the body is, else after the exchange.
An exchange that fails before its response started answers the gateway's
error page; after, the stream is reset (the client's other streams go on).
"""

from __future__ import annotations

from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Protocol

import trio

from appgw import logs
from appgw.errors import ClientGone, RequestTimeout
from appgw.worker.codec.h2_events import ErrorCode
from appgw.worker.codec.h2_message import response_fields
from appgw.worker.io.endpoint import INF
from appgw.worker.server.h2_tunnel import StreamAsBytes

if TYPE_CHECKING:
    from appgw.config.model import Limits
    from appgw.mtls import ClientCertificate
    from appgw.worker.codec.h2_session import H2Session
    from appgw.worker.codec.request import Request
    from appgw.worker.exchange.downstream import Context, ListeningSocket

log = logs.log


class StreamHost(Protocol):
    """The connection a stream belongs to (http2.Http2Connection)."""

    @property
    def session(self) -> H2Session: ...
    @property
    def services(self) -> Context: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def peer(self) -> tuple[str, int]: ...
    @property
    def socket(self) -> ListeningSocket: ...
    @property
    def stream(self) -> trio.abc.Stream: ...
    @property
    def client_certificate(self) -> ClientCertificate | None: ...
    @property
    def backlogged(self) -> bool: ...
    def flush(self) -> None: ...
    async def written(self, stream: H2Stream) -> None: ...


_NO_BODY_STATUSES = frozenset({204, 304})


class H2Stream:
    """A request stream, for as long as its exchange runs."""

    __slots__ = (
        "connection",
        "session",
        "id",
        "request",
        "sent",
        "received",
        "response_started",
        "scope",
        "_pieces",
        "_ended",
        "_gone",
        "_replay",
        "_unconsumed",
        "_reader",
        "_writer",
        "_waited",
        "_remaining",
        "_finished",
        "_tunnel",
    )

    def __init__(self, connection: StreamHost, stream_id: int) -> None:
        self.connection = connection
        self.session = connection.session
        self.id = stream_id
        self.request: Request | None = None
        self.sent = 0  # body bytes sent to the client
        self.received = 0  # bytes of the request: its fields, its body
        self.response_started = False
        self.scope = trio.CancelScope()  # cancelled when the client resets the stream
        self._pieces: deque[tuple[bytes, int]] = deque()  # (data, flow-controlled length)
        self._ended = False  # the request's END_STREAM arrived
        self._gone = ""  # why the client side is gone (a reset, the connection's end)
        self._replay: list[bytes] | None = None
        self._unconsumed = 0  # flow-controlled bytes handed out, not yet given back
        self._reader: trio.Event | None = None  # the exchange waits for the request body
        self._writer: trio.Event | None = None  # the exchange waits for a window, the writer
        self._waited = 0.0  # seconds spent waiting for the request body
        self._remaining = -1  # body bytes the head announced and not yet sent (-1: unknown)
        self._finished = False  # END_STREAM sent (or the stream reset)
        self._tunnel = False  # the stream carries a WebSocket (RFC 8441)

    # -- what the connection tells the stream --------------------------------

    def data(self, data: bytes, flow_length: int, end_stream: bool) -> None:
        self.received += len(data)
        if data or flow_length:
            self._pieces.append((data, flow_length))
        if end_stream:
            self._ended = True
        self.wake()

    def end(self) -> None:
        """The request's trailers: its end (they are not forwarded)."""
        self._ended = True
        self.wake()

    def gone(self, why: str) -> None:
        """The client reset the stream, or the connection ended: the exchange
        stops (a tunnel sees its client side broken, and ends as tunnels do)."""
        if not self._gone:
            self._gone = why
            self._finished = True
            if not self._tunnel:
                self.scope.cancel()
        self.wake()

    def wake(self) -> None:
        """Something happened to the stream: whoever waits looks again."""
        reader, writer = self._reader, self._writer
        if reader is not None:
            self._reader = None
            reader.set()
        if writer is not None:
            self._writer = None
            writer.set()

    async def _wait(self, until: float, reading: bool) -> bool:
        """Wait to be woken (data; a window, the writer): False at `until` (monotonic).

        The request body and a response may be waited for at once (an
        upload beside its response), each by its own task.
        """
        waiter = trio.Event()
        if reading:
            self._reader = waiter
        else:
            self._writer = waiter
        if until == INF:
            await waiter.wait()
            return True
        with trio.move_on_at(trio.current_time() + max(0.0, until - monotonic())):
            await waiter.wait()
            return True
        return False

    async def written(self) -> None:
        """Wait for the connection's writer to have sent its batch."""
        await self._wait(INF, False)

    # -- Downstream: what the exchange reads ---------------------------------

    @property
    def services(self) -> Context:
        return self.connection.services

    @property
    def limits(self) -> Limits:
        return self.connection.limits

    @property
    def peer(self) -> tuple[str, int]:
        return self.connection.peer

    @property
    def scheme(self) -> str:
        return "https"

    @property
    def socket(self) -> ListeningSocket:
        return self.connection.socket

    @property
    def stream(self) -> trio.abc.Stream:
        return self.connection.stream  # the TLS stream (its version and cipher are logged)

    @property
    def client_certificate(self) -> ClientCertificate | None:
        return self.connection.client_certificate

    @property
    def closing(self) -> bool:
        return False  # a stream's end never ends the connection

    def close_after(self) -> None:
        """Nothing to do: the connection outlives every one of its streams."""

    @property
    def request_done(self) -> bool:
        return self._ended and not self._pieces and not self._replay

    @property
    def body_pending(self) -> bool:
        return bool(self._pieces) or self._ended

    @property
    def body_received(self) -> bool:
        return self._ended

    def _give_back(self) -> None:
        """The pieces handed out went on: their room in the windows goes back."""
        if self._unconsumed:
            self.session.consumed(self.id, self._unconsumed)
            self._unconsumed = 0
            self.connection.flush()

    async def receive_body(self) -> bytes | None:
        if self._replay is not None:
            if self._replay:
                return self._replay.pop(0)
            self._replay = None
        self._give_back()
        while True:
            if self._pieces:
                data, flow = self._pieces.popleft()
                self._unconsumed += flow
                if data:
                    return data
                continue
            if self._ended:
                return None
            if self._gone:
                raise ClientGone(self._gone)
            if self._tunnel:  # a WebSocket: the tunnel keeps time itself
                await self._wait(INF, True)
                continue
            started = monotonic()
            timeout = self.limits.request_timeout - self._waited
            try:
                if not await self._wait(started + timeout, True):
                    raise RequestTimeout("request body not received in time")
            finally:
                self._waited += monotonic() - started

    def replay_body(self, pieces: list[bytes]) -> None:
        self._replay = list(pieces)

    # -- Downstream: what the exchange answers -------------------------------

    async def send_continue(self) -> None:
        """`:status 100` (the client sent `expect: 100-continue`): its body is wanted now."""
        self.session.inform(self.id, 100, [])
        self.connection.flush()
        await trio.lowlevel.checkpoint()

    def send_head_now(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> int:
        """The head goes out whole (a HEADERS frame is never half sent): so
        does the body that fits the windows; how much of the two was taken."""
        offset = self._head(head)
        taken = self._data(memoryview(head)[offset:]) if offset < len(head) else 0
        if taken == len(head) - offset and body:
            taken += self._data(body)
        self.connection.flush()
        return offset + taken

    async def send_head(self, head: bytes | bytearray, body: bytes | memoryview = b"") -> None:
        offset = self._head(head)
        if offset < len(head):
            await self.send(memoryview(head)[offset:], body)
        elif body:
            await self.send(body)
        else:
            self.connection.flush()

    def _head(self, head: bytes | bytearray) -> int:
        """The HEADERS of a response head; where its body bytes start."""
        if self._gone:
            raise ClientGone(self._gone)
        status, fields, offset = response_fields(head)
        request = self.request
        if request is not None and request.websocket and head[9:12] == b"101":
            self._tunnel = True  # the backend's 101: a WebSocket from here on
        self.response_started = True
        remaining = -1
        if request is not None and request.method == b"HEAD" or status in _NO_BODY_STATUSES:
            remaining = 0
        else:
            for name, value in fields:
                if name == b"content-length" and value.isdigit():
                    remaining = int(value)
        self._remaining = remaining
        end = remaining == 0
        self.session.respond(self.id, status, fields, end_stream=end)
        if end:
            self._finished = True
        return offset

    def send_now(self, data: bytes | bytearray | memoryview) -> int:
        taken = self._data(data)
        self.connection.flush()
        return taken

    def _data(self, data: bytes | bytearray | memoryview) -> int:
        """DATA now, as far as the windows go: how much was taken."""
        if self._gone:
            raise ClientGone(self._gone)
        if self._finished or not data:
            return len(data)
        remaining = self._remaining
        end = False
        if remaining >= 0:
            if len(data) >= remaining:
                data = memoryview(data)[:remaining]
                end = True
        if isinstance(data, bytearray):
            data = memoryview(data)
        taken = self.session.send_data(self.id, data, end_stream=end)
        if remaining >= 0:
            self._remaining = remaining - taken
            if end and taken == len(data):
                self._finished = True
        return taken

    async def send(
        self, data: bytes | bytearray | memoryview, then: bytes | memoryview = b""
    ) -> None:
        connection = self.connection
        until = INF
        for part in (data, then) if then else (data,):
            view = memoryview(part)
            while True:
                taken = self._data(view)
                connection.flush()
                if taken == len(view):
                    break
                view = view[taken:]
                # The windows are full: wait for the client to open them.
                if until == INF:
                    until = monotonic() + self.limits.request_timeout
                if not await self._wait(until, False):
                    raise ClientGone("client did not open its window in time")
                if self._gone:
                    raise ClientGone(self._gone)
            if connection.backlogged:
                # The client reads slower than its windows allow: wait for the writer.
                await connection.written(self)

    def hand_over(self) -> tuple[trio.abc.Stream, bytes]:
        return StreamAsBytes(self), b""

    # -- the stream's own end ------------------------------------------------

    def finish(self) -> None:
        """The exchange is over: END_STREAM if not yet, the rest of the
        request's flow-controlled bytes given back."""
        if not self._finished and not self._gone:
            self._finished = True
            if self.response_started:
                self.session.send_data(self.id, b"", end_stream=True)
            else:  # nothing was answered (a bug, or a cancelled exchange)
                self.session.reset(self.id, ErrorCode.INTERNAL_ERROR)
        for _, flow in self._pieces:
            self._unconsumed += flow
        self._pieces.clear()
        self._give_back()
        self.connection.flush()

    def abort(self, code: int = ErrorCode.INTERNAL_ERROR) -> None:
        """The response broke off: RST_STREAM (the connection goes on)."""
        if not self._gone:
            self._finished = True
            self.session.reset(self.id, code)
            self.connection.flush()


__all__ = ["H2Stream", "StreamHost"]
