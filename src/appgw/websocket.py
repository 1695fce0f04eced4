"""WebSocket pieces that both the worker and the prober use (RFC 6455).

- accept_key: the Sec-WebSocket-Accept value that answers a handshake key
  (section 4.2.2); the worker checks a backend's 101 with it, the prober its
  WebSocket probe's.
- close_frame / parse_close_payload: a Close frame (section 5.5.1) built
  whole, and the code and reason read back from a Close payload. The worker's
  relay injects Close frames when it ends a tunnel; the prober closes its
  probe's session with one.

Pure functions, no I/O: both sides import them from here, neither reaches
into the other.
"""

from __future__ import annotations

import base64
import hashlib
import os

__all__ = ["MAX_CONTROL_PAYLOAD", "accept_key", "close_frame", "parse_close_payload"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_CONTROL_PAYLOAD = 125  # a control frame's payload, at most (section 5.5)
_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept value that answers a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())


def _sendable_close_code(code: int) -> bool:
    # Section 7.4: 1000-2999 for the protocol, 3000-4999 registered / private;
    # 1005, 1006 and 1015 must never be sent, 1004 is reserved.
    return 1000 <= code <= 4999 and code not in (1004, 1005, 1006, 1015)


def close_frame(code: int = 1001, reason: str = "", *, masked: bool) -> bytes:
    """A complete Close frame with `code` and `reason`.

    `masked` must be True for frames sent to a backend (a client's frames are
    masked, with a random key) and False towards a client. The reason is cut
    at a character boundary to fit the 125-byte control frame.
    """
    if not _sendable_close_code(code):
        raise ValueError(f"close code {code} cannot be sent in a Close frame")
    raw = reason.encode("utf-8", "replace")
    if len(raw) > _CLOSE_REASON_BYTES:
        cut = _CLOSE_REASON_BYTES
        while (raw[cut] & 0xC0) == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        raw = raw[:cut]
    payload = code.to_bytes(2, "big") + raw
    if not masked:
        return bytes((0x88, len(payload))) + payload
    key = os.urandom(4)
    body = bytes(byte ^ key[i & 3] for i, byte in enumerate(payload))
    return bytes((0x88, 0x80 | len(payload))) + key + body


def parse_close_payload(payload: bytes | bytearray | memoryview) -> tuple[int | None, str]:
    """The status code and reason of an unmasked Close payload.

    An empty (or 1-byte, malformed) payload has no code: ``(None, "")``.
    A reason that is not valid UTF-8 is decoded with replacement characters.
    """
    if len(payload) < 2:
        return None, ""
    data = bytes(payload)
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace")
