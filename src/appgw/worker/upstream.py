"""Backend connections and the per-worker pool of idle ones.

An Upstream is one connection to one backend server with its h11 client
state. After an exchange that left both sides of h11 in DONE, the
connection goes back to the pool, keyed by (host, port, TLS server name),
and the next request to that server reuses it.

A pooled connection may have been closed by the backend while idle. Before
reuse the pool polls its socket without blocking: readable means EOF or
stray bytes, and either way the connection is discarded. The race that
remains (the backend closes just as a request goes out) is handled by the
proxy, which retries a request on a fresh connection when nothing of the
response arrived and nothing of a body was sent.
"""

from __future__ import annotations

import functools
import ipaddress
import select
import socket
import ssl
import struct
from collections import deque

import h11
import trio

from appgw.errors import BadGateway

RECEIVE_SIZE = 64 * 1024
MAX_IDLE_PER_SERVER = 32
IDLE_TIMEOUT = 60.0

UpstreamKey = tuple[str, int, str | None]


def raw_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


def abort(stream: trio.abc.Stream) -> None:
    """Close a connection with a reset, so the peer cannot take it for a clean end."""
    sock = raw_socket(stream)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    try:
        if sock is not None:
            sock.close()
    except OSError:
        pass


@functools.lru_cache(maxsize=1024)
def _ip_family(host: str) -> int | None:
    """The address family of an IP literal; None for a host name."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


async def _open_tcp(host: str, port: int) -> trio.SocketStream:
    """A TCP connection; IP literals skip name resolution and happy eyeballs."""
    family = _ip_family(host)
    if family is None:
        return await trio.open_tcp_stream(host, port)
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)  # sets TCP_NODELAY


class Upstream:
    __slots__ = ("key", "stream", "h11", "idle_since", "reused", "label")

    def __init__(self, key: UpstreamKey, stream: trio.abc.Stream, max_head: int) -> None:
        self.key = key
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
        self.idle_since = 0.0
        self.reused = False
        self.label = f"{key[0]}:{key[1]}"

    def stale(self) -> bool:
        """Whether an idle connection was closed (or talked) while pooled."""
        sock = raw_socket(self.stream)
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    async def aclose(self) -> None:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


class UpstreamPool:
    """Idle keep-alive connections to backends, per worker."""

    def __init__(self, connect_timeout: float, max_head: int) -> None:
        self.connect_timeout = connect_timeout
        self.max_head = max_head
        self._idle: dict[UpstreamKey, deque[Upstream]] = {}

    async def acquire(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        server_name: str | None,
        *,
        fresh: bool = False,
    ) -> Upstream:
        key: UpstreamKey = (host, port, server_name if tls else None)
        idle = None if fresh else self._idle.get(key)
        now = trio.current_time()
        while idle:
            upstream = idle.pop()
            if now - upstream.idle_since > IDLE_TIMEOUT or upstream.stale():
                abort(upstream.stream)
                continue
            upstream.reused = True
            return upstream
        return await self._connect(key, tls)

    async def _connect(self, key: UpstreamKey, tls: ssl.SSLContext | None) -> Upstream:
        host, port, server_name = key
        try:
            with trio.fail_after(self.connect_timeout):
                stream: trio.abc.Stream = await _open_tcp(host, port)
                if tls is not None:
                    stream = trio.SSLStream(
                        stream, tls, server_hostname=server_name or host, https_compatible=True
                    )
                    await stream.do_handshake()
        except trio.TooSlowError:
            raise BadGateway(f"connect to {host}:{port} timed out") from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            raise BadGateway(f"connect to {host}:{port} failed: {exc}") from None
        return Upstream(key, stream, self.max_head)

    def release(self, upstream: Upstream) -> None:
        """Keep a connection for reuse if its last exchange ended cleanly."""
        conn = upstream.h11
        # Bytes past the end of the response belong to no request: a backend
        # that sends them must not get to answer the next client with them.
        if (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            and not conn.trailing_data[0]
        ):
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                abort(upstream.stream)
                return
            idle = self._idle.setdefault(upstream.key, deque())
            if len(idle) >= MAX_IDLE_PER_SERVER:
                abort(idle.popleft().stream)
            upstream.idle_since = trio.current_time()
            idle.append(upstream)
        else:
            abort(upstream.stream)

    def close_all(self) -> None:
        for idle in self._idle.values():
            while idle:
                abort(idle.pop().stream)
        self._idle.clear()
