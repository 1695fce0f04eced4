"""Raw HTTP/2 frames for tests of the codec: what h2 would refuse to send.

A server session past the client's preface and SETTINGS, header blocks
encoded with hpack, and the server's bytes parsed back with hyperframe.
"""

from __future__ import annotations

from hpack import Encoder
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, RstStreamFrame, SettingsFrame

from appgw.worker.codec.h2_session import H2Session
from appgw.worker.codec.h2_settings import H2Settings

GET = [(":method", "GET"), (":scheme", "https"), (":authority", "example.com"), (":path", "/")]
POST = [(":method", "POST"), *GET[1:]]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def raw_session(settings: H2Settings | None = None, **session: object) -> tuple[H2Session, Encoder]:
    """A server that has had a bare client preface and SETTINGS (and ACK)."""
    server = H2Session(settings or H2Settings(), **session)  # type: ignore[arg-type]
    server.receive(PREFACE + SettingsFrame(0).serialize())
    ack = SettingsFrame(0)
    ack.flags.add("ACK")
    server.receive(ack.serialize())
    server.pending()
    return server, Encoder()


def headers_frame(
    encoder: Encoder, stream_id: int, fields, end_stream: bool = True, end_headers: bool = True
) -> bytes:
    frame = HeadersFrame(stream_id)
    frame.data = encoder.encode(fields)
    if end_headers:
        frame.flags.add("END_HEADERS")
    if end_stream:
        frame.flags.add("END_STREAM")
    return frame.serialize()


def frames(data: bytes) -> list[Frame]:
    """The server's bytes, parsed frame by frame."""
    found = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        found.append(frame)
        data = data[9 + length :]
    return found


def resets(data: bytes) -> dict[int, int]:
    return {f.stream_id: f.error_code for f in frames(data) if isinstance(f, RstStreamFrame)}


def goaway(data: bytes) -> GoAwayFrame:
    (found,) = [f for f in frames(data) if isinstance(f, GoAwayFrame)]
    return found
