"""WebSocket frame boundaries in a relayed byte stream, without touching payloads.

After ``101 Switching Protocols`` a tunnel relays bytes both ways untouched.
To end a tunnel cleanly (drain deadline, idle timeout) the relay sends a Close
frame (1001, Going Away) to each side, and it must do so between two frames,
never inside a frame it is still relaying. A :class:`FrameTracker` per
direction knows where frames begin and end by reading frame headers only
(RFC 6455 section 5.2)::

    byte 0   FIN, RSV1-3, opcode (4 bits)
    byte 1   MASK, payload length (7 bits: 0-125, 126 = 16-bit, 127 = 64-bit)
    2 or 8   extended payload length, network order (only for 126 / 127)
    4        masking key (only when MASK is set)

then skips the payload by arithmetic. Cost per ``feed()`` is O(frame headers
in the chunk): integer offsets into the caller's buffer, no copy of the
chunk, no loop over payload bytes. A header split across reads (down to one
byte per read) is kept in a buffer of at most 14 bytes. The only payload bytes
ever read are the first two of a Close frame, unmasked, to learn its code.

A frame boundary is enough to inject a Close: control frames (Close
included) may come between the fragments of a fragmented message.

API::

    t = FrameTracker(masked=None)  # True: client to backend, False: backend
                                   # to client, None: do not check the MASK bit
    t.feed(data)          # account for relayed bytes (bytes, bytearray, or a
                          # byte-format memoryview); never raises on any input
    t.boundary_in(data)   # bytes of `data` to relay to reach the next frame
                          # boundary: 0 at a boundary now, None if none in `data`
    t.at_boundary         # between two frames (False once broken)
    t.frames              # frames completed so far
    t.in_message          # inside a fragmented data message (as of the last header)
    t.close_seen          # a whole Close frame has been relayed
    t.close_code          # its status code, None if it had none (first Close only)
    t.broken, t.error     # lost sync: the stream is not WebSocket framing

The Close frame the relay injects is built by appgw.websocket.close_frame.

Extension bits (RSV1-3, e.g. permessage-deflate) and reserved opcodes are
tracked like any frame: they do not change where a frame ends. The tracker
reports itself broken, and stops tracking, only on what no conforming peer
sends whatever its extensions, which is what a stream out of sync (or not
WebSocket at all) soon produces: a 64-bit length with its top bit set, a
control frame (opcode 0x8-0xF) that is fragmented or longer than 125 bytes, a
continuation frame outside a fragmented message, a new data message inside
one, and, when the tracker knows its direction, a MASK bit that is wrong for
it. A broken tracker has no boundary: the relay then closes the connection.
"""

from __future__ import annotations

from appgw.websocket import MAX_CONTROL_PAYLOAD as _MAX_CONTROL_PAYLOAD

__all__ = ["FrameTracker"]

_MAX_HEADER = 14  # 2 + 8 (64-bit length) + 4 (masking key)

# What the first header byte means, given whether a fragmented message is open.
_PLAIN = 0  # no state change: a whole data message, a middle fragment
_OPEN = 1  # first fragment of a data message (FIN clear)
_END = 2  # last fragment (continuation with FIN set)
_CONTROL = 3  # ping, pong, reserved control opcodes: at most 125 bytes
_CLOSE = 4  # a Close frame: at most 125 bytes, code in its first 2 bytes
_BAD = 5  # cannot happen in a conforming stream


def _kind(b0: int, in_message: bool) -> int:
    fin = b0 & 0x80
    opcode = b0 & 0x0F
    if opcode >= 0x8:
        if not fin:
            return _BAD
        return _CLOSE if opcode == 0x8 else _CONTROL
    if opcode == 0x0:
        if not in_message:
            return _BAD
        return _END if fin else _PLAIN
    if in_message:
        return _BAD
    return _PLAIN if fin else _OPEN


_KINDS = (
    tuple(_kind(b0, False) for b0 in range(256)),
    tuple(_kind(b0, True) for b0 in range(256)),
)


def _header_length(b1: int) -> int:
    code = b1 & 0x7F
    return 2 + (2 if code == 126 else 8 if code == 127 else 0) + (4 if b1 & 0x80 else 0)


_HEADER_LENGTHS = tuple(_header_length(b1) for b1 in range(256))


def _why_bad(b0: int, in_message: bool) -> str:
    opcode = b0 & 0x0F
    if opcode >= 0x8:
        return f"fragmented control frame (opcode {opcode:#x})"
    if opcode == 0x0:
        return "continuation frame outside a fragmented message"
    return f"data frame (opcode {opcode:#x}) inside a fragmented message"


