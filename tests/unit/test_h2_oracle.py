"""The HTTP/2 codec against h2's server side, as an oracle.

Hypothesis writes conversations with h2's client: streams opened in any
order, bodies in pieces, trailers, resets, interleaved; the same bytes,
cut at random places, go to appgw's H2Session and to h2's own server
H2Connection. What each says the client asked for (heads, body bytes,
trailers, ends, resets) must be the same, in the same order.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from hypothesis import given, settings
from hypothesis import strategies as st

from appgw.worker.codec.h2_events import (
    RequestData,
    RequestHeaders,
    RequestTrailers,
    StreamReset,
)
from appgw.worker.codec.h2_session import H2Session
from appgw.worker.codec.h2_settings import H2Settings

# No cookie: h2 joins its crumbs into one field (RFC 9113 8.2.3 asks that
# of whoever forwards them to HTTP/1.1), the codec hands them on as sent.
NAMES = st.sampled_from(["accept", "x-trace", "content-type", "user-agent", "x-empty"])
VALUES = st.text(alphabet="abcXYZ019 ;=/-", max_size=20).map(str.strip)
FIELDS = st.lists(st.tuples(NAMES, VALUES), max_size=4)
PATHS = st.sampled_from(["/", "/a", "/a/b?c=d", "/%41"])


@st.composite
def conversations(draw):
    """Steps of a client: ("open", stream, method, path, fields, end),
    ("data", stream, bytes, end), ("trailers", stream, fields), ("reset", stream)."""
    count = draw(st.integers(1, 4))
    streams = [1 + 2 * i for i in range(count)]
    plans = {}
    for stream_id in streams:
        has_body = draw(st.booleans())
        pieces = draw(st.lists(st.binary(min_size=0, max_size=300), max_size=3)) if has_body else []
        plan = [
            (
                "open",
                stream_id,
                "POST" if has_body else "GET",
                draw(PATHS),
                draw(FIELDS),
                not has_body,
            )
        ]
        for piece in pieces:
            plan.append(("data", stream_id, piece, False))
        if has_body:
            ending = draw(st.sampled_from(["data", "trailers", "reset"]))
            if ending == "data":
                plan.append(("data", stream_id, b"", True))
            elif ending == "trailers":
                plan.append(("trailers", stream_id, draw(FIELDS.filter(bool))))
            else:
                plan.append(("reset", stream_id))
        plans[stream_id] = plan
    # Interleave: streams open in order (ids must rise), the rest in any order.
    steps = []
    cursors = dict.fromkeys(streams, 0)
    opened = 0
    while any(cursors[s] < len(plans[s]) for s in streams):
        ready = [s for s in streams[:opened] if cursors[s] < len(plans[s])]
        if opened < len(streams):
            ready.append(streams[opened])
        stream_id = draw(st.sampled_from(ready))
        if opened < len(streams) and stream_id == streams[opened]:
            opened += 1
        steps.append(plans[stream_id][cursors[stream_id]])
        cursors[stream_id] += 1
    return steps


def client_bytes(steps) -> bytes:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    for step in steps:
        kind, stream_id = step[0], step[1]
        if kind == "open":
            _, _, method, path, fields, end = step
            head = [
                (":method", method),
                (":scheme", "https"),
                (":authority", "x.test"),
                (":path", path),
            ]
            client.send_headers(stream_id, head + fields, end_stream=end)
        elif kind == "data":
            client.send_data(stream_id, step[2], end_stream=step[3])
        elif kind == "trailers":
            client.send_headers(stream_id, step[2], end_stream=True)
        else:
            client.reset_stream(stream_id, error_code=8)
    return client.data_to_send()


def ours(pieces: list[bytes]) -> list[tuple]:
    session = H2Session(H2Settings())
    seen: list[tuple] = []
    for piece in pieces:
        for event in session.receive(piece):
            if isinstance(event, RequestHeaders):
                seen.append(("head", event.stream_id, event.headers))
            elif isinstance(event, RequestData):
                if event.data:
                    seen.append(("data", event.stream_id, event.data))
                    session.consumed(event.stream_id, event.flow_length)
            elif isinstance(event, RequestTrailers):
                seen.append(("trailers", event.stream_id, event.headers))
            elif isinstance(event, StreamReset):
                seen.append(("reset", event.stream_id, event.error_code))
            else:
                continue
            if getattr(event, "end_stream", False) or isinstance(event, RequestTrailers):
                seen.append(("end", event.stream_id))
        session.pending()
    return seen


def theirs(pieces: list[bytes]) -> list[tuple]:
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = h2.connection.H2Connection(config)
    server.initiate_connection()
    seen: list[tuple] = []
    for piece in pieces:
        for event in server.receive_data(piece):
            if isinstance(event, h2.events.RequestReceived):
                seen.append(("head", event.stream_id, list(event.headers)))
            elif isinstance(event, h2.events.DataReceived):
                if event.data:
                    seen.append(("data", event.stream_id, event.data))
                server.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                seen.append(("trailers", event.stream_id, list(event.headers)))
            elif isinstance(event, h2.events.StreamReset):
                seen.append(("reset", event.stream_id, event.error_code))
            elif isinstance(event, h2.events.StreamEnded):
                seen.append(("end", event.stream_id))
        server.data_to_send()
    return seen


def _merged_data(seen: list[tuple]) -> list[tuple]:
    """Body bytes joined per run: where DATA frames end is not a meaning."""
    merged: list[tuple] = []
    for item in seen:
        if item[0] == "data" and merged and merged[-1][:2] == item[:2]:
            merged[-1] = ("data", item[1], merged[-1][2] + item[2])
        else:
            merged.append(item)
    return merged


@settings(max_examples=150, deadline=None)
@given(conversations(), st.lists(st.integers(1, 200), min_size=1, max_size=8))
def test_the_codec_hears_what_h2_hears(steps, cuts):
    wire = client_bytes(steps)
    pieces, at = [], 0
    for cut in cuts * (len(wire) // sum(cuts) + 1):
        if at >= len(wire):
            break
        pieces.append(wire[at : at + cut])
        at += cut
    expected = _merged_data(theirs(pieces))
    assert _merged_data(ours(pieces)) == expected
    assert sum(1 for item in expected if item[0] == "head") == sum(
        1 for s in steps if s[0] == "open"
    )
