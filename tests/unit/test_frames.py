"""Tests for appgw.worker.codec.frames: frame boundaries found from headers alone.

Frames are built by a small encoder written here from RFC 6455 section 5.2
(independent of the module under test) and, when wsproto is installed, cross
checked against wsproto's own encoder and decoder.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appgw.websocket import close_frame
from appgw.worker.codec.frames import FrameTracker

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
KEY = b"\x37\xfa\x21\x3d"
Buffer = bytes | bytearray | memoryview


# --- an independent encoder and decoder ---------------------------------------------


def mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


def encode(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    key: bytes | None = None,
    rsv: int = 0,
    width: int | None = None,
) -> bytes:
    """One frame; `width` forces the length encoding (7, 16 or 64 bits)."""
    n = len(payload)
    if width is None:
        width = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if key is not None else 0
    if width == 7:
        assert n < 126
        head = bytes([b0, mbit | n])
    elif width == 16:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + mask(payload, key)


def decode_one(frame: bytes) -> tuple[int, bool, bytes | None, bytes]:
    """(opcode, fin, key, unmasked payload) of exactly one frame."""
    b0, b1 = frame[0], frame[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, pos = int.from_bytes(frame[2:10], "big"), 10
    key = None
    if b1 & 0x80:
        key, pos = frame[pos : pos + 4], pos + 4
    body = frame[pos:]
    assert len(body) == n
    return b0 & 0x0F, bool(b0 & 0x80), key, mask(body, key) if key else body


def ends(frames: Iterable[bytes]) -> list[int]:
    return list(itertools.accumulate(len(f) for f in frames))


def chunks(stream: bytes, cuts: Iterable[int]) -> Iterator[bytes]:
    last = 0
    for cut in sorted(set(cuts)):
        if 0 < cut < len(stream) and cut != last:
            yield stream[last:cut]
            last = cut
    if last < len(stream):
        yield stream[last:]


def walk(tracker: FrameTracker, pieces: Iterable[Buffer]) -> list[int]:
    """Step through `pieces` with boundary_in() the way a draining relay does,
    and return every offset at which the tracker said a frame ended."""
    seen: list[int] = []
    offset = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            n = tracker.boundary_in(view)
            if n is None:
                tracker.feed(view)
                offset += len(view)
                assert not tracker.at_boundary
                break
            forced = n == 0
            if forced:  # at a boundary: step one byte into the next header
                n = 1
            tracker.feed(view[:n])
            offset += n
            view = view[n:]
            if not forced:
                assert tracker.at_boundary
            if tracker.at_boundary:
                seen.append(offset)
    return seen


def check_chunked(
    stream: bytes, boundaries: Sequence[int], pieces: Iterable[Buffer], masked: bool | None = None
) -> FrameTracker:
    """Feed whole pieces; before each, boundary_in() must name the next boundary
    inside it; after each, at_boundary and frames must match `boundaries`."""
    tracker = FrameTracker(masked=masked)
    offset = 0
    for piece in pieces:
        nxt = next((b for b in itertools.chain([0], boundaries) if b >= offset), None)
        if tracker.at_boundary:
            expected: int | None = 0
        elif nxt is not None and nxt - offset <= len(piece):
            expected = nxt - offset
        else:
            expected = None
        assert tracker.boundary_in(piece) == expected, offset
        tracker.feed(piece)
        offset += len(piece)
        assert tracker.at_boundary == (offset in boundaries), offset
        assert tracker.frames == sum(1 for b in boundaries if b <= offset)
        assert not tracker.broken
    assert offset == len(stream)
    return tracker


# A stream with every header shape: 7/16/64-bit lengths (minimal or not),
# masked and unmasked, empty payloads, extension bits, control frames between
# the fragments of a message, and payloads that look like frame headers.
MIXED = [
    encode(TEXT, b"hello"),
    encode(BINARY, b""),
    encode(BINARY, b"\x81\x05" * 100, key=KEY),
    encode(TEXT, b"x" * 300),
    encode(BINARY, b"\x88\x02\x03\xe8", width=64),
    encode(PING, b"", key=KEY),
    encode(TEXT, b"frag-1", fin=False, rsv=4),
    encode(PONG, b"pong", key=KEY, width=16),
    encode(CONT, b"", fin=False),
    encode(CONT, b"frag-3", width=64, key=KEY),
    encode(BINARY, b"\xff" * 125),
    encode(BINARY, b"\x00" * 126, key=KEY),
    encode(TEXT, b""),
]
MIXED_STREAM = b"".join(MIXED)
MIXED_ENDS = ends(MIXED)


# --- boundaries ----------------------------------------------------------------------


def test_whole_stream_at_once() -> None:
    tracker = check_chunked(MIXED_STREAM, MIXED_ENDS, [MIXED_STREAM])
    assert tracker.frames == len(MIXED)
    assert not tracker.in_message
    assert not tracker.close_seen and tracker.close_code is None


def test_one_byte_at_a_time() -> None:
    pieces = [MIXED_STREAM[i : i + 1] for i in range(len(MIXED_STREAM))]
    check_chunked(MIXED_STREAM, MIXED_ENDS, pieces)
    assert walk(FrameTracker(), pieces) == MIXED_ENDS


def test_every_split_point() -> None:
    for cut in range(len(MIXED_STREAM) + 1):
        pieces = [MIXED_STREAM[:cut], MIXED_STREAM[cut:]]
        check_chunked(MIXED_STREAM, MIXED_ENDS, [p for p in pieces if p])
        assert walk(FrameTracker(), pieces) == MIXED_ENDS


def test_every_pair_of_split_points_in_the_headers() -> None:
    # Every pair of cuts within the first frames' headers and payload starts.
    region = range(0, 260, 3)
    for i, j in itertools.combinations(region, 2):
        pieces = [MIXED_STREAM[:i], MIXED_STREAM[i:j], MIXED_STREAM[j:]]
        check_chunked(MIXED_STREAM, MIXED_ENDS, [p for p in pieces if p])


def test_real_16_and_64_bit_lengths_at_every_split_near_headers() -> None:
    frames = [
        encode(BINARY, b"\x82\x7e" * 32768, key=KEY),  # 65536 bytes: 64-bit length
        encode(TEXT, b"a" * 65535),  # 16-bit length, largest
        encode(BINARY, b"b" * 70000),
        encode(CLOSE, (1000).to_bytes(2, "big"), key=KEY),
    ]
    stream = b"".join(frames)
    boundaries = ends(frames)
    cuts = [c for b in [0, *boundaries] for c in range(max(b - 16, 0), b + 16)]
    for cut in cuts:
        pieces = [p for p in (stream[:cut], stream[cut:]) if p]
        tracker = check_chunked(stream, boundaries, pieces)
        assert tracker.close_code == 1000
    # 64 KiB relay reads, as memoryviews.
    view = memoryview(stream)
    pieces64 = [view[i : i + 65536] for i in range(0, len(stream), 65536)]
    assert walk(FrameTracker(masked=None), pieces64) == boundaries


def test_accepts_bytes_bytearray_and_memoryview() -> None:
    for kind in (bytes, bytearray, memoryview):
        tracker = FrameTracker()
        for piece in chunks(MIXED_STREAM, range(0, len(MIXED_STREAM), 7)):
            tracker.feed(kind(piece))
        assert tracker.frames == len(MIXED) and tracker.at_boundary


def test_huge_frame_is_skipped_by_arithmetic() -> None:
    size = 5 << 30  # 5 GiB, never materialised
    tracker = FrameTracker(masked=False)
    tracker.feed(encode(BINARY, b"", width=64)[:2] + size.to_bytes(8, "big"))
    block = memoryview(bytes(65536))
    assert tracker.boundary_in(block) is None
    for _ in range(16):
        tracker.feed(block)
    assert not tracker.at_boundary and tracker.frames == 0 and not tracker.broken
    # A length with the top bit set is not WebSocket framing.
    bad = FrameTracker()
    bad.feed(b"\x82\x7f" + (1 << 63).to_bytes(8, "big"))
    assert bad.broken and not bad.at_boundary


# --- boundary_in ---------------------------------------------------------------------


def test_boundary_in() -> None:
    frame = encode(BINARY, b"p" * 300, key=KEY)  # 4 + 4 + 300 bytes
    tracker = FrameTracker()
    assert tracker.boundary_in(b"") == 0
    assert tracker.boundary_in(frame) == 0  # at a boundary now
    tracker.feed(frame[:1])
    assert tracker.boundary_in(b"") is None
    assert tracker.boundary_in(frame[1:3]) is None  # header still incomplete
    assert tracker.boundary_in(frame[1:]) == len(frame) - 1
    assert tracker.boundary_in(frame[1:] + b"\x81\x00") == len(frame) - 1
    assert tracker.boundary_in(frame[1:-1]) is None
    tracker.feed(frame[1:100])
    assert tracker.boundary_in(b"") is None
    assert tracker.boundary_in(frame[100:]) == len(frame) - 100
    assert tracker.boundary_in(frame[100:-1]) is None
    assert tracker.frames == 0 and not tracker.at_boundary  # nothing consumed
    tracker.feed(frame[100:])
    assert tracker.at_boundary and tracker.boundary_in(b"\x81") == 0


def test_boundary_in_completes_a_split_header_of_an_empty_frame() -> None:
    tracker = FrameTracker()
    ping = encode(PING, b"", key=KEY)
    tracker.feed(ping[:3])
    assert tracker.boundary_in(ping[3:]) == 3
    assert tracker.boundary_in(ping[3:5]) is None


def test_boundary_in_refuses_a_malformed_header() -> None:
    tracker = FrameTracker()
    tracker.feed(b"\x89")  # a ping
    assert tracker.boundary_in(b"\x7e\x00\xc8" + b"x" * 200) is None  # 200 bytes
    assert not tracker.broken  # nothing consumed yet
    tracker.feed(b"\x7e\x00\xc8")
    assert tracker.broken and tracker.boundary_in(b"x") is None


# --- Close frames ----------------------------------------------------------------------


def test_close_between_fragments_is_at_a_boundary() -> None:
    frames = [
        encode(TEXT, b"part one, ", fin=False, key=KEY),
        encode(PING, b"are you there", key=KEY),
        encode(CONT, b"part two, ", fin=False, key=KEY),
        encode(CLOSE, (1001).to_bytes(2, "big") + b"bye", key=KEY),
    ]
    stream = b"".join(frames)
    for cut in range(len(stream) + 1):
        tracker = FrameTracker(masked=True)
        tracker.feed(stream[:cut])
        assert not tracker.close_seen or cut == len(stream)
        tracker.feed(stream[cut:])
        assert tracker.at_boundary and tracker.frames == 4
        assert tracker.in_message  # the message is still open
        assert tracker.close_seen and tracker.close_code == 1001
    # The relay may inject its own Close right there: still a valid stream.
    tracker = FrameTracker(masked=True)
    tracker.feed(frames[0])
    assert tracker.at_boundary and tracker.in_message
    tracker.feed(close_frame(masked=True))
    assert tracker.close_code == 1001 and not tracker.broken


def test_close_code_split_byte_by_byte_masked_and_not() -> None:
    for key in (None, KEY, b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"):
        frame = encode(CLOSE, (4321).to_bytes(2, "big") + b"reason", key=key)
        tracker = FrameTracker()
        for i in range(len(frame)):
            assert not tracker.close_seen
            tracker.feed(frame[i : i + 1])
        assert tracker.close_seen and tracker.close_code == 4321 and tracker.at_boundary


def test_close_without_code() -> None:
    for payload in (b"", b"\x03"):
        tracker = FrameTracker()
        tracker.feed(encode(CLOSE, payload, key=KEY))
        assert tracker.close_seen and tracker.close_code is None and tracker.at_boundary


def test_first_close_code_is_kept() -> None:
    tracker = FrameTracker()
    tracker.feed(encode(CLOSE, (1000).to_bytes(2, "big")) + encode(CLOSE, b"\x0f\xa0"))
    assert tracker.frames == 2 and tracker.close_code == 1000


# --- losing sync ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("masked", "stream", "why"),
    [
        (None, encode(PING, b"", fin=False), "fragmented control"),
        (None, encode(PING, b"x" * 126), "control frame"),
        (None, encode(CLOSE, b"x" * 200, key=KEY), "control frame"),
        (None, encode(0xB, b"x" * 126), "control frame"),  # reserved control opcode
        (None, encode(CONT, b"x"), "continuation"),
        (None, encode(TEXT, b"a", fin=False) + encode(BINARY, b"b"), "inside"),
        (True, encode(TEXT, b"a"), "must be masked"),
        (False, encode(TEXT, b"a", key=KEY), "must not be masked"),
        (None, b"\x82\xff" + (1 << 63).to_bytes(8, "big") + KEY, "top bit"),
    ],
)
def test_broken_streams(masked: bool | None, stream: bytes, why: str) -> None:
    for cut in range(len(stream) + 1):
        tracker = FrameTracker(masked=masked)
        tracker.feed(stream[:cut])
        tracker.feed(stream[cut:])
        assert tracker.broken and why in (tracker.error or "")
        assert not tracker.at_boundary and tracker.boundary_in(b"\x81\x00") is None
        frames = tracker.frames
        tracker.feed(encode(TEXT, b"after"))  # ignored once broken
        assert tracker.broken and tracker.frames == frames


def test_lenient_on_what_extensions_may_use() -> None:
    # RSV bits (permessage-deflate sets RSV1), reserved opcodes, non-minimal lengths.
    frames = [
        encode(TEXT, b"deflated", rsv=4),
        encode(0x3, b"reserved data opcode"),
        encode(0x5, b"fragment", fin=False, rsv=7),
        encode(0xC, b"reserved control opcode"),
        encode(CONT, b"end", width=64),
    ]
    check_chunked(b"".join(frames), ends(frames), [b"".join(frames)])


def test_not_websocket_at_all_is_noticed() -> None:
    for text in [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"]:
        tracker = FrameTracker(masked=False)
        tracker.feed(text * 4)
        assert tracker.broken


# --- properties ---------------------------------------------------------------------------

lengths = st.one_of(
    st.integers(0, 10),
    st.integers(120, 130),
    st.integers(0, 400),
    st.sampled_from([65535, 65536, 65537, 70000]),
)


@st.composite
def payloads(draw: st.DrawFn, limit: int | None = None) -> bytes:
    n = draw(lengths if limit is None else st.integers(0, limit))
    if n <= 400:
        return draw(st.binary(min_size=n, max_size=n))
    return draw(st.sampled_from([b"\x81", b"\x88", b"\x00", b"\xff"])) * n


@st.composite
def frame_streams(draw: st.DrawFn) -> tuple[bool | None, list[bytes], int | None, bool]:
    """(masked expectation, frames, first close code, message open at the end)."""
    masked = draw(st.sampled_from([True, False, None]))
    frames: list[bytes] = []
    in_message = False
    close_code: int | None = None
    for _ in range(draw(st.integers(0, 14))):
        key = draw(st.binary(min_size=4, max_size=4)) if masked else None
        if masked is None and draw(st.booleans()):
            key = KEY
        rsv = draw(st.integers(0, 7))
        control = draw(st.booleans())
        if control:
            opcode = draw(st.sampled_from([CLOSE, PING, PONG]))
            if opcode == CLOSE:
                code = draw(st.one_of(st.none(), st.integers(0, 65535)))
                if code is None:
                    payload = draw(st.sampled_from([b"", b"\x07"]))
                else:
                    payload = code.to_bytes(2, "big") + draw(payloads(123))
                if close_code is None:  # the first Close: -1 when it has no code
                    close_code = code if code is not None else -1
            else:
                payload = draw(payloads(125))
            fin = True
        else:
            opcode = CONT if in_message else draw(st.sampled_from([TEXT, BINARY]))
            payload = draw(payloads())
            fin = draw(st.booleans())
            in_message = not fin
        n = len(payload)
        widths = [7, 16, 64] if n < 126 else [16, 64] if n < 65536 else [64]
        width = draw(st.sampled_from(widths))
        frames.append(encode(opcode, payload, fin=fin, key=key, rsv=rsv, width=width))
    return masked, frames, close_code, in_message


@st.composite
def cut_points(draw: st.DrawFn, size: int) -> list[int]:
    if size and draw(st.booleans()):  # small steps, at most about a thousand pieces
        step = max(draw(st.integers(1, 20)), size // 1000)
        return list(range(0, size, step))
    return draw(st.lists(st.integers(0, size), max_size=30))


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(frame_streams(), st.data())
def test_random_streams_in_random_chunks(
    case: tuple[bool | None, list[bytes], int | None, bool], data: st.DataObject
) -> None:
    masked, frames, close_code, in_message = case
    stream = b"".join(frames)
    boundaries = ends(frames)
    cuts = data.draw(cut_points(len(stream)))

    tracker = check_chunked(stream, boundaries, list(chunks(stream, cuts)), masked)
    assert tracker.frames == len(frames)
    assert tracker.in_message == in_message
    assert tracker.close_seen == (close_code is not None)
    expected_code = None if close_code in (None, -1) else close_code
    assert tracker.close_code == expected_code

    walker = FrameTracker(masked=masked)
    assert walk(walker, chunks(stream, cuts)) == boundaries
    assert (walker.frames, walker.close_code) == (len(frames), expected_code)


@PROPERTY
@given(
    st.sampled_from([True, False, None]),
    st.lists(st.binary(max_size=40), max_size=20),
    st.binary(max_size=16),
)
def test_garbage_never_raises(masked: bool | None, pieces: list[bytes], probe: bytes) -> None:
    tracker = FrameTracker(masked=masked)
    for piece in [encode(TEXT, b"ok", key=KEY if masked else None), *pieces]:
        tracker.boundary_in(probe)
        tracker.boundary_in(piece)
        tracker.feed(memoryview(piece))
        if tracker.broken:
            assert tracker.error and not tracker.at_boundary
            assert tracker.boundary_in(probe) is None
        else:
            n = tracker.boundary_in(piece)
            assert n is None or 0 <= n <= len(piece)
    assert tracker.frames >= 1


@PROPERTY
@given(frame_streams(), st.binary(min_size=1, max_size=64), st.integers(1, 9))
def test_valid_prefix_then_garbage_never_raises(
    case: tuple[bool | None, list[bytes], int | None, bool], junk: bytes, step: int
) -> None:
    masked, frames, _, _ = case
    stream = b"".join(frames) + junk
    tracker = FrameTracker(masked=masked)
    step = max(step, len(stream) // 1000)
    for piece in chunks(stream, range(0, len(stream), step)):
        tracker.boundary_in(piece)
        tracker.feed(piece)
    assert tracker.frames >= len(frames) or tracker.broken


# --- cross-checks with wsproto (not a dependency) ------------------------------------------


def test_wsproto_frames_are_tracked() -> None:
    fp = pytest.importorskip("wsproto.frame_protocol")
    for client in (True, False):
        side = fp.FrameProtocol(client=client, extensions=[])
        frames = [
            bytes(side.send_data("hello", fin=False)),
            bytes(side.ping(b"p")),
            bytes(side.send_data("x" * 300, fin=False)),
            bytes(side.send_data("y" * 70000, fin=True)),
            bytes(side.send_data(b"", fin=True)),
            bytes(side.pong(b"")),
            bytes(side.close(1001, "going away")),
        ]
        stream = b"".join(frames)
        pieces = list(chunks(stream, range(0, len(stream), 997)))
        tracker = check_chunked(stream, ends(frames), pieces, masked=client)
        assert tracker.close_code == 1001
        assert walk(FrameTracker(masked=client), pieces) == ends(frames)


def test_wsproto_reads_our_frames() -> None:
    fp = pytest.importorskip("wsproto.frame_protocol")
    for masked in (True, False):
        # A server reads masked frames, a client unmasked ones.
        reader = fp.FrameProtocol(client=not masked, extensions=[])
        key = KEY if masked else None
        reader.receive_bytes(
            encode(TEXT, b"one ", fin=False, key=key)
            + encode(PING, b"?", key=key)
            + encode(CONT, b"two" * 50000, key=key)
            + close_frame(1001, "bye " * 40, masked=masked)
        )
        # wsproto reports a continuation frame with its message's opcode.
        got = [(f.opcode.value, f.payload, f.message_finished) for f in reader.received_frames()]
        assert got[0] == (TEXT, "one ", False)
        assert got[1] == (PING, b"?", True)
        assert got[2] == (TEXT, "two" * 50000, True)
        assert got[3][0] == CLOSE
        code, reason = got[3][1]
        assert code == 1001 and reason == ("bye " * 40)[:123]
