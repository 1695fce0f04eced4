"""How an HTTP/2 session starts on libnghttp2, and a look at its output.

`open_session` makes the server session with its options (manual window
updates, the flood bounds the library has) and queues the server's
SETTINGS. One thing is done behind nghttp2's back: it ends the whole
connection when a client goes over the stream limit it knows of, where
RFC 9113 5.1.2 asks only for the stream to be refused. So nghttp2 is
given a higher limit, the client is told the configured one (patched into
the serialized SETTINGS frame), and the callbacks refuse the streams over
it with REFUSED_STREAM.
"""

from __future__ import annotations

from typing import Any

from appgw.worker.codec import nghttp2_lib as ng
from appgw.worker.codec.h2_settings import H2Settings


def open_session(
    nghttp2: ng.Nghttp2, settings: H2Settings, callbacks: Any, user_data: Any
) -> tuple[Any, bytes]:
    """A server session (freed with its cdata) and its first bytes to write,
    the SETTINGS frame as the client must see it."""
    ffi, lib = nghttp2.ffi, nghttp2.lib
    option = _options(nghttp2, settings)
    pointer = ffi.new("nghttp2_session **")
    rv = lib.nghttp2_session_server_new2(pointer, callbacks, user_data, option)
    lib.nghttp2_option_del(option)
    if rv != 0:
        raise MemoryError(f"nghttp2_session_server_new2: {rv}")
    session = ffi.gc(pointer[0], lib.nghttp2_session_del)
    # 16 more than the client is told: room to refuse a burst of streams
    # over the limit. Not more: nghttp2 keeps as many closed streams (so
    # that frames on them are errors, RFC 9113 5.1), about 250 bytes each.
    internal = settings.max_concurrent_streams + 16
    entries = [
        (ng.SETTINGS_MAX_CONCURRENT_STREAMS, internal),
        (ng.SETTINGS_INITIAL_WINDOW_SIZE, settings.initial_window_bytes),
        (ng.SETTINGS_MAX_FRAME_SIZE, settings.max_frame_bytes),
        (ng.SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_list_bytes),
    ]
    if settings.enable_connect_protocol:
        entries.append((ng.SETTINGS_ENABLE_CONNECT_PROTOCOL, 1))
    iv = ffi.new("nghttp2_settings_entry[]", entries)
    lib.nghttp2_submit_settings(session, 0, iv, len(entries))
    out = ffi.new("const char **")
    n = lib.nghttp2_session_mem_send(session, out)
    first = _advertise_streams(ffi.unpack(out[0], n), internal, settings.max_concurrent_streams)
    extra = settings.connection_window_bytes - 65535
    if extra > 0:
        lib.nghttp2_submit_window_update(session, 0, 0, extra)
    return session, first


def _options(nghttp2: ng.Nghttp2, settings: H2Settings) -> Any:
    ffi, lib = nghttp2.ffi, nghttp2.lib
    pointer = ffi.new("nghttp2_option **")
    if lib.nghttp2_option_new(pointer) != 0:
        raise MemoryError("nghttp2_option_new")
    option = pointer[0]
    lib.nghttp2_option_set_no_auto_window_update(option, 1)
    # ACKs queued but unsent (a client that floods PING or SETTINGS and
    # reads nothing), and the entries of one SETTINGS frame.
    lib.nghttp2_option_set_max_outbound_ack(option, 1000)
    lib.nghttp2_option_set_max_settings(option, 32)
    # The response encoder's HPACK table, whatever the client offers.
    lib.nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096)
    if nghttp2.has_max_continuations:
        lib.nghttp2_option_set_max_continuations(option, settings.max_continuations)
    if nghttp2.has_stream_reset_rate_limit:
        # nghttp2's own budget, looser than ours, as a second line.
        lib.nghttp2_option_set_stream_reset_rate_limit(
            option, settings.reset_burst * 4, int(settings.reset_per_second * 4)
        )
    return option


def _advertise_streams(frame: bytes, internal: int, advertised: int) -> bytes:
    """The server's first SETTINGS frame with the advertised stream limit
    in place of the one nghttp2 keeps (its first entry)."""
    expected = ng.SETTINGS_MAX_CONCURRENT_STREAMS.to_bytes(2, "big") + internal.to_bytes(4, "big")
    if frame[3] != ng.SETTINGS or frame[9:15] != expected:
        raise RuntimeError("libnghttp2 serialized its SETTINGS frame unexpectedly")
    return frame[:11] + advertised.to_bytes(4, "big") + frame[15:]


def last_goaway(out: bytes) -> tuple[int, int, str] | None:
    """The last GOAWAY among serialized frames: (error code, last stream, debug)."""
    found = None
    at = 0
    while at + 9 <= len(out):
        length = int.from_bytes(out[at : at + 3], "big")
        if out[at + 3] == ng.GOAWAY and length >= 8:
            payload = out[at + 9 : at + 9 + length]
            last = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            code = int.from_bytes(payload[4:8], "big")
            found = (code, last, payload[8:].decode("utf-8", "replace"))
        at += 9 + length
    return found
