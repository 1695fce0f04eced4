"""The HTTP/2 codec against hostile clients (RFC 9113 section 10.5).

Each defence is driven past its limit with raw frames and must end the
connection with GOAWAY ENHANCE_YOUR_CALM, while the same traffic under
the limit is served. The budgets refill with time: a fake clock moves it.
A small fuzz feeds random bytes and random frame sequences, which must
never raise.
"""

from __future__ import annotations

import random

import attrs
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from appgw.worker.codec import nghttp2_lib
from appgw.worker.codec.h2_events import (
    ConnectionEnded,
    ErrorCode,
    HeadersRefused,
    RequestHeaders,
)
from appgw.worker.codec.h2_settings import H2Settings
from appgw.worker.codec.h2_streams import Budget
from tests.support.h2_raw import GET, POST, PREFACE, frames, goaway, headers_frame, raw_session

CALM = ErrorCode.ENHANCE_YOUR_CALM


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def calmed(events: list[object], reason: str) -> bool:
    ended = [e for e in events if isinstance(e, ConnectionEnded)]
    return len(ended) == 1 and ended[0].error_code == CALM and reason in ended[0].reason


def test_a_budget_spends_and_refills():
    budget = Budget(3, 2.0, now=0.0)
    assert [budget.spend(0.0) for _ in range(4)] == [True, True, True, False]
    assert budget.spend(1.0)  # two tokens back after a second, less the one spent before
    assert budget.spend(1.0)
    assert not budget.spend(1.0)
    assert [budget.spend(100.0) for _ in range(4)] == [True, True, True, False]


def test_rapid_reset_ends_the_connection():
    clock = Clock()
    server, encoder = raw_session(H2Settings(reset_burst=20, reset_per_second=1.0), clock=clock)
    stream_id = 1

    def open_and_reset(count: int) -> list[object]:
        nonlocal stream_id
        events: list[object] = []
        for _ in range(count):
            events += server.receive(
                headers_frame(encoder, stream_id, GET, end_stream=False)
                + RstStreamFrame(stream_id, error_code=stream_id % 9).serialize()  # NO_ERROR too
            )
            stream_id += 2
        return events

    assert not calmed(open_and_reset(20), "reset")
    clock.now += 10  # ten more resets' worth
    assert not calmed(open_and_reset(10), "reset")
    events = open_and_reset(1)
    assert calmed(events, "too many streams reset")
    sent = goaway(server.pending())
    assert (sent.error_code, sent.last_stream_id) == (CALM, stream_id - 2)
    assert server.receive(headers_frame(encoder, stream_id, GET)) == []
    assert server.closed


def test_a_flood_of_streams_the_codec_must_reset_ends_the_connection():
    # Malformed heads (CVE-2019-9514's reset flood): each costs a decode
    # and a RST_STREAM, so they spend the reset budget as client resets do.
    server, encoder = raw_session(H2Settings(reset_burst=20, reset_per_second=0.001))
    bad = GET + [("connection", "close")]
    events = server.receive(b"".join(headers_frame(encoder, 1 + 2 * i, bad) for i in range(20)))
    assert not calmed(events, "")
    events = server.receive(headers_frame(encoder, 41, bad))
    assert calmed(events, "too many streams reset")
    assert goaway(server.pending()).error_code == CALM


def test_a_flood_of_refused_streams_ends_the_connection():
    server, encoder = raw_session(
        H2Settings(max_concurrent_streams=1, reset_burst=20, reset_per_second=0.001)
    )
    server.receive(headers_frame(encoder, 1, GET))  # holds the one stream
    events = []
    for i in range(1, 22):
        events += server.receive(headers_frame(encoder, 1 + 2 * i, GET))
    assert calmed(events, "too many streams reset")


def test_streams_the_server_resets_cost_the_client_nothing():
    server, encoder = raw_session(H2Settings(reset_burst=5, reset_per_second=0.001))
    for i in range(50):
        stream_id = 1 + 2 * i
        server.receive(headers_frame(encoder, stream_id, GET, end_stream=False))
        server.reset(stream_id, ErrorCode.INTERNAL_ERROR)
        assert not [f for f in frames(server.pending()) if isinstance(f, GoAwayFrame)]
    assert [type(e) for e in server.receive(headers_frame(encoder, 101, GET))] == [RequestHeaders]


