"""RFC 9113 conformance of the HTTP/2 codec, case by case, in the manner of
h2spec: each case writes raw frames after the preface and names the answer
the RFC requires: a GOAWAY with its code (a connection error), a
RST_STREAM with its code (a stream error; RFC 9113 5.4.1 lets an endpoint
make any stream error a connection error, and libnghttp2 does so for
several, so GOAWAY with the same code passes too), or nothing wrong (the
next request is served).

One case is libnghttp2's own choice: a HEADERS on a stream id below the
last one is ignored, not a connection error (it cannot tell a stream it
never saw from one it closed and forgot, and a client may rightly send
trailers on a stream it has not yet seen reset). The request is not
served either way.
"""

from __future__ import annotations

import pytest
from hpack import Encoder
from hyperframe.frame import GoAwayFrame, PingFrame, RstStreamFrame

from appgw.worker.codec.h2_events import ErrorCode, RequestHeaders
from tests.support.h2_raw import GET, POST, frames, raw_session

E = ErrorCode
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def head(encoder: Encoder, stream_id: int, fields=GET, flags=END_STREAM | END_HEADERS) -> bytes:
    return frame(HEADERS, flags, stream_id, encoder.encode(fields))


def post(encoder: Encoder, stream_id: int = 1) -> bytes:
    return head(encoder, stream_id, POST, END_HEADERS)


