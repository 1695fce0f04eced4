"""libnghttp2's callbacks for the HTTP/2 codec: they only record.

nghttp2 parses and validates; these functions note what is left into the
connection's `Streams` (h2_streams.py): a header field appended to the
block being read, a DATA chunk kept until its frame ends, an event per
finished frame, and the counts of the defences (an HPACK bomb: a header
list far over its limit; rapid reset; frames that carry no request;
CONTINUATION frames where the library cannot bound them itself). The
data provider copies response bodies straight into nghttp2's frames.

They are made once per process (`callbacks()`): cffi's ABI mode has no
`def_extern`, so each is an `ffi.callback` kept alive for the process's
life, and finds its connection's state through `user_data`.
"""

from __future__ import annotations

from typing import Any

from appgw.worker.codec import nghttp2_lib as ng
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
from appgw.worker.codec.h2_streams import HEADER_FIELD_OVERHEAD, Streams


def callbacks(nghttp2: ng.Nghttp2) -> Any:
    """The process's nghttp2_session_callbacks (made once, kept alive)."""
    return _made(nghttp2)[0]


def body_provider(nghttp2: ng.Nghttp2) -> Any:
    """The data provider every response body is read through."""
    return _made(nghttp2)[1]


# One set per kind of library: with or without its own CONTINUATION bound.
_callbacks: dict[bool, tuple[Any, ...]] = {}


def _made(nghttp2: ng.Nghttp2) -> tuple[Any, ...]:
    made = _callbacks.get(nghttp2.has_max_continuations)
    if made is None:
        made = _callbacks[nghttp2.has_max_continuations] = _make_callbacks(nghttp2)
    return made