@pytest.mark.parametrize("library_bound", [True, False], ids=["nghttp2's", "the codec's"])
def test_a_continuation_flood_ends_the_connection(library_bound, monkeypatch):
    nghttp2 = nghttp2_lib.load()
    if library_bound and not nghttp2.has_max_continuations:
        pytest.skip(f"libnghttp2 {nghttp2.version} has no nghttp2_option_set_max_continuations")
    monkeypatch.setattr(
        nghttp2_lib, "_loaded", attrs.evolve(nghttp2, has_max_continuations=library_bound)
    )
    server, encoder = raw_session(H2Settings(max_continuations=4))
    # Under the bound: a head in five pieces is a head.
    block = encoder.encode(GET + [("x-piece", "p" * 40)])
    pieces = [block[i : i + 10] for i in range(0, len(block), 10)][:5]
    head = HeadersFrame(1, data=pieces[0])
    head.flags.add("END_STREAM")
    wire = head.serialize()
    for i, piece in enumerate(pieces[1:]):
        continuation = ContinuationFrame(1, data=piece + (block[50:] if i == 3 else b""))
        if i == 3:
            continuation.flags.add("END_HEADERS")
        wire += continuation.serialize()
    assert [type(e) for e in server.receive(wire)] == [RequestHeaders]
    # Over it: empty CONTINUATION frames that never end the block.
    flood = HeadersFrame(3, data=encoder.encode(GET)).serialize()
    flood += ContinuationFrame(3, data=b"").serialize() * 100
    assert calmed(server.receive(flood), "CONTINUATION")
    assert goaway(server.pending()).error_code == CALM


def test_an_hpack_bomb_ends_the_connection():
    server, encoder = raw_session()
    big = ("x-big", "b" * 4000)
    assert [type(e) for e in server.receive(headers_frame(encoder, 1, GET + [big]))] == [
        RequestHeaders
    ]
    # Five references to the indexed field: 20 KB decoded, over the list limit.
    wire = headers_frame(encoder, 3, GET + [big] * 5)
    assert len(wire) < 100
    assert server.receive(wire) == [HeadersRefused(3, 431)]
    # Fifty: 200 KB from a few dozen bytes, far over it.
    wire = headers_frame(encoder, 5, GET + [big] * 50)
    assert len(wire) < 100
    events = server.receive(wire)
    assert calmed(events, "header list")
    assert goaway(server.pending()).error_code == CALM


def _ack(frame):
    frame.flags.add("ACK")
    return frame


IDLE_FRAMES = {
    "PING": lambda i: PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize(),
    "SETTINGS": lambda i: SettingsFrame(0, settings={4: 65535 + i}).serialize(),
    "PRIORITY": lambda i: PriorityFrame(1, depends_on=0, stream_weight=i % 200).serialize(),
    "empty DATA": lambda i: DataFrame(1, data=b"").serialize(),
}


@pytest.mark.parametrize("make", IDLE_FRAMES.values(), ids=IDLE_FRAMES.keys())
def test_a_flood_of_frames_that_carry_no_request_ends_the_connection(make):
    clock = Clock()
    server, encoder = raw_session(
        H2Settings(idle_frame_burst=50, idle_frame_per_second=10.0), clock=clock
    )
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    # 50 tokens, one spent on the client's SETTINGS.
    events = server.receive(b"".join(make(i) for i in range(45)))
    assert not calmed(events, "")
    server.pending()
    clock.now += 1  # ten more
    events = server.receive(b"".join(make(i) for i in range(14)))
    assert not calmed(events, "")
    events = server.receive(make(99))
    assert calmed(events, "too many frames that carry no request")
    assert goaway(server.pending()).error_code == CALM


def test_acks_and_an_ending_empty_data_frame_cost_nothing():
    server, encoder = raw_session(H2Settings(idle_frame_burst=5))
    server.receive(headers_frame(encoder, 1, POST, end_stream=False))
    acks = b"".join(_ack(PingFrame(0)).serialize() for _ in range(20))
    assert not calmed(server.receive(acks), "")
    end = DataFrame(1, data=b"")
    end.flags.add("END_STREAM")
    assert not calmed(server.receive(end.serialize()), "")