# name: (frames made with the client's encoder, expected answer)
CASES = {
    # 4.1, 5.5: what is unknown is ignored.
    "unknown frame type": (lambda e: frame(0x20, 0, 0, b"xx"), "ok"),
    "unknown flags": (lambda e: frame(PING, 0xFE, 0, b"12345678"), "ok"),
    "reserved bit of the stream id": (lambda e: frame(PING, 0, 0x80000000, b"12345678"), "ok"),
    "unknown setting": (lambda e: frame(SETTINGS, 0, 0, b"\x00\xff" + u32(1)), "ok"),
    # 4.2: sizes.
    "HEADERS over max frame size": (
        lambda e: frame(HEADERS, END_HEADERS, 1, b"\x00" * 16385),
        ("goaway", E.FRAME_SIZE_ERROR),
    ),
    # 4.3: header compression.
    "a broken HPACK block": (
        lambda e: frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\xff\xff\xff\xff"),
        ("goaway", E.COMPRESSION_ERROR),
    ),
    "a frame between HEADERS and CONTINUATION": (
        lambda e: head(e, 1, flags=END_STREAM) + frame(PING, 0, 0, b"12345678"),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    "CONTINUATION after END_HEADERS": (
        lambda e: head(e, 1, flags=END_HEADERS) + frame(CONT, END_HEADERS, 1, b""),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    # 5.1: stream states.
    "even stream id": (lambda e: head(e, 2), ("goaway", E.PROTOCOL_ERROR)),
    "decreasing stream id": (lambda e: head(e, 5) + head(e, 3), "ignored"),
    "RST_STREAM on an idle stream": (
        lambda e: frame(RST, 0, 1, u32(E.CANCEL)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    "WINDOW_UPDATE on an idle stream": (
        lambda e: frame(WINDOW, 0, 1, u32(100)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    "DATA on a half-closed (remote) stream": (
        lambda e: head(e, 1, GET + [("accept", "x")]) + frame(DATA, 0, 1, b"x"),
        ("rst", 1, E.STREAM_CLOSED),
    ),
    "HEADERS on a half-closed (remote) stream": (
        lambda e: head(e, 1) + head(e, 1, [("x", "y")]),
        ("goaway", E.STREAM_CLOSED),
    ),
    # 5.3: priority.
    "a stream depending on itself": (
        lambda e: frame(PRIORITY, 0, 1, u32(1) + b"\x10"),
        ("rst", 1, E.PROTOCOL_ERROR),
    ),
    # 6.1 DATA.
    "DATA on stream 0": (lambda e: frame(DATA, 0, 0, b"x"), ("goaway", E.PROTOCOL_ERROR)),
    "padding longer than the frame": (
        lambda e: post(e) + frame(DATA, PADDED, 1, b"\x05abc"),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    # 6.2 HEADERS.
    "HEADERS on stream 0": (lambda e: head(e, 0), ("goaway", E.PROTOCOL_ERROR)),
    # 6.3 PRIORITY.
    "PRIORITY of the wrong length": (
        lambda e: frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00"),
        ("rst", 1, E.FRAME_SIZE_ERROR),
    ),
    "PRIORITY on stream 0": (
        lambda e: frame(PRIORITY, 0, 0, u32(1) + b"\x10"),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    # 6.4 RST_STREAM.
    "RST_STREAM on stream 0": (
        lambda e: frame(RST, 0, 0, u32(E.CANCEL)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    "RST_STREAM of the wrong length": (
        lambda e: post(e) + frame(RST, 0, 1, b"\x00\x00\x00"),
        ("goaway", E.FRAME_SIZE_ERROR),
    ),
    # 6.5 SETTINGS.
    "SETTINGS ACK with a payload": (
        lambda e: frame(SETTINGS, ACK, 0, b"\x00\x01" + u32(1)),
        ("goaway", E.FRAME_SIZE_ERROR),
    ),
    "SETTINGS on a stream": (lambda e: frame(SETTINGS, 0, 1, b""), ("goaway", E.PROTOCOL_ERROR)),
    "SETTINGS of a length not a multiple of 6": (
        lambda e: frame(SETTINGS, 0, 0, b"\x00\x01\x00"),
        ("goaway", E.FRAME_SIZE_ERROR),
    ),
    "ENABLE_PUSH other than 0 or 1": (
        lambda e: frame(SETTINGS, 0, 0, b"\x00\x02" + u32(2)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    "INITIAL_WINDOW_SIZE over 2^31-1": (
        lambda e: frame(SETTINGS, 0, 0, b"\x00\x04" + u32(2**31)),
        ("goaway", E.FLOW_CONTROL_ERROR),
    ),
    "MAX_FRAME_SIZE under 16384": (
        lambda e: frame(SETTINGS, 0, 0, b"\x00\x05" + u32(16383)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    # 6.7 PING.
    "PING on a stream": (lambda e: frame(PING, 0, 1, b"12345678"), ("goaway", E.PROTOCOL_ERROR)),
    "PING of the wrong length": (
        lambda e: frame(PING, 0, 0, b"1234567"),
        ("goaway", E.FRAME_SIZE_ERROR),
    ),
    # 6.8 GOAWAY.
    "GOAWAY on a stream": (
        lambda e: frame(GOAWAY, 0, 1, u32(0) + u32(0)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    # 6.9 WINDOW_UPDATE and flow control.
    "WINDOW_UPDATE of 0 on the connection": (
        lambda e: frame(WINDOW, 0, 0, u32(0)),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    "WINDOW_UPDATE of 0 on a stream": (
        lambda e: post(e) + frame(WINDOW, 0, 1, u32(0)),
        ("rst", 1, E.PROTOCOL_ERROR),
    ),
    "the connection window over 2^31-1": (
        lambda e: frame(WINDOW, 0, 0, u32(2**31 - 1)),
        ("goaway", E.FLOW_CONTROL_ERROR),
    ),
    "a stream window over 2^31-1": (
        lambda e: post(e) + frame(WINDOW, 0, 1, u32(2**31 - 1)),
        ("rst", 1, E.FLOW_CONTROL_ERROR),
    ),
    "DATA over the stream's window": (
        lambda e: b"".join(
            [
                frame(SETTINGS, 0, 0, b"\x00\x05" + u32(2**20)),  # the client's own frames
                post(e),
                *[frame(DATA, 0, 1, b"x" * 16384) for _ in range(17)],  # 272 KiB > 256 KiB
            ]
        ),
        ("rst", 1, E.FLOW_CONTROL_ERROR),
    ),
    # 6.10 CONTINUATION.
    "CONTINUATION on another stream": (
        lambda e: head(e, 1, flags=END_STREAM) + frame(CONT, END_HEADERS, 3, b""),
        ("goaway", E.PROTOCOL_ERROR),
    ),
    # 8.1: messages.
    "content-length and DATA disagree": (
        lambda e: (
            head(e, 1, POST + [("content-length", "3")], END_HEADERS)
            + frame(DATA, END_STREAM, 1, b"x")
        ),
        ("rst", 1, E.PROTOCOL_ERROR),
    ),
    "a second HEADERS that is not trailers": (
        lambda e: post(e) + head(e, 1, [("x", "y")], END_HEADERS),
        ("rst", 1, E.PROTOCOL_ERROR),
    ),
    "an empty :path": (
        lambda e: head(e, 1, [GET[0], GET[1], GET[2], (":path", "")]),
        ("rst", 1, E.PROTOCOL_ERROR),
    ),
}


@pytest.mark.parametrize("make, expected", CASES.values(), ids=CASES.keys())
def test_rfc_9113(make, expected):
    server, encoder = raw_session()
    events = server.receive(make(encoder))
    answer = frames(server.pending())
    goaways = [f for f in answer if isinstance(f, GoAwayFrame)]
    resets = {f.stream_id: f.error_code for f in answer if isinstance(f, RstStreamFrame)}
    if expected == "ignored":
        assert not goaways and not resets
        assert [e.stream_id for e in events if isinstance(e, RequestHeaders)] == [5]
    elif expected == "ok":
        assert not goaways and not resets
        if any(isinstance(f, PingFrame) for f in answer):
            assert all("ACK" in f.flags for f in answer if isinstance(f, PingFrame))
        events = server.receive(frame(HEADERS, END_STREAM | END_HEADERS, 101, encoder.encode(GET)))
        assert [type(e) for e in events] == [RequestHeaders]
    elif expected[0] == "goaway":
        assert [g.error_code for g in goaways] == [expected[1]]
        assert server.closed
    else:
        _, stream_id, code = expected
        if goaways:
            assert [g.error_code for g in goaways] == [code]
        else:
            assert resets == {stream_id: code}
