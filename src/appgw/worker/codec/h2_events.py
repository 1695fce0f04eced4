"""What the HTTP/2 codec tells the server: small immutable events.

`H2Session.receive` returns them in the order the frames arrived. Streams
are the client's (odd ids); stream 0 is the connection.
"""

from __future__ import annotations

from enum import IntEnum

from attrs import frozen


class ErrorCode(IntEnum):
    """RFC 9113 section 7: the codes of RST_STREAM and GOAWAY."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


@frozen
class RequestHeaders:
    """A request's head: pseudo-headers first, as received, already valid
    by RFC 9113 8.2 and 8.3 (a malformed head resets its stream instead)."""

    stream_id: int
    headers: list[tuple[bytes, bytes]]
    end_stream: bool


@frozen
class RequestData:
    """Body bytes of one DATA frame. Hand `flow_length` back through
    `H2Session.consumed` once the bytes are forwarded: that opens the
    client's window again (the codec returns padding itself)."""

    stream_id: int
    data: bytes
    flow_length: int
    end_stream: bool


@frozen
class RequestTrailers:
    """The request's trailer fields; they end the stream."""

    stream_id: int
    headers: list[tuple[bytes, bytes]]


@frozen
class HeadersRefused:
    """A request's head over a limit (one field over max_header_field_bytes,
    or the list over max_header_list_bytes): answer `status` (431) on the
    stream; its body is dropped. (Trailers over a limit reset the stream.)"""

    stream_id: int
    status: int


@frozen
class StreamReset:
    """The stream ended abnormally: reset by the client (remote) or by the
    codec for a stream error the client made."""

    stream_id: int
    error_code: int
    remote: bool


@frozen
class WindowOpened:
    """The client opened a flow-control window: the stream's, or the
    connection's (stream_id 0), so data held back may go on."""

    stream_id: int


@frozen
class ConnectionEnded:
    """A GOAWAY from the client (remote), or a connection error the codec
    found: its own GOAWAY with `error_code` is queued in `pending()`."""

    error_code: int
    last_stream_id: int
    remote: bool
    reason: str


Event = (
    RequestHeaders
    | RequestData
    | RequestTrailers
    | HeadersRefused
    | StreamReset
    | WindowOpened
    | ConnectionEnded
)
