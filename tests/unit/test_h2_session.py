"""The HTTP/2 codec (libnghttp2 behind H2Session) against python-hyper's h2.

h2 is the independent client: it speaks the protocol from its own reading
of RFC 9113, and what it receives is what a browser would. Frames h2
refuses to send (malformed ones) are built with hyperframe and hpack and
written raw; the server's answer is then read back frame by frame.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame, WindowUpdateFrame

from appgw.worker.codec import nghttp2_lib
from appgw.worker.codec.h2_events import (
    ConnectionEnded,
    ErrorCode,
    RequestData,
    RequestHeaders,
    RequestTrailers,
    StreamReset,
    WindowOpened,
)
from appgw.worker.codec.h2_session import H2Session
from appgw.worker.codec.h2_settings import H2Settings
from tests.support.h2_raw import GET, POST, frames, goaway, headers_frame, raw_session, resets


class Pair:
    """An h2 client wired to an H2Session, back to back."""

    def __init__(self, settings: H2Settings | None = None) -> None:
        self.server = H2Session(settings or H2Settings())
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.client.initiate_connection()

    def to_server(self) -> list[object]:
        return self.server.receive(self.client.data_to_send())

    def to_client(self) -> list[h2.events.Event]:
        out = self.server.pending()
        return self.client.receive_data(out) if out else []

    def exchange(self) -> tuple[list[object], list[h2.events.Event]]:
        """Client bytes to the server, the server's answer back."""
        return self.to_server(), self.to_client()

    def ready(self) -> Pair:
        """Past the prefaces and both SETTINGS ACKs."""
        self.exchange()
        self.exchange()
        return self


def test_the_library_is_found_and_its_version_reported(capsys):
    nghttp2 = nghttp2_lib.load()
    assert nghttp2.version.startswith("1.")
    with capsys.disabled():
        print(f"\nlibnghttp2 {nghttp2.version}", end=" ")


def test_the_server_advertises_its_limits_and_extended_connect():
    pair = Pair(H2Settings(max_concurrent_streams=7))
    _, answer = pair.exchange()
    (changed,) = [e for e in answer if isinstance(e, h2.events.RemoteSettingsChanged)]
    values = {int(k): v.new_value for k, v in changed.changed_settings.items()}
    assert values == {3: 7, 4: 262144, 5: 16384, 6: 16384, 8: 1}


def test_a_get_and_its_response():
    pair = Pair().ready()
    pair.client.send_headers(1, GET + [("accept", "*/*")], end_stream=True)
    events = pair.to_server()
    assert events == [
        RequestHeaders(
            1,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"example.com"),
                (b":path", b"/"),
                (b"accept", b"*/*"),
            ],
            True,
        )
    ]
    assert pair.server.open_streams == 1
    pair.server.respond(1, 200, [(b"content-type", b"text/plain"), (b"connection", b"close")], False)
    assert pair.server.send_data(1, b"hello", True) == 5
    answer = pair.to_client()
    response, data, ended = answer
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert data.data == b"hello"
    assert isinstance(ended, h2.events.StreamEnded)
    assert pair.server.open_streams == 0


def test_response_field_names_are_lowered_and_hop_by_hop_ones_dropped():
    pair = Pair().ready()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    fields = [(b"Content-Type", b"text/html"), (b"Keep-Alive", b"timeout=5"), (b"X-Id", b"7")]
    pair.server.respond(1, 404, fields, True)
    (response, _) = pair.to_client()
    assert response.headers == [(b":status", b"404"), (b"content-type", b"text/html"), (b"x-id", b"7")]
    with pytest.raises(ValueError):
        pair.server.respond(1, 1000, [], True)


def test_a_post_body_waits_for_consumed_before_the_window_opens():
    pair = Pair().ready()
    pair.client.send_headers(1, POST, end_stream=False)
    body = bytes(range(256)) * 800  # 204,800 bytes, within the 256 KiB stream window
    for at in range(0, len(body), 16384):
        pair.client.send_data(1, body[at : at + 16384], end_stream=at + 16384 >= len(body))
    events = pair.to_server()
    assert isinstance(events[0], RequestHeaders)
    data = [e for e in events if isinstance(e, RequestData)]
    assert b"".join(e.data for e in data) == body
    assert data[-1].end_stream and not any(e.end_stream for e in data[:-1])
    assert all(e.flow_length == len(e.data) for e in data)
    # Nothing consumed: no WINDOW_UPDATE, whatever the client sends meanwhile.
    pair.client.ping(b"12345678")
    pair.to_server()
    assert not [e for e in pair.to_client() if isinstance(e, h2.events.WindowUpdated)]
    for event in data:
        pair.server.consumed(1, event.flow_length)
    updates = [e for e in pair.to_client() if isinstance(e, h2.events.WindowUpdated)]
    assert {e.stream_id for e in updates} >= {1}


def test_padding_is_returned_by_the_codec():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    frame = DataFrame(1, data=b"abc", pad_length=200)
    frame.flags.add("END_STREAM")
    frame.flags.add("PADDED")
    (event,) = server.receive(frame.serialize())
    assert event == RequestData(1, b"abc", 3, True)