def test_pings_are_answered():
    server, _ = raw_session()
    server.receive(PingFrame(0, opaque_data=b"abcdefgh").serialize())
    (pong,) = frames(server.pending())
    assert isinstance(pong, PingFrame) and "ACK" in pong.flags and pong.opaque_data == b"abcdefgh"


def test_random_bytes_never_raise():
    rng = random.Random(19)
    for _ in range(300):
        server, _ = raw_session()
        for _ in range(rng.randrange(1, 5)):
            server.receive(rng.randbytes(rng.randrange(1, 200)))
            server.pending()
        assert isinstance(server.closed, bool)
    # Without a preface at all.
    server, _ = raw_session()
    fresh = type(server)(H2Settings())
    events = fresh.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [e.error_code for e in events if isinstance(e, ConnectionEnded)] == [
        ErrorCode.PROTOCOL_ERROR
    ]


def _random_frame(rng: random.Random, encoder) -> bytes:
    stream_id = rng.choice([0, 1, 2, 3, 5, 7, 2**31 - 1])
    kind = rng.randrange(10)
    if kind == 0:
        frame = DataFrame(stream_id or 1, data=rng.randbytes(rng.randrange(0, 40)))
        if rng.random() < 0.3:
            frame.flags.add("END_STREAM")
        return frame.serialize()
    if kind in (1, 2):
        fields = rng.choice([GET, POST, GET + [("te", "gzip")], [(":path", "/")], GET + [("a", "b")]])
        return headers_frame(
            encoder,
            stream_id or 1,
            fields,
            end_stream=rng.random() < 0.5,
            end_headers=rng.random() < 0.9,
        )
    if kind == 3:
        return RstStreamFrame(stream_id or 1, error_code=rng.randrange(16)).serialize()
    if kind == 4:
        return SettingsFrame(0, settings={rng.randrange(1, 9): rng.randrange(2**20)}).serialize()
    if kind == 5:
        return PingFrame(0, opaque_data=rng.randbytes(8)).serialize()
    if kind == 6:
        return WindowUpdateFrame(stream_id, window_increment=rng.randrange(1, 2**20)).serialize()
    if kind == 7:
        return ContinuationFrame(stream_id or 1, data=rng.randbytes(rng.randrange(0, 20))).serialize()
    if kind == 8:
        return GoAwayFrame(0, last_stream_id=rng.randrange(9), error_code=rng.randrange(14)).serialize()
    # A frame header of an unknown or mismatched type, random payload.
    payload = rng.randbytes(rng.randrange(0, 30))
    return (
        len(payload).to_bytes(3, "big")
        + bytes([rng.randrange(256), rng.randrange(256)])
        + stream_id.to_bytes(4, "big")
        + payload
    )


def test_random_frame_sequences_never_raise():
    rng = random.Random(8441)
    for _ in range(200):
        server, encoder = raw_session(H2Settings(max_concurrent_streams=3))
        wire = b"".join(_random_frame(rng, encoder) for _ in range(rng.randrange(1, 30)))
        at = 0
        while at < len(wire):
            step = rng.randrange(1, 64)
            for event in server.receive(wire[at : at + step]):
                if isinstance(event, RequestHeaders | HeadersRefused):
                    server.respond(event.stream_id, 200, [(b"server", b"appgw")], False)
                    server.send_data(event.stream_id, b"x" * 100, rng.random() < 0.5)
            server.pending()
            at += step
        server.window(0)
        assert server.open_streams >= 0


def test_preface_alone_is_answered_with_settings():
    server, _ = raw_session()
    fresh = type(server)(H2Settings())
    assert fresh.receive(PREFACE) == []
    assert isinstance(frames(fresh.pending())[0], SettingsFrame)


def test_a_client_that_sends_without_reading_is_bounded_by_nghttp2s_queue():
    # Generous budgets: only the queue of unwritten answers can stop it.
    server, encoder = raw_session(H2Settings(idle_frame_burst=10**6))
    server.receive(headers_frame(encoder, 1, GET))
    server.respond(1, 200, [], False)
    server.send_data(1, b"x" * 65535, False)
    server.receive(PingFrame(0).serialize())  # the body is serialized: 64 KiB wait unwritten
    events = []
    for _ in range(20):
        events += server.receive(PingFrame(0).serialize() * 100)
    assert calmed(events, "flood")
    assert goaway(server.pending()).error_code == CALM
