"""RFC 9113's errors, as the HTTP/2 codec answers them: malformed heads,
frames where they may not be, sizes over the limits.

Stream errors reset the stream (RST_STREAM, and StreamReset if the server
knew of it); connection errors queue GOAWAY and end with ConnectionEnded.
The frames are written raw (tests/support/h2_raw.py): h2 would refuse to
send most of them.
"""

from __future__ import annotations

import pytest
from hyperframe.frame import DataFrame

from appgw.worker.codec.h2_events import (
    ConnectionEnded,
    ErrorCode,
    HeadersRefused,
    RequestHeaders,
    StreamReset,
)
from appgw.worker.codec.h2_settings import H2Settings
from tests.support.h2_raw import GET, POST, frames, goaway, headers_frame, raw_session, resets


def test_trailers_without_end_stream_reset_the_stream():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    events = server.receive(headers_frame(encoder, 1, [("x-sum", "1")], end_stream=False))
    assert events == [StreamReset(1, ErrorCode.PROTOCOL_ERROR, False)]


def test_extended_connect_is_refused_when_switched_off():
    server, encoder = raw_session(H2Settings(enable_connect_protocol=False))
    connect = [(":method", "CONNECT"), (":protocol", "websocket"), *GET[1:]]
    assert server.receive(headers_frame(encoder, 1, connect, end_stream=False)) == []
    assert resets(server.pending()) == {1: ErrorCode.PROTOCOL_ERROR}


MALFORMED = {
    "no :path": [GET[0], GET[1], GET[2]],
    "an unknown pseudo-header": GET + [(":colour", "red")],
    "a pseudo-header after a field": [GET[0], ("accept", "*/*"), *GET[1:]],
    "a pseudo-header twice": GET + [(":path", "/again")],
    "connection": GET + [("connection", "keep-alive")],
    "keep-alive": GET + [("keep-alive", "timeout=5")],
    "transfer-encoding": GET + [("transfer-encoding", "chunked")],
    "upgrade": GET + [("upgrade", "websocket")],
    "te other than trailers": GET + [("te", "gzip")],
    "an upper-case name": GET + [("Accept", "*/*")],
    "a response pseudo-header": GET + [(":status", "200")],
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_head_resets_its_stream(fields):
    server, encoder = raw_session()
    assert server.receive(headers_frame(encoder, 1, fields)) == []
    assert resets(server.pending()) == {1: ErrorCode.PROTOCOL_ERROR}
    # The connection lives on.
    events = server.receive(headers_frame(encoder, 3, GET))
    assert [type(e) for e in events] == [RequestHeaders]


def test_te_trailers_is_accepted():
    server, encoder = raw_session()
    (event,) = server.receive(headers_frame(encoder, 1, GET + [("te", "trailers")]))
    assert isinstance(event, RequestHeaders)


def test_a_body_longer_than_content_length_resets_a_stream_the_server_knows():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, POST + [("content-length", "2")], end_stream=False))
    events = server.receive(DataFrame(1, data=b"abc").serialize())
    assert StreamReset(1, ErrorCode.PROTOCOL_ERROR, False) in events
    assert server.open_streams == 0


def test_data_on_a_closed_stream_ends_the_connection():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET))
    server.respond(1, 200, [], True)
    server.pending()
    (event,) = server.receive(DataFrame(1, data=b"late").serialize())
    assert event == ConnectionEnded(ErrorCode.STREAM_CLOSED, 1, False, "DATA: stream closed")
    assert goaway(server.pending()).error_code == ErrorCode.STREAM_CLOSED
    assert server.closed
    assert server.receive(headers_frame(encoder, 3, GET)) == []


def test_data_on_an_idle_stream_is_a_protocol_error():
    server, _ = raw_session()
    (event,) = server.receive(DataFrame(5, data=b"x").serialize())
    assert isinstance(event, ConnectionEnded) and event.error_code == ErrorCode.PROTOCOL_ERROR


def test_a_frame_over_max_frame_bytes_is_a_frame_size_error():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    (event,) = server.receive(DataFrame(1, data=b"x" * 16385).serialize())
    assert isinstance(event, ConnectionEnded)
    assert (event.error_code, event.remote) == (ErrorCode.FRAME_SIZE_ERROR, False)
    assert goaway(server.pending()).error_code == ErrorCode.FRAME_SIZE_ERROR


def test_a_field_over_max_header_field_bytes_is_refused_with_431():
    server, encoder = raw_session()
    events = server.receive(headers_frame(encoder, 1, GET + [("cookie", "c" * 9000)]))
    assert events == [HeadersRefused(1, 431)]
    server.respond(1, 431, [], True)
    assert [type(f).__name__ for f in frames(server.pending())] == ["HeadersFrame"]
    assert [type(e) for e in server.receive(headers_frame(encoder, 3, GET))] == [RequestHeaders]


def test_a_list_over_max_header_list_bytes_is_refused_with_431():
    server, encoder = raw_session()
    fields = GET + [(f"x-field-{i}", "v" * 1000) for i in range(17)]
    assert server.receive(headers_frame(encoder, 1, fields, end_stream=False)) == [
        HeadersRefused(1, 431)
    ]
    # Its body is not the server's business; the codec returns the window.
    assert server.receive(DataFrame(1, data=b"x" * 1000).serialize()) == []


def test_trailers_over_the_limit_reset_the_stream():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    server.receive(DataFrame(1, data=b"body").serialize())
    trailers = [(f"x-sum-{i}", "s" * 1000) for i in range(17)]
    events = server.receive(headers_frame(encoder, 1, trailers))
    assert events == [StreamReset(1, ErrorCode.ENHANCE_YOUR_CALM, False)]
    assert resets(server.pending()) == {1: ErrorCode.ENHANCE_YOUR_CALM}


def test_streams_over_max_concurrent_streams_are_refused():
    server, encoder = raw_session(H2Settings(max_concurrent_streams=2))
    events = server.receive(b"".join(headers_frame(encoder, i, GET) for i in (1, 3, 5)))
    assert [e.stream_id for e in events] == [1, 3]
    assert resets(server.pending()) == {5: ErrorCode.REFUSED_STREAM}
    server.respond(1, 204, [], True)
    server.pending()
    assert [e.stream_id for e in server.receive(headers_frame(encoder, 7, GET))] == [7]


def test_a_connection_error_found_while_output_waits_is_reported_after_pending():
    server, encoder = raw_session()
    server.receive(headers_frame(encoder, 1, GET))
    server.respond(1, 200, [], False)
    server.send_data(1, b"x" * 65535, False)
    server.receive(headers_frame(encoder, 3, GET))  # serializes the body: 64 KiB unwritten
    assert server.receive(DataFrame(5, data=b"x").serialize()) == []
    assert goaway(server.pending()).error_code == ErrorCode.PROTOCOL_ERROR
    (event,) = server.receive(b"more")
    assert isinstance(event, ConnectionEnded) and event.error_code == ErrorCode.PROTOCOL_ERROR
    assert server.closed


def test_a_burst_of_sixteen_streams_over_the_limit_is_refused_one_by_one():
    server, encoder = raw_session(H2Settings(max_concurrent_streams=2))
    wire = b"".join(headers_frame(encoder, 1 + 2 * i, GET, end_stream=False) for i in range(18))
    events = server.receive(wire)
    assert [e.stream_id for e in events] == [1, 3]
    refused = resets(server.pending())
    assert refused == {1 + 2 * i: ErrorCode.REFUSED_STREAM for i in range(2, 18)}