def test_a_body_bigger_than_the_clients_window_waits_for_window_update():
    pair = Pair().ready()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.exchange()
    pair.server.respond(1, 200, [], False)
    body = b"x" * 100_000
    assert pair.server.window(1) == 65535
    taken = pair.server.send_data(1, body, True)
    assert taken == 65535
    assert pair.server.window(1) == 0 and pair.server.window(0) == 0
    received = [e for e in pair.to_client() if isinstance(e, h2.events.DataReceived)]
    assert sum(len(e.data) for e in received) == 65535
    pair.client.increment_flow_control_window(50_000, stream_id=1)
    pair.client.increment_flow_control_window(50_000)
    events = pair.to_server()
    assert WindowOpened(1) in events and WindowOpened(0) in events
    assert pair.server.send_data(1, body[taken:], True) == len(body) - taken
    answer = pair.to_client()
    assert sum(len(e.data) for e in answer if isinstance(e, h2.events.DataReceived)) == 34465
    assert isinstance(answer[-1], h2.events.StreamEnded)


def test_window_updates_make_one_event_per_window_and_read():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET))
    server.respond(1, 200, [], False)
    updates = b"".join(WindowUpdateFrame(i % 2, window_increment=1).serialize() for i in range(100))
    assert server.receive(updates) == [WindowOpened(0), WindowOpened(1)]
    assert server.receive(updates) == [WindowOpened(0), WindowOpened(1)]


def test_a_mutable_buffer_is_copied_when_taken_bytes_are_not():
    pair = Pair().ready()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.to_server()
    pair.server.respond(1, 200, [], False)
    buffer = bytearray(b"first")
    assert pair.server.send_data(1, memoryview(buffer), False) == 5
    buffer[:] = b"XXXXX"  # the owner reuses its buffer before the frame is made
    kept = b"second"
    assert pair.server.send_data(1, memoryview(kept)[1:], True) == 5
    body = pair.server._streams.outgoing[1].chunks[1]
    assert isinstance(body, memoryview) and body.obj is kept
    received = [e.data for e in pair.to_client() if isinstance(e, h2.events.DataReceived)]
    assert b"".join(received) == b"firstecond"


def test_request_trailers_end_the_stream():
    pair = Pair().ready()
    pair.client.send_headers(1, POST + [("te", "trailers")], end_stream=False)
    pair.client.send_data(1, b"body")
    pair.client.send_headers(1, [("checksum", "abc")], end_stream=True)
    events = pair.to_server()
    assert [type(e) for e in events] == [RequestHeaders, RequestData, RequestTrailers]
    assert events[2] == RequestTrailers(1, [(b"checksum", b"abc")])


def test_extended_connect_for_a_websocket():
    pair = Pair().ready()
    connect = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":authority", "example.com"),
        (":path", "/chat"),
        ("sec-websocket-version", "13"),
    ]
    pair.client.send_headers(1, connect, end_stream=False)
    (head,) = pair.to_server()
    assert head.headers[1] == (b":protocol", b"websocket") and not head.end_stream
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, b"\x81\x02hi", False)
    response, data = pair.to_client()
    assert response.headers == [(b":status", b"200")] and data.data == b"\x81\x02hi"
    pair.client.send_data(1, b"\x81\x82abcd..")
    assert pair.to_server() == [RequestData(1, b"\x81\x82abcd..", 8, False)]


def test_no_library_is_a_clear_error_naming_the_package(monkeypatch):
    monkeypatch.setattr(nghttp2_lib, "_loaded", None)
    monkeypatch.setattr(nghttp2_lib, "SONAME", "libnghttp2.so.0-not-here")
    monkeypatch.setattr(nghttp2_lib.nghttp2_library.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(nghttp2_lib.H2Unavailable, match="libnghttp2-14"):
        H2Session(H2Settings())


def test_goaway_lets_streams_in_flight_finish():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET) + headers_frame(encoder, 3, GET))
    server.goaway()
    sent = goaway(server.pending())
    assert (sent.error_code, sent.last_stream_id) == (0, 3)
    assert not server.closed
    for stream_id in (1, 3):
        server.respond(stream_id, 204, [], True)
    assert [f.stream_id for f in frames(server.pending())] == [1, 3]
    assert server.closed


def test_streams_after_goaway_are_ignored():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET))
    server.goaway()
    assert goaway(server.pending()).last_stream_id == 1
    assert server.receive(headers_frame(encoder, 3, GET)) == []


def test_a_goaway_from_the_client():
    pair = Pair().ready()
    pair.client.close_connection(error_code=0, additional_data=b"bye")
    assert pair.to_server() == [ConnectionEnded(0, 0, True, "bye")]


def test_a_client_reset_is_reported():
    pair = Pair().ready()
    pair.client.send_headers(1, GET, end_stream=False)
    pair.to_server()
    pair.client.reset_stream(1, error_code=ErrorCode.CANCEL)
    assert pair.to_server() == [StreamReset(1, ErrorCode.CANCEL, True)]
    assert pair.server.open_streams == 0


