"""The server side of one HTTP/2 connection, sans-IO, on libnghttp2.

Bytes in, events out; calls in, bytes out:

- `receive(data)` feeds what the socket read to nghttp2
  (`nghttp2_session_mem_recv`), which parses, checks RFC 9113 (frame
  sizes, stream states, pseudo-headers, connection-specific fields, TE,
  content-length against DATA) and resets streams or ends the connection
  by itself; the callbacks (h2_callbacks.py) turn what is left into events.
  It then serializes whatever nghttp2 queued in answer (ACKs, RST_STREAM,
  GOAWAY), so that resets the codec decided show up as events now.
- `pending()` returns every byte there is to write, in one piece.
- `respond`, `send_data`, `reset`, `goaway` queue frames. A response body
  goes through one data provider: `send_data` takes what both windows
  allow into the stream's buffer and nghttp2 frames it on `pending()`.
- `consumed(stream_id, n)` is the back-pressure: WINDOW_UPDATE is not
  sent (`no_auto_window_update`) until the server has forwarded the bytes.

The session starts in h2_setup.py (options, the SETTINGS frame).

Peer input never raises: a connection error becomes `ConnectionEnded`
with GOAWAY queued, after which the session reads nothing more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from appgw.worker.codec import nghttp2_lib as ng
from appgw.worker.codec.h2_callbacks import body_provider, callbacks
from appgw.worker.codec.h2_events import ConnectionEnded, ErrorCode, Event
from appgw.worker.codec.h2_settings import H2Settings
from appgw.worker.codec.h2_setup import last_goaway, open_session
from appgw.worker.codec.h2_streams import Body, Streams

# RFC 9113 8.2.2: fields that mean something only to one HTTP/1.1 hop.
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_LIBRARY_ERRORS = {
    ng.ERR_FLOODED: (ErrorCode.ENHANCE_YOUR_CALM, "flood of frames that need an answer"),
    ng.ERR_TOO_MANY_CONTINUATIONS: (ErrorCode.ENHANCE_YOUR_CALM, "too many CONTINUATION frames"),
    ng.ERR_BAD_CLIENT_MAGIC: (ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface"),
    ng.ERR_NOMEM: (ErrorCode.INTERNAL_ERROR, "out of memory"),
    ng.ERR_CALLBACK_FAILURE: (ErrorCode.INTERNAL_ERROR, "the HTTP/2 codec failed"),
}
# receive() serializes nghttp2's answers (ACKs, resets) at once, unless this
# much waits unwritten already: then they stay in nghttp2's queue, where
# nghttp2_option_set_max_outbound_ack bounds a client that sends without
# reading (a PING flood, say).
HOLD_BYTES = 65536
# Statuses and response field names as C strings, made once per process:
# the names a gateway answers with are few (capped, in case a backend's
# are not).
_STATUS: dict[int, Any] = {}
_NAMES: dict[bytes, Any] = {}
_STATUS_NAME: Any = None


class H2Session:
    """One connection's HTTP/2 state: see the module's docstring."""

    def __init__(self, settings: H2Settings, *, clock: Callable[[], float] = time.monotonic):
        global _STATUS_NAME
        nghttp2 = ng.load()
        if _STATUS_NAME is None:
            _STATUS_NAME = nghttp2.ffi.new("char[]", b":status")
        self._ffi, self._lib = nghttp2.ffi, nghttp2.lib
        self._unpack = nghttp2.backend.unpack
        self._newp = nghttp2.backend.newp
        self._chars = self._ffi.typeof("char[]")
        self._nv_array = self._ffi.typeof("nghttp2_nv[]")
        self._streams = Streams(settings, clock)
        # The handle keeps `Streams` alive for the callbacks; Streams holds
        # nothing of the session, so no cycle.
        self._handle = self._ffi.new_handle(self._streams)
        self._provider = body_provider(nghttp2)
        self._out: list[bytes] = []
        self._held = 0  # bytes in _out
        self._out_ptr = self._ffi.new("const char **")
        self._dead = False
        self._graceful = False
        self._session, first = open_session(nghttp2, settings, callbacks(nghttp2), self._handle)
        self._out.append(first)
        self._held = len(first)

    # -- reading -----------------------------------------------------------

    def receive(self, data: bytes | memoryview) -> list[Event]:
        """Feed bytes read from the client; the events they make, in order."""
        if self._dead or not data:
            return self._take_events()
        if not isinstance(data, bytes):
            data = self._ffi.from_buffer(data)
        streams = self._streams
        streams.receiving = True
        rv = self._lib.nghttp2_session_mem_recv(self._session, data, len(data))
        streams.receiving = False
        if rv < 0:
            self._fail(rv)
            return self._take_events()
        if self._held < HOLD_BYTES:
            self._drain()
            if streams.calm is not None and not self._dead:
                self._fail(ng.ERR_CALLBACK_FAILURE)
            elif not self._dead and not self._lib.nghttp2_session_want_read(self._session):
                self._ended_by_library(b"".join(self._out))
        return self._take_events()

    def _take_events(self) -> list[Event]:
        streams = self._streams
        events = streams.events
        if events:
            streams.events = []
            if streams.opened:
                streams.opened.clear()
        return events

    def _fail(self, rv: int) -> None:
        """A connection error found mid-parse: queue GOAWAY, read no more."""
        streams = self._streams
        if streams.calm is not None:
            code, reason = streams.calm
        else:
            code, reason = _LIBRARY_ERRORS.get(rv, (ErrorCode.PROTOCOL_ERROR, self._error(rv)))
        last = self._last_stream_id()
        text = reason.encode()
        self._lib.nghttp2_submit_goaway(self._session, 0, last, code, text, len(text))
        self._drain()
        self._dead = True
        streams.events.append(ConnectionEnded(int(code), last, False, reason))

    def _ended_by_library(self, out: bytes) -> None:
        """nghttp2 read its last frame: a GOAWAY it queued (in `out`) for a
        connection error the client made is reported (a graceful end is not)."""
        goaway = last_goaway(out)
        streams = self._streams
        if goaway is None:
            return
        code, last, reason = goaway
        if code == 0 and (self._graceful or streams.remote_goaway):
            return
        self._dead = True
        streams.events.append(ConnectionEnded(code, last, False, reason))

    # -- writing -----------------------------------------------------------

    def pending(self) -> bytes:
        """Everything there is to write now (b"" if nothing), in one piece."""
        if not self._dead:
            self._drain()
            if self._streams.calm is not None:
                self._fail(ng.ERR_CALLBACK_FAILURE)  # found while serializing
        out = self._out
        if not out:
            return b""
        self._out = []
        self._held = 0
        data = out[0] if len(out) == 1 else b"".join(out)
        if not self._dead and not self._lib.nghttp2_session_want_read(self._session):
            self._ended_by_library(data)  # the event comes with the next receive()
        return data

    def _drain(self) -> None:
        send, session, pointer, out = (
            self._lib.nghttp2_session_mem_send,
            self._session,
            self._out_ptr,
            self._out,
        )
        unpack = self._unpack
        while True:
            n = send(session, pointer)
            if n <= 0:
                if n < 0:
                    self._dead = True
                return
            out.append(unpack(pointer[0], n))
            self._held += n

    def respond(
        self,
        stream_id: int,
        status: int,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool,
    ) -> None:
        """Queue the response head; without end_stream, a body follows
        through send_data. Nothing happens on a stream already gone (reset
        by the client while the answer was being made)."""
        if not 100 <= status <= 999:
            raise ValueError(f"stream {stream_id}: status {status} is not three digits")
        if self._gone(stream_id):
            return
        nva, count, keep = self._fields(status, headers)
        ffi = self._ffi
        provider = ffi.NULL
        if not end_stream:
            self._streams.outgoing[stream_id] = Body()
            provider = self._provider
        rv = self._lib.nghttp2_submit_response(self._session, stream_id, nva, count, provider)
        del keep  # nghttp2 copied the fields
        if rv != 0:
            self._streams.outgoing.pop(stream_id, None)
            raise ValueError(f"stream {stream_id}: cannot respond ({self._error(rv)})")

    def inform(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Queue an interim response (1xx, such as 100 Continue) ahead of the
        final one from respond(): a HEADERS frame without END_STREAM.
        Nothing happens on a stream already gone."""
        if not 100 <= status <= 199:
            raise ValueError(f"stream {stream_id}: status {status} is not interim (1xx)")
        if self._gone(stream_id):
            return
        nva, count, keep = self._fields(status, headers)
        ffi = self._ffi
        rv = self._lib.nghttp2_submit_headers(
            self._session, 0, stream_id, ffi.NULL, nva, count, ffi.NULL
        )
        del keep  # nghttp2 copied the fields
        if rv < 0:
            raise ValueError(f"stream {stream_id}: cannot inform ({self._error(rv)})")

    def _fields(
        self, status: int, headers: list[tuple[bytes, bytes]]
    ) -> tuple[Any, int, list[Any]]:
        """A head's fields as nghttp2_nv (:status first, connection-specific
        fields left out), its count, and the buffers to keep until submitted."""
        newp, chars = self._newp, self._chars
        names = _NAMES
        status_value = _STATUS.get(status)
        if status_value is None:
            status_value = _STATUS[status] = newp(chars, str(status).encode())
        keep = []
        items = [(_STATUS_NAME, status_value, 7, 3, 0)]
        for name, value in headers:
            name_buffer = names.get(name)
            if name_buffer is None:
                lowered = name.lower()
                if lowered in CONNECTION_SPECIFIC:
                    continue
                name_buffer = newp(chars, lowered)
                if len(names) < 512:
                    names[name] = name_buffer
                else:
                    keep.append(name_buffer)
            value_buffer = newp(chars, value)
            keep.append(value_buffer)
            items.append((name_buffer, value_buffer, len(name), len(value), 0))
        return newp(self._nv_array, items), len(items), keep

    def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool) -> int:
        """Take what both windows allow of `data`; returns the byte count.
        The rest waits for WindowOpened; end_stream counts once all is taken.
        Bytes (and views of bytes) are kept as they are until framed; other
        buffers are copied, since their owner may change them."""
        streams = self._streams
        body = streams.outgoing.get(stream_id)
        if body is None:
            return 0
        size = len(data)
        taken = min(size, self.window(stream_id))
        if taken:
            if type(data) is not bytes:
                view = memoryview(data)
                if not view.readonly or type(view.obj) is not bytes:
                    data = bytes(view[:taken])  # the caller's buffer may change
                else:
                    data = view[:taken] if taken < size else view
            elif taken < size:
                data = memoryview(data)[:taken]
            body.chunks.append(data)
            body.size += taken
            streams.buffered += taken
        if end_stream and taken == size:
            streams.ending.add(stream_id)
        if taken or stream_id in streams.ending:
            self._lib.nghttp2_session_resume_data(self._session, stream_id)
        return taken

    def window(self, stream_id: int) -> int:
        """What send_data would take now on the stream (0: the connection)."""
        lib, session, streams = self._lib, self._session, self._streams
        connection = lib.nghttp2_session_get_remote_window_size(session) - streams.buffered
        if stream_id == 0:
            return max(connection, 0)
        body = streams.outgoing.get(stream_id)
        if body is None:
            return 0
        stream = lib.nghttp2_session_get_stream_remote_window_size(session, stream_id)
        return max(min(stream - body.size, connection), 0)

    def response_sent(self, stream_id: int) -> bool:
        """Whether the stream's response is out whole (its END_STREAM is in
        what pending() returned), or the stream is gone. Then a request
        still arriving may be stopped with reset(stream_id, NO_ERROR)
        (RFC 9113 8.1)."""
        return bool(self._lib.nghttp2_session_get_stream_local_close(self._session, stream_id))

    def consumed(self, stream_id: int, n: int) -> None:
        """The server forwarded `n` body bytes of the stream: open the
        client's windows by as much."""
        unconsumed = self._streams.unconsumed
        owed = unconsumed.get(stream_id)
        if not owed or n <= 0:
            return
        n = min(n, owed)
        unconsumed[stream_id] = owed - n
        self._lib.nghttp2_session_consume(self._session, stream_id, n)

    def reset(self, stream_id: int, error_code: int) -> None:
        """Reset the stream (RST_STREAM); no event follows for it. A stream
        already gone is left alone (never a RST_STREAM for a RST_STREAM)."""
        self._streams.announced.discard(stream_id)
        if self._gone(stream_id):
            return
        self._streams.uncounted.add(stream_id)
        self._lib.nghttp2_submit_rst_stream(self._session, 0, stream_id, int(error_code))

    def goaway(self, error_code: int = 0, last_stream_id: int | None = None) -> None:
        """GOAWAY: no new streams; those up to last_stream_id may finish."""
        if last_stream_id is None:
            last_stream_id = self._last_stream_id()
        self._graceful = True
        self._lib.nghttp2_submit_goaway(
            self._session, 0, last_stream_id, int(error_code), self._ffi.NULL, 0
        )

    @property
    def open_streams(self) -> int:
        return len(self._streams.announced)

    @property
    def closed(self) -> bool:
        """Nothing more to read or write."""
        if self._out:
            return False
        if self._dead:
            return True
        lib, session = self._lib, self._session
        return not lib.nghttp2_session_want_read(session) and not lib.nghttp2_session_want_write(
            session
        )

    def _gone(self, stream_id: int) -> bool:
        """Closed (or never opened), as nghttp2 knows it."""
        return bool(self._lib.nghttp2_session_get_stream_local_close(self._session, stream_id) < 0)

    def _last_stream_id(self) -> int:
        return max(int(self._lib.nghttp2_session_get_last_proc_stream_id(self._session)), 0)

    def _error(self, rv: int) -> str:
        return str(self._ffi.string(self._lib.nghttp2_strerror(rv)).decode())
