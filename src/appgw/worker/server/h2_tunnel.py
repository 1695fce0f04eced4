"""A WebSocket over HTTP/2 (RFC 8441): the stream's DATA as the tunnel's bytes.

Once the backend switched protocols and the client got its `200`, the
tunnel (worker/tunnel/) relays between the backend's connection and this:
a trio Stream whose bytes are the HTTP/2 stream's DATA, untouched both
ways. Reading gives the client's window back as the bytes go on (the
tunnel reads the next piece once it wrote the last), writing waits for the
client's window, so back-pressure works as on a connection of its own. The
tunnel's end is the stream's: END_STREAM, or RST_STREAM when it breaks
off; the client's other streams go on. The tunnel keeps time itself
(idle, drain: Close 1001 at a frame boundary, as for HTTP/1.1 tunnels).
"""

from __future__ import annotations

from typing import Protocol

import trio

from appgw.errors import ClientGone, GatewayError


class DataStream(Protocol):
    """What the tunnel reads and writes of an HTTP/2 stream (h2_stream.H2Stream)."""

    async def receive_body(self) -> bytes | None: ...
    async def send(self, data: bytes | bytearray | memoryview) -> None: ...
    def finish(self) -> None: ...


class StreamAsBytes(trio.abc.Stream):
    """An HTTP/2 stream's DATA as a byte stream (for the tunnel)."""

    def __init__(self, stream: DataStream) -> None:
        self.h2 = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            data = await self.h2.receive_body()
        except (ClientGone, GatewayError) as exc:
            raise trio.BrokenResourceError(str(exc)) from None
        return data or b""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.h2.send(data)
        except ClientGone as exc:
            raise trio.BrokenResourceError(str(exc)) from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        self.h2.finish()
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.h2.finish()
        await trio.lowlevel.checkpoint()


__all__ = ["DataStream", "StreamAsBytes"]
