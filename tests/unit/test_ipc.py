from __future__ import annotations

import trio
import trio.lowlevel

from appgw.ipc import ChildChannel, LineDecoder, MasterChannel, encode, socketpair


def test_decoder_splits_lines_across_chunks_and_drops_garbage():
    decoder = LineDecoder()
    data = encode({"type": "a"}) + b"not json\n" + encode({"type": "b", "n": 1})
    messages = []
    for i in range(len(data)):
        messages += decoder.feed(data[i : i + 1])
    assert messages == [{"type": "a"}, {"type": "b", "n": 1}]


def test_master_side_never_blocks_on_a_child_that_does_not_read():
    master_end, child_end = socketpair()
    channel = MasterChannel(master_end)
    big = {"type": "health", "snapshot": {"x": "y" * 100_000}}
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
        assert await child.send({"type": "ready"})
        received = []
        while not received:
            await trio.lowlevel.checkpoint()
            received = master.receive() or []
        assert received == [{"type": "ready"}]
        master.send({"type": "drain"})
        assert await child.receive() == [{"type": "drain"}]
        master.close()
        assert await child.receive() is None
