"""A TLS connection read by one task while another writes it (HTTP/2).

`Endpoint.read` on TLS waits for the socket to become writable when
encrypted bytes wait to go out (a read may have to send first, and
TlsStream reads nothing more until what it holds is written). With a second
task writing the same socket, that wait collides with the writer's: trio
lets one task wait per direction. So here the reader never waits for room:
it asks the writer to flush (`kick`) and waits for its next write to end
(`wrote`), and waits only for the socket to become readable itself, under
the endpoint's read deadline. A plain connection is read as Endpoint reads it.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from trio.lowlevel import checkpoint, wait_readable

from appgw.worker.io.endpoint import INF, RECEIVE_SIZE, Endpoint


class Duplex:
    """The reading side of a connection whose writes another task makes."""

    __slots__ = ("endpoint", "kick", "flush_wanted", "_wrote")

    def __init__(self, endpoint: Endpoint, kick: Callable[[], None]) -> None:
        self.endpoint = endpoint
        self.kick = kick  # wakes the writer
        self.flush_wanted = False  # the reader waits for TLS bytes to leave
        self._wrote: trio.Event | None = None

    def wrote(self) -> None:
        """The writer ended a write: a reader waiting for room looks again."""
        self.flush_wanted = False
        if self._wrote is not None:
            self._wrote.set()
            self._wrote = None

    async def flush(self, within: float) -> None:
        """The writer's part for the reader: what the TLS layer holds goes
        out (a write that waits has `within` seconds)."""
        endpoint = self.endpoint
        tls = endpoint.tls
        if tls is not None and not tls.flush_now():
            endpoint.write_within(within)
            await endpoint.tls_flush(tls)
            endpoint.write_at = INF
        self.wrote()

    async def read(self) -> bytes:
        """As Endpoint.read: up to RECEIVE_SIZE bytes, b"" at the end; Expired
        at the read deadline."""
        endpoint = self.endpoint
        tls = endpoint.tls
        if tls is None:
            return await endpoint.read()
        await checkpoint()
        while True:
            data = tls.read_now(RECEIVE_SIZE)
            if data is not None:
                return data
            if tls.wants_write:
                self.flush_wanted = True
                waiter = self._wrote = trio.Event()
                self.kick()
                await waiter.wait()
            else:
                await endpoint.wait_ready(wait_readable, False)


__all__ = ["Duplex"]