def _make_callbacks(nghttp2: ng.Nghttp2) -> tuple[Any, ...]:
    ffi, lib = nghttp2.ffi, nghttp2.lib
    backend = nghttp2.backend
    from_handle, unpack, memmove = backend.from_handle, backend.unpack, backend.memmove

    def on_header(
        session: Any,
        frame: Any,
        name: Any,
        namelen: int,
        value: Any,
        valuelen: int,
        flags: int,
        user_data: Any,
    ) -> int:
        streams: Streams = from_handle(user_data)
        stream_id = frame.hd.stream_id
        if stream_id != streams.block_stream:
            streams.block_stream = stream_id
            streams.fields = []
            streams.size = 0
            streams.block_refused = False
        size = streams.size + namelen + valuelen + HEADER_FIELD_OVERHEAD
        streams.size = size
        if size > streams.list_limit or namelen + valuelen > streams.field_limit:
            if size > streams.bomb_limit:
                streams.calm = (ErrorCode.ENHANCE_YOUR_CALM, "header list far over its limit")
                return ng.ERR_CALLBACK_FAILURE
            streams.block_refused = True
            streams.fields = []
            return 0
        if not streams.block_refused:
            streams.fields.append((unpack(name, namelen), unpack(value, valuelen)))
        return 0

    def on_invalid_header(
        session: Any,
        frame: Any,
        name: Any,
        namelen: int,
        value: Any,
        valuelen: int,
        flags: int,
        user_data: Any,
    ) -> int:
        # A field nghttp2 would otherwise drop (an upper-case name, a bad
        # character): RFC 9113 8.2.1 calls the request malformed.
        return ng.ERR_TEMPORAL_CALLBACK_FAILURE

    def on_data_chunk(
        session: Any, flags: int, stream_id: int, data: Any, length: int, user_data: Any
    ) -> int:
        streams: Streams = from_handle(user_data)
        chunks = streams.chunks.get(stream_id)
        if chunks is None:
            streams.chunks[stream_id] = [unpack(data, length)]
        else:
            chunks.append(unpack(data, length))
        return 0

    def on_frame_recv(session: Any, frame: Any, user_data: Any) -> int:
        streams: Streams = from_handle(user_data)
        hd = frame.hd
        kind = hd.type
        stream_id = hd.stream_id
        if kind == ng.DATA:
            chunks = streams.chunks.pop(stream_id, None)
            data = (chunks[0] if len(chunks) == 1 else b"".join(chunks)) if chunks else b""
            end = bool(hd.flags & ng.FLAG_END_STREAM)
            if not data and not end:
                return streams.idle_frame()
            if stream_id in streams.announced and stream_id not in streams.refused:
                if data:
                    streams.unconsumed[stream_id] = streams.unconsumed.get(stream_id, 0) + len(data)
                streams.events.append(RequestData(stream_id, data, len(data), end))
            elif data:
                # No one will forward it (a head refused, a stream the server
                # reset or refused): its window is returned at once.
                lib.nghttp2_session_consume(session, stream_id, len(data))
        elif kind == ng.HEADERS:
            streams.continuations = 0
            end = bool(hd.flags & ng.FLAG_END_STREAM)
            mine = streams.block_stream == stream_id
            fields = streams.fields if mine else []
            refused = mine and streams.block_refused
            streams.block_stream = 0
            if frame.headers.cat == ng.HCAT_REQUEST:
                if len(streams.announced) >= streams.stream_limit:
                    # Over the advertised limit (nghttp2's own, set higher,
                    # would end the connection): RFC 9113 5.1.2.
                    lib.nghttp2_submit_rst_stream(session, 0, stream_id, ErrorCode.REFUSED_STREAM)
                    return 0
                streams.announced.add(stream_id)
                if refused:
                    streams.refused.add(stream_id)
                    streams.events.append(HeadersRefused(stream_id, 431))
                else:
                    streams.events.append(RequestHeaders(stream_id, fields, end))
            elif stream_id in streams.announced and stream_id not in streams.refused:
                if refused:
                    # Trailers over a limit: the request is under way (its
                    # answer may be too), it cannot end as the client sent
                    # it. The stream is reset; StreamReset follows.
                    lib.nghttp2_submit_rst_stream(
                        session, 0, stream_id, ErrorCode.ENHANCE_YOUR_CALM
                    )
                else:
                    streams.events.append(RequestTrailers(stream_id, fields))
        elif kind == ng.WINDOW_UPDATE:
            # One event per window per receive(), however many frames.
            waiting = stream_id == 0 or stream_id in streams.outgoing
            if waiting and stream_id not in streams.opened:
                streams.opened.add(stream_id)
                streams.events.append(WindowOpened(stream_id))
        elif kind == ng.RST_STREAM:
            if stream_id in streams.announced:
                streams.announced.discard(stream_id)
                streams.events.append(StreamReset(stream_id, frame.rst_stream.error_code, True))
            # Rapid reset (CVE-2023-44487), whatever the code (NO_ERROR too).
            streams.uncounted.add(stream_id)  # not again when it closes
            if not streams.resets.spend(streams.clock()):
                streams.calm = (ErrorCode.ENHANCE_YOUR_CALM, "too many streams reset")
                return ng.ERR_CALLBACK_FAILURE
        elif kind == ng.SETTINGS or kind == ng.PING:
            if hd.flags & ng.FLAG_ACK:
                return 0
            if kind == ng.SETTINGS:
                settings = frame.settings
                for i in range(settings.niv):
                    if settings.iv[i].settings_id == ng.SETTINGS_INITIAL_WINDOW_SIZE:
                        if 0 not in streams.opened:
                            streams.opened.add(0)
                            streams.events.append(WindowOpened(0))
                        break
            return streams.idle_frame()
        elif kind == ng.PRIORITY:
            return streams.idle_frame()
        elif kind == ng.GOAWAY:
            goaway = frame.goaway
            length = goaway.opaque_data_len
            reason = unpack(goaway.opaque_data, length) if length else b""
            streams.remote_goaway = True
            streams.events.append(
                ConnectionEnded(
                    goaway.error_code,
                    goaway.last_stream_id,
                    True,
                    reason.decode("utf-8", "replace"),
                )
            )
        return 0

    def on_stream_close(session: Any, stream_id: int, error_code: int, user_data: Any) -> int:
        streams: Streams = from_handle(user_data)
        unconsumed = streams.forget(stream_id)
        if unconsumed:
            lib.nghttp2_session_consume_connection(session, unconsumed)
        if stream_id in streams.announced:
            streams.announced.discard(stream_id)
            if error_code:
                streams.events.append(StreamReset(stream_id, error_code, False))
        if stream_id in streams.uncounted:
            streams.uncounted.discard(stream_id)
        elif error_code and not streams.resets.spend(streams.clock()):
            # Streams the codec resets (malformed, refused, a broken body)
            # are the client's doing as much as its own RST_STREAMs.
            streams.calm = (ErrorCode.ENHANCE_YOUR_CALM, "too many streams reset")
            if streams.receiving:
                return ng.ERR_CALLBACK_FAILURE  # stop reading at once
        return 0

    def on_begin_frame(session: Any, hd: Any, user_data: Any) -> int:
        # Only where the library cannot bound CONTINUATION frames itself.
        if hd.type == ng.CONTINUATION:
            streams: Streams = from_handle(user_data)
            streams.continuations += 1
            if streams.continuations > streams.max_continuations:
                streams.calm = (ErrorCode.ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
                return ng.ERR_CALLBACK_FAILURE
        return 0

    def read_body(
        session: Any,
        stream_id: int,
        buf: Any,
        length: int,
        data_flags: Any,
        source: Any,
        user_data: Any,
    ) -> int:
        streams: Streams = from_handle(user_data)
        body = streams.outgoing.get(stream_id)
        if body is None or not body.size:
            if body is not None and stream_id in streams.ending:
                data_flags[0] |= ng.DATA_FLAG_EOF
                return 0
            return ng.ERR_DEFERRED
        chunks = body.chunks
        taken = 0
        while chunks and taken < length:
            chunk = chunks[0]
            room = length - taken
            if len(chunk) <= room:
                memmove(buf + taken if taken else buf, chunk, len(chunk))
                taken += len(chunk)
                chunks.popleft()
            else:
                memmove(buf + taken if taken else buf, chunk, room)
                chunks[0] = memoryview(chunk)[room:]
                taken = length
        body.size -= taken
        streams.buffered -= taken
        if not body.size and stream_id in streams.ending:
            data_flags[0] |= ng.DATA_FLAG_EOF
        return taken

    # A callback that raises (a bug, never the client's input) fails the
    # session: GOAWAY INTERNAL_ERROR rather than nghttp2 going on as if
    # the frame had been handled. cffi reports the exception through
    # sys.unraisablehook (the traceback on stderr).
    fail = ng.ERR_CALLBACK_FAILURE
    made = (
        ffi.callback("nghttp2_on_header_callback", on_header, error=fail),
        ffi.callback("nghttp2_on_header_callback", on_invalid_header, error=fail),
        ffi.callback("nghttp2_on_data_chunk_recv_callback", on_data_chunk, error=fail),
        ffi.callback("nghttp2_on_frame_recv_callback", on_frame_recv, error=fail),
        ffi.callback("nghttp2_on_stream_close_callback", on_stream_close, error=fail),
        ffi.callback("nghttp2_on_begin_frame_callback", on_begin_frame, error=fail),
        ffi.callback("nghttp2_data_source_read_callback", read_body, error=fail),
    )
    pointer = ffi.new("nghttp2_session_callbacks **")
    if lib.nghttp2_session_callbacks_new(pointer) != 0:
        raise MemoryError("nghttp2_session_callbacks_new")
    table = pointer[0]
    lib.nghttp2_session_callbacks_set_on_header_callback(table, made[0])
    lib.nghttp2_session_callbacks_set_on_invalid_header_callback(table, made[1])
    lib.nghttp2_session_callbacks_set_on_data_chunk_recv_callback(table, made[2])
    lib.nghttp2_session_callbacks_set_on_frame_recv_callback(table, made[3])
    lib.nghttp2_session_callbacks_set_on_stream_close_callback(table, made[4])
    if not nghttp2.has_max_continuations:
        lib.nghttp2_session_callbacks_set_on_begin_frame_callback(table, made[5])
    provider = ffi.new("nghttp2_data_provider *")
    provider.read_callback = made[6]
    return (table, provider, *made)
