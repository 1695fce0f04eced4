from __future__ import annotations

import json

import pytest
import trio
import trio.lowlevel

from appgw.ipc import (
    BootFailure,
    ChildChannel,
    Health,
    Heartbeat,
    LineDecoder,
    MasterChannel,
    Ready,
    decode,
    encode,
    socketpair,
)

SNAPSHOT = {"time": 1.5, "servers": [{"pool": "web", "host": "127.0.0.2", "port": 80}]}
EVERY_KIND = [Ready(), Heartbeat({"requests_total": 3}), Health(SNAPSHOT), BootFailure("no TLS")]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_on_one_line(message):
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line[:-1]) == message


def test_the_wire_format_is_one_json_object_named_by_type():
    assert json.loads(encode(Ready())) == {"type": "ready"}
    assert json.loads(encode(BootFailure("why"))) == {"type": "boot-error", "error": "why"}
    assert json.loads(encode(Health(SNAPSHOT))) == {"type": "health", "snapshot": SNAPSHOT}
    assert json.loads(encode(Heartbeat({"a": 1}))) == {"type": "heartbeat", "metrics": {"a": 1}}


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'"ready"',
        b"{}",
        b'{"type": "drain"}',
        b'{"type": ["ready"]}',
        b'{"type": "ready", "generation": 2}',
        b'{"type": "health"}',
        b'{"type": "health", "snapshot": [1]}',
        b'{"type": "heartbeat", "metrics": 5}',
        b'{"type": "boot-error", "error": 3}',
    ],
)
def test_a_line_that_is_no_message_is_refused(line):
    with pytest.raises(ValueError):
        decode(line)


def test_decoder_splits_lines_across_chunks_and_drops_garbage():
    decoder = LineDecoder()
    data = encode(Ready()) + b"not json\n" + b'{"type":"nonsense"}\n' + encode(BootFailure("b"))
    messages = []
    for i in range(len(data)):
        messages += decoder.feed(data[i : i + 1])
    assert messages == [Ready(), BootFailure("b")]


def test_decoder_drops_an_endless_line_and_goes_on():
    decoder = LineDecoder(max_line=100)
    assert decoder.feed(b"x" * 150) == []
    assert decoder.feed(b"\n" + encode(Ready())) == [Ready()]


def test_master_side_never_blocks_on_a_child_that_does_not_read():
    master_end, child_end = socketpair()
    channel = MasterChannel(master_end)
    big = Health({"x": "y" * 100_000})
    for _ in range(1000):
        channel.send(big)  # returns at once even though nobody reads
    assert channel.wants_write
    child_end.close()
    channel.flush()
    assert channel.closed or channel.receive() is None


async def test_child_and_master_exchange_messages():
    master_end, child_end = socketpair()
    master = MasterChannel(master_end)
    child = ChildChannel(child_end)
    with trio.fail_after(5):
        assert await child.send(Ready())
        assert await child.send(Heartbeat({"connections_total": 1}))
        received: list[object] = []
        while len(received) < 2:
            await trio.lowlevel.checkpoint()
            received += master.receive() or []
        assert received == [Ready(), Heartbeat({"connections_total": 1})]
        master.send(Health(SNAPSHOT))
        assert await child.receive() == [Health(SNAPSHOT)]
        master.close()
        assert await child.receive() is None
