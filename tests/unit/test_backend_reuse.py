"""Which pooled backend connection a request may take (BackendConnections.acquire).

A request that can be replayed takes the most recently idle connection up
to 60 s idle; one that cannot takes only a connection idle for less than
the pool's `reuse_idle`, else a new connection, and the older idle ones
stay for requests that can be replayed. Real sockets (socketpairs) stand in
for backend connections; a new connection is refused by a stub.
"""

from __future__ import annotations

import socket
from time import monotonic

import pytest
import trio

from appgw.errors import BadGateway
from appgw.worker.io.timer import Timer
from appgw.worker.upstream.connections import BackendConnection, BackendConnections

KEY = ("127.0.0.2", 8080, None)


class NoConnects(BackendConnections):
    async def _connect(self, key: object, tls: object) -> BackendConnection:
        raise BadGateway("a new connection")


def pooled(pool: BackendConnections, idle_for: float) -> tuple[BackendConnection, socket.socket]:
    ours, theirs = socket.socketpair()
    connection = BackendConnection(
        KEY, trio.SocketStream(trio.socket.from_stdlib_socket(ours)), pool.timer
    )
    pool.release(connection)
    connection.idle_since = monotonic() - idle_for
    return connection, theirs


async def test_a_request_that_cannot_be_replayed_skips_connections_idle_past_the_bound() -> None:
    pool = NoConnects(5.0, Timer(), reuse_idle=0.25)
    old, _peer_old = pooled(pool, 0.4)
    with pytest.raises(BadGateway, match="a new connection"):
        await pool.acquire(*KEY, None, replayable=False)
    # Still pooled: a GET may take it (and replay itself if it was closed).
    assert await pool.acquire(*KEY, None, replayable=True) is old


async def test_the_least_idle_connection_within_the_bound_is_taken() -> None:
    pool = NoConnects(5.0, Timer(), reuse_idle=0.25)
    pooled(pool, 0.4)
    fresh, _peer = pooled(pool, 0.1)
    assert await pool.acquire(*KEY, None, replayable=False) is fresh


async def test_a_connection_whose_peer_closed_is_never_taken() -> None:
    pool = NoConnects(5.0, Timer(), reuse_idle=0.25)
    _closed, peer = pooled(pool, 0.05)
    peer.close()  # the backend's FIN is there before the request goes out
    with pytest.raises(BadGateway):
        await pool.acquire(*KEY, None, replayable=False)
    with pytest.raises(BadGateway):
        await pool.acquire(*KEY, None, replayable=True)


async def test_connections_idle_past_a_minute_are_dropped_for_every_request() -> None:
    pool = NoConnects(5.0, Timer(), reuse_idle=0.25)
    pooled(pool, 61)
    with pytest.raises(BadGateway):
        await pool.acquire(*KEY, None, replayable=True)
    assert not pool._idle[KEY]
