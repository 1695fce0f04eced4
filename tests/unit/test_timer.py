"""Read and write deadlines of endpoints, kept by the worker's one timer.

Real socket pairs and the real clock: a deadline is a moment of
`time.monotonic()`. Every test waits for the event it asserts (Expired
raised, the timer re-arming an entry, bytes arriving) under `fail_after`.
"""

from __future__ import annotations

import socket
from time import monotonic

import pytest
import trio
import trio.testing

from appgw.worker.io.endpoint import Endpoint, Expired
from appgw.worker.io.timer import Timer
from tests.support.waiting import wait_until

BUDGET = 10


def socket_pair() -> tuple[trio.SocketStream, socket.socket]:
    ours, theirs = socket.socketpair()
    return trio.SocketStream(trio.socket.from_stdlib_socket(ours)), theirs


@pytest.fixture
def timer(nursery: trio.Nursery) -> Timer:
    """A running timer."""
    timer = Timer()
    nursery.start_soon(timer.run)
    return timer


def plain_endpoint(timer: Timer) -> tuple[Endpoint, socket.socket]:
    """An endpoint on a plain socket, and the peer's end."""
    stream, peer = socket_pair()
    return Endpoint(stream, timer), peer


async def read_into(endpoint: Endpoint, got: list[bytes]) -> None:
    got.append(await endpoint.read())


async def test_a_read_past_its_deadline_raises_expired_and_not_before(timer):
    endpoint, _peer = plain_endpoint(timer)
    with trio.fail_after(BUDGET):
        endpoint.read_within(0.2)
        deadline = endpoint.read_at
        with pytest.raises(Expired):
            await endpoint.read()
    assert monotonic() >= deadline


async def test_bytes_that_arrive_in_time_are_read(timer):
    endpoint, peer = plain_endpoint(timer)
    endpoint.read_within(60)
    peer.send(b"hello")
    with trio.fail_after(BUDGET):
        assert await endpoint.read() == b"hello"


async def test_a_deadline_moved_later_while_waiting_keeps_the_wait(timer):
    """The timer finds the first deadline moved on, re-arms, and the read goes on."""
    endpoint, peer = plain_endpoint(timer)
    endpoint.read_within(0.2)
    first = endpoint.read_at
    got: list[bytes] = []
    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as inner:
            inner.start_soon(read_into, endpoint, got)
            await trio.testing.wait_all_tasks_blocked()
            endpoint.read_within(60)
            later = endpoint.read_at
            # The timer looked at the endpoint at the first deadline and
            # armed it again for the later one.
            await wait_until(lambda: endpoint.armed == later, BUDGET, "the timer re-armed")
            assert monotonic() >= first
            peer.send(b"late but in time")
        assert got == [b"late but in time"]


async def test_a_deadline_moved_earlier_wakes_the_timer(timer):
    endpoint, _peer = plain_endpoint(timer)
    endpoint.read_within(3600)
    with trio.fail_after(BUDGET):
        await trio.testing.wait_all_tasks_blocked()
        endpoint.read_within(0.1)
        with pytest.raises(Expired):
            await endpoint.read()


async def test_a_write_to_a_peer_that_stops_reading_expires(timer):
    endpoint, _peer = plain_endpoint(timer)  # the peer never reads
    with trio.fail_after(BUDGET):
        with pytest.raises(Expired):
            await endpoint.write(b"x" * (64 * 1024 * 1024), within=0.2)


async def test_one_directions_deadline_leaves_the_other_waiting(timer):
    """An expired write deadline wakes the read too; the read waits on."""
    endpoint, peer = plain_endpoint(timer)
    got: list[bytes] = []
    with trio.fail_after(BUDGET):
        async with trio.open_nursery() as inner:
            inner.start_soon(read_into, endpoint, got)
            with pytest.raises(Expired):
                await endpoint.write(b"x" * (64 * 1024 * 1024), within=0.2)
            assert not got
            peer.setblocking(False)
            while True:  # drain what the write left, so the peer can answer
                try:
                    if not peer.recv(1 << 20):
                        break
                except BlockingIOError:
                    break
            peer.send(b"answer")
        assert got == [b"answer"]


async def test_the_sweep_drops_entries_of_closed_connections():
    timer = Timer()
    kept_stream, _kept_peer = socket_pair()
    kept = Endpoint(kept_stream, timer)
    kept.read_within(3600)
    for _ in range(5):
        stream, _peer = socket_pair()
        endpoint = Endpoint(stream, timer)
        endpoint.read_within(3600)
        await stream.aclose()
    assert len(timer) == 6
    timer.sweep()
    assert len(timer) == 1


async def test_a_tls_stream_keeps_its_deadline_with_a_cancel_scope():
    """A stream that is not a plain socket (TLS) waits under a scope at the deadline."""
    timer = Timer()
    ours, _theirs = trio.testing.memory_stream_pair()  # the other end stays open
    endpoint = Endpoint(ours, timer)
    assert endpoint.sock is None
    with trio.fail_after(BUDGET):
        endpoint.read_within(0.1)
        with pytest.raises(Expired):
            await endpoint.read()
    assert len(timer) == 0  # such deadlines never reach the timer
