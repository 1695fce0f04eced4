"""A WebSocket over HTTP/2 whose client goes (server/h2_stream.py's `gone`):
its tunnel is not cancelled but sees the client broken, so it ends, and logs
its end, as an HTTP/1.1 tunnel does; an ordinary stream's exchange is
cancelled at once."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from appgw.worker.codec.h2_message import request_of
from appgw.worker.server.h2_stream import H2Stream
from tests.unit.test_h2_stream import Host, Session

CONNECT = [
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/chat"),
    (b"sec-websocket-version", b"13"),
]
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"


def tunnel_stream() -> H2Stream:
    stream = H2Stream(Host(Session(window=1000)), 1)  # type: ignore[arg-type]
    stream.request = request_of(CONNECT, False, websocket=True)
    return stream


async def test_a_tunnel_whose_client_went_sees_it_broken_and_is_not_cancelled() -> None:
    stream = tunnel_stream()
    await stream.send_head(SWITCHED)
    client, _ = stream.hand_over()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            broken = trio.Event()

            async def relay() -> None:
                with stream.scope, pytest.raises(trio.BrokenResourceError):
                    try:
                        await client.receive_some()
                    finally:
                        broken.set()

            nursery.start_soon(relay)
            await trio.testing.wait_all_tasks_blocked()
            stream.gone("the client reset the stream (CANCEL)")
            await broken.wait()
    assert not stream.scope.cancelled_caught
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"\x88\x00")


async def test_an_ordinary_stream_whose_client_went_is_cancelled() -> None:
    stream = H2Stream(Host(Session(window=1000)), 1)  # type: ignore[arg-type]
    stream.request = request_of(
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")], True, websocket=True
    )
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:

            async def exchange() -> None:
                with stream.scope:
                    await trio.sleep_forever()

            nursery.start_soon(exchange)
            await trio.testing.wait_all_tasks_blocked()
            stream.gone("the client reset the stream (CANCEL)")
    assert stream.scope.cancelled_caught