def test_unconsumed_body_is_returned_to_the_connection_when_its_stream_ends():
    pair = Pair(H2Settings(connection_window_bytes=65535)).ready()
    pair.client.send_headers(1, POST, end_stream=False)
    for _ in range(3):
        pair.client.send_data(1, b"x" * 16000)
    pair.to_server()
    pair.client.reset_stream(1)
    _, answer = pair.exchange()
    updates = [e for e in answer if isinstance(e, h2.events.WindowUpdated)]
    assert [(e.stream_id, e.delta) for e in updates] == [(0, 48000)]


def test_response_sent_once_its_end_stream_is_out():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    server.respond(1, 200, [], False)
    assert not server.response_sent(1)
    server.send_data(1, b"done", True)
    assert not server.response_sent(1)
    server.pending()
    assert server.response_sent(1)
    server.reset(1, ErrorCode.NO_ERROR)
    assert resets(server.pending()) == {1: ErrorCode.NO_ERROR}
    assert server.response_sent(1)  # gone
    server.receive(headers_frame(encoder, 3, GET))
    server.respond(3, 204, [], True)
    assert not server.response_sent(3)
    server.pending()
    assert server.response_sent(3)


def test_answers_to_a_stream_the_client_reset_go_nowhere():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET, end_stream=False))
    server.receive(RstStreamFrame(1, error_code=ErrorCode.CANCEL).serialize())
    server.respond(1, 200, [], False)
    assert server.send_data(1, b"late", True) == 0
    server.reset(1, ErrorCode.CANCEL)  # never a RST_STREAM for a RST_STREAM
    assert server.pending() == b""
    assert not server._streams.outgoing  # nothing kept for it


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_bug_in_a_callback_fails_the_connection_not_the_caller():
    class Broken(list):
        def append(self, event):
            self.append = super().append  # once
            raise RuntimeError("a bug")

    server, encoder = raw_session()
    server._streams.events = Broken()
    assert server.receive(headers_frame(encoder, 1, GET)) == [
        ConnectionEnded(ErrorCode.INTERNAL_ERROR, 1, False, "the HTTP/2 codec failed")
    ]
    assert goaway(server.pending()).error_code == ErrorCode.INTERNAL_ERROR


def test_body_of_a_stream_the_server_reset_returns_its_window():
    pair = Pair(H2Settings(connection_window_bytes=65535)).ready()
    pair.client.send_headers(1, POST, end_stream=False)
    pair.to_server()
    pair.server.reset(1, ErrorCode.CANCEL)  # the client's DATA is on its way meanwhile
    for _ in range(3):
        pair.client.send_data(1, b"x" * 16000)
    assert pair.to_server() == []
    updates = [e for e in pair.to_client() if isinstance(e, h2.events.WindowUpdated)]
    assert [(e.stream_id, e.delta) for e in updates] == [(0, 48000)]


def test_a_server_reset_sends_rst_stream_and_no_event():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET, end_stream=False))
    server.reset(1, ErrorCode.INTERNAL_ERROR)
    assert resets(server.pending()) == {1: ErrorCode.INTERNAL_ERROR}
    assert server.open_streams == 0
    assert server.receive(DataFrame(1, data=b"x").serialize()) == []


def test_no_cycle_between_a_session_and_its_callbacks_state():
    import gc
    import weakref

    gc.collect()
    gc.disable()
    try:
        server, encoder = raw_session()
        server.receive(headers_frame(encoder, 1, GET))
        ref = weakref.ref(server)
        del server
        assert ref() is None
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_long_connection_keeps_nothing_of_its_closed_streams():
    server, encoder = raw_session(H2Settings(reset_burst=10**6))
    big = [("x-big", "b" * 9000)]
    for i in range(400):
        stream_id = 1 + 2 * i
        kind = i % 4
        if kind == 3:
            head = HeadersFrame(stream_id, data=encoder.encode(GET + big, huffman=False))
            head.flags.add("END_HEADERS")
            head.flags.add("END_STREAM")
            server.receive(head.serialize())
        else:
            server.receive(headers_frame(encoder, stream_id, POST, end_stream=False))
        if kind == 0:  # answered whole, body consumed
            end = DataFrame(stream_id, data=b"abc", flags=["END_STREAM"])
            (event,) = server.receive(end.serialize())
            server.consumed(stream_id, event.flow_length)
            server.respond(stream_id, 200, [], False)
            server.send_data(stream_id, b"x" * 100, True)
        elif kind == 1:  # the client gives up mid-body
            server.receive(DataFrame(stream_id, data=b"abc").serialize())
            server.receive(RstStreamFrame(stream_id, error_code=ErrorCode.CANCEL).serialize())
        elif kind == 2:  # the server gives up mid-answer
            server.respond(stream_id, 200, [], False)
            server.send_data(stream_id, b"x" * 100, False)
            server.reset(stream_id, ErrorCode.INTERNAL_ERROR)
        else:  # 431
            server.respond(stream_id, 431, [], True)
        server.pending()
    streams = server._streams
    assert server.open_streams == 0
    for table in (streams.chunks, streams.unconsumed, streams.outgoing, streams.ending):
        assert not table
    assert not streams.refused and not streams.uncounted and streams.buffered == 0