class FrameTracker:
    """Frame boundaries of one direction of a WebSocket tunnel (see the module doc)."""

    __slots__ = (
        "_mask_bad",
        "_left",
        "_head",
        "_frames",
        "_in_message",
        "_close_key",
        "_close_head",
        "_close_seen",
        "_close_code",
        "_error",
    )

    def __init__(self, *, masked: bool | None = None) -> None:
        # The MASK bit (b1 & 0x80) no frame may carry: 0 or 0x80; 1 never matches.
        self._mask_bad = 1 if masked is None else (0 if masked else 0x80)
        self._left = 0  # payload bytes of the current frame not yet relayed
        self._head = bytearray()  # a frame header split across reads
        self._frames = 0
        self._in_message = False
        self._close_key: bytes | None = None  # masking key while inside a Close frame
        self._close_head = bytearray()  # the Close frame's first payload bytes (0-2)
        self._close_seen = False
        self._close_code: int | None = None
        self._error: str | None = None

    @property
    def at_boundary(self) -> bool:
        return self._error is None and not self._left and not self._head

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def in_message(self) -> bool:
        return self._in_message

    @property
    def close_seen(self) -> bool:
        return self._close_seen

    @property
    def close_code(self) -> int | None:
        return self._close_code

    @property
    def broken(self) -> bool:
        return self._error is not None

    @property
    def error(self) -> str | None:
        """Why the tracker lost sync, or None."""
        return self._error

    def __repr__(self) -> str:
        state = f"broken: {self._error}" if self._error else f"left={self._left}"
        return f"<FrameTracker frames={self._frames} {state}>"

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Account for `data`, the next bytes relayed in this direction."""
        if self._error is not None:
            return
        pos = 0
        end = len(data)
        head = self._head
        # Finish a split header: scan it joined with the next few bytes (at most
        # 14 in all), which accounts for those bytes exactly as if contiguous.
        while head and pos < end:
            take = min(_MAX_HEADER - len(head), end - pos)
            joined = bytes(head) + bytes(data[pos : pos + take])
            head.clear()
            pos += take
            self._scan(joined, 0)
            if self._error is not None:
                return
        if pos < end:
            self._scan(data, pos)

    def boundary_in(self, data: bytes | bytearray | memoryview) -> int | None:
        """How many bytes of `data`, about to be relayed, reach the next frame boundary.

        0 when at a boundary now; None when no boundary falls inside `data` (or
        the tracker is broken, or the header `data` completes is malformed).
        Consumes nothing: relay ``data[:n]``, ``feed()`` it, then inject a Close.
        """
        if self._error is not None:
            return None
        left = self._left
        if left:
            return left if left <= len(data) else None
        head = self._head
        if not head:
            return 0
        if len(head) >= 2:
            b1 = head[1]
        elif data:
            b1 = data[0]
        else:
            return None
        need = _HEADER_LENGTHS[b1] - len(head)
        if need > len(data):
            return None
        # Feed just the rest of the header to a copy: it checks the header the
        # same way feed() does and leaves the payload length in _left.
        probe = self._copy()
        probe.feed(data[:need])
        if probe._error is not None:
            return None
        total = need + probe._left
        return total if total <= len(data) else None

    def _copy(self) -> FrameTracker:
        twin = FrameTracker.__new__(FrameTracker)
        for name in FrameTracker.__slots__:
            setattr(twin, name, getattr(self, name))
        twin._head = bytearray(self._head)
        twin._close_head = bytearray(self._close_head)
        return twin

    def _scan(self, data: bytes | bytearray | memoryview, pos: int) -> None:
        # The hot path. Called with no split header pending. One iteration per
        # frame header; payloads are skipped by arithmetic.
        end = len(data)
        left = self._left
        if left:  # the rest of the current frame's payload
            avail = end - pos
            if self._close_key is not None:
                self._read_close(data, pos, left if left < avail else avail)
            if left > avail:
                self._left = left - avail
                return
            pos += left
            self._left = 0
            self._frames += 1
            if self._close_key is not None:
                self._end_close()
        frames = self._frames
        in_message = self._in_message
        kinds = _KINDS[in_message]
        mask_bad = self._mask_bad
        try:
            while pos < end:
                if end - pos < 2:
                    self._head += data[pos:end]
                    return
                b0 = data[pos]
                b1 = data[pos + 1]
                hlen = _HEADER_LENGTHS[b1]
                if end - pos < hlen:
                    self._head += data[pos:end]
                    return
                length = b1 & 0x7F
                if length >= 126:
                    if length == 126:
                        length = (data[pos + 2] << 8) | data[pos + 3]
                    else:
                        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                        if length >> 63:
                            self._error = "64-bit payload length with its top bit set"
                            return
                if (b1 & 0x80) == mask_bad:
                    self._error = (
                        "masked frame where frames must not be masked"
                        if mask_bad
                        else "unmasked frame where frames must be masked"
                    )
                    return
                kind = kinds[b0]
                if kind:
                    if kind == _OPEN:
                        in_message = True
                        kinds = _KINDS[True]
                    elif kind == _END:
                        in_message = False
                        kinds = _KINDS[False]
                    elif kind == _BAD:
                        self._error = _why_bad(b0, in_message)
                        return
                    elif length > _MAX_CONTROL_PAYLOAD:
                        self._error = f"control frame (opcode {b0 & 0x0F:#x}) of {length} bytes"
                        return
                    elif kind == _CLOSE:
                        self._start_close(data, pos, hlen, length)
                pos += hlen + length
                if pos > end:
                    self._left = pos - end
                    return
                frames += 1
        finally:
            self._frames = frames
            self._in_message = in_message

    def _start_close(
        self, data: bytes | bytearray | memoryview, pos: int, hlen: int, length: int
    ) -> None:
        # A Close frame's header starts at pos: keep its key, read the code.
        masked = data[pos + 1] & 0x80
        self._close_key = bytes(data[pos + hlen - 4 : pos + hlen]) if masked else b"\0\0\0\0"
        self._close_head.clear()
        start = pos + hlen
        avail = len(data) - start
        self._read_close(data, start, length if length < avail else avail)
        if length <= avail:  # the whole frame is in this chunk
            self._end_close()

    def _read_close(self, data: bytes | bytearray | memoryview, pos: int, count: int) -> None:
        want = 2 - len(self._close_head)
        if want > 0 and count > 0:
            self._close_head += data[pos : pos + min(want, count)]

    def _end_close(self) -> None:
        key = self._close_key
        got = self._close_head
        if not self._close_seen:
            self._close_seen = True
            if key is not None and len(got) == 2:
                self._close_code = ((got[0] ^ key[0]) << 8) | (got[1] ^ key[1])
        self._close_key = None
        got.clear()
