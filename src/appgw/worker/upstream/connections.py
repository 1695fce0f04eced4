"""Backend connections and the per-worker set of idle keep-alive ones.

A BackendConnection is one connection to one backend server. The exchange
that used it decides whether it may serve another request (the response
ended where its framing said, nothing arrived after it, the request went out
whole); if so it goes back to BackendConnections, keyed by (host, port, TLS
server name), and the next request to that server reuses it.

An idle connection may have been closed by the backend. Before reuse its
socket is polled without blocking: readable means EOF (the backend's FIN)
or stray bytes, and either way the connection is dropped. The race that
remains is a backend that closes an idle connection just as a request goes
out (its keep-alive timeout ran out: Node.js closes after 5 s, gunicorn
after 2 s). A request that can be replayed (an idempotent method, no body)
takes that chance: the exchange sends it once more on a fresh connection
when nothing of the response arrived. A request that cannot be replayed
never does: it reuses only a connection idle for less than `reuse_idle`
(gateway.limits.backend_reuse_idle), which is set below the backends'
keep-alive timeout, and otherwise gets a fresh one, as HAProxy's
`http-reuse safe` does.
"""

from __future__ import annotations

import functools
import ipaddress
import select
import socket
import ssl
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING

import trio

from appgw.config.connect_to import ConnectTo, dial
from appgw.errors import STREAM_ERRORS, BadGateway, GatewayTimeout
from appgw.worker.io.endpoint import BACKEND_RECEIVE_SIZE, Endpoint, Expired, abort, raw_socket
from appgw.worker.io.tls_stream import TlsStream

if TYPE_CHECKING:
    from appgw.worker.io.timer import Timer

# Idle connections kept per server: enough for every stream of a few busy
# HTTP/2 clients (each up to max_concurrent_streams requests at once).
MAX_IDLE_PER_SERVER = 1024
IDLE_TIMEOUT = 60.0

BackendKey = tuple[str, int, str | None]

_CONNECT_ERRORS: tuple[type[Exception], ...] = (*STREAM_ERRORS, ssl.SSLError)


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


class BackendConnection:
    __slots__ = ("key", "stream", "endpoint", "idle_since", "reused", "label", "_poll")

    def __init__(self, key: BackendKey, stream: trio.abc.Stream, timer: Timer) -> None:
        self.key = key
        self.stream = stream
        self.endpoint = Endpoint(stream, timer, BACKEND_RECEIVE_SIZE)
        self.idle_since = 0.0
        self.reused = False
        self.label = f"{key[0]}:{key[1]}"
        self._poll: select.poll | None = None  # polls the idle connection before reuse

    # -- deadlines: each phase of an exchange says when it must be over --------

    def answer_by(self, deadline: float) -> None:
        """A request without a body: it goes out and its answer's head comes
        by `deadline` (monotonic), one phase with one deadline."""
        endpoint = self.endpoint
        endpoint.write_by(deadline)
        endpoint.read_by(deadline)

    def answer_within(self, seconds: float) -> None:
        """The next read (a response head, a piece of a body) within `seconds`."""
        self.endpoint.read_within(seconds)

    def no_deadlines(self) -> None:
        """Idle in the pool, or a tunnel's, which keeps time itself."""
        self.endpoint.no_deadlines()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write to the backend (502 if it broke the connection).

        Expired at the write deadline, which the caller set.
        """
        endpoint = self.endpoint
        try:
            sent = endpoint.write_now(data)
            if sent < len(data):
                await endpoint.write_rest(memoryview(data)[sent:])
        except STREAM_ERRORS as exc:
            raise BadGateway(f"{self.label} broke the connection: {exc}") from None

    async def send(self, data: bytes | bytearray | memoryview, within: float) -> None:
        """Write to the backend: 502 if it broke the connection, 504 if it
        stopped reading for `within` seconds."""
        try:
            await self.endpoint.write(data, within)
        except STREAM_ERRORS as exc:
            raise BadGateway(f"{self.label} broke the connection: {exc}") from None
        except Expired:
            raise GatewayTimeout(f"{self.label} stopped reading the request") from None

    async def receive(self) -> bytes:
        """Bytes from the backend (b"" at its end of stream).

        Expired at the read deadline, which the caller set.
        """
        try:
            return await self.endpoint.read()
        except STREAM_ERRORS as exc:
            raise BadGateway(f"{self.label} broke the connection: {exc}") from None

    def stale(self) -> bool:
        """Whether an idle connection was closed (or talked) while idle."""
        poll = self._poll
        if poll is None:
            sock = self.endpoint.sock or raw_socket(self.stream)
            if sock is None:
                return True
            poll = self._poll = select.poll()
            poll.register(sock.fileno(), select.POLLIN)
        try:
            return bool(poll.poll(0))  # readable: EOF or stray bytes; POLLNVAL: closed
        except (OSError, ValueError):
            return True

    def abort(self) -> None:
        abort(self.stream)


class BackendConnections:
    """Idle keep-alive connections to backends, per worker."""

    def __init__(
        self,
        connect_timeout: float,
        timer: Timer,
        connect_to: ConnectTo | None = None,
        *,
        reuse_idle: float = 1.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.timer = timer
        self.connect_to = connect_to or {}  # --connect-to: where host:port really is
        self.reuse_idle = reuse_idle  # the longest idle a non-replayable request reuses
        self._idle: dict[BackendKey, deque[BackendConnection]] = {}

    async def acquire(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        server_name: str | None,
        *,
        fresh: bool = False,
        replayable: bool = True,
    ) -> BackendConnection:
        """A connection to the server: the most recently idle one, else a new one.

        A request that cannot be replayed takes only one idle for less than
        `reuse_idle` (the newest is the least idle: when it is too old, so
        are the others, and they stay for requests that can be replayed).
        """
        key: BackendKey = (host, port, server_name if tls else None)
        idle = None if fresh else self._idle.get(key)
        if idle:
            now = monotonic()
            while idle and now - idle[0].idle_since >= IDLE_TIMEOUT:
                idle.popleft().abort()  # the oldest first: too old for any request
            longest = IDLE_TIMEOUT if replayable else self.reuse_idle
            while idle and now - idle[-1].idle_since < longest:
                connection = idle.pop()
                if connection.stale():
                    connection.abort()
                    continue
                connection.reused = True
                return connection
        return await self._connect(key, tls)

    async def _connect(self, key: BackendKey, tls: ssl.SSLContext | None) -> BackendConnection:
        host, port, server_name = key
        address, real_port = dial(self.connect_to, host, port)
        try:
            with trio.fail_after(self.connect_timeout):
                tcp = await _open_tcp(address, real_port)
                stream: trio.abc.Stream = tcp
                if tls is not None:  # appgw's TLS stream, as on the client side
                    stream = TlsStream(
                        tcp.socket, tls, server_side=False, server_hostname=server_name or host
                    )
                    try:
                        await stream.do_handshake()
                    except BaseException:
                        tcp.socket.close()
                        raise
        except trio.TooSlowError:
            raise BadGateway(f"connect to {host}:{port} timed out") from None
        except _CONNECT_ERRORS as exc:
            raise BadGateway(f"connect to {host}:{port} failed: {exc}") from None
        return BackendConnection(key, stream, self.timer)

    def release(self, connection: BackendConnection) -> None:
        """Keep a connection whose exchange ended cleanly for the next request."""
        idle = self._idle.get(connection.key)
        if idle is None:
            idle = self._idle[connection.key] = deque()
        if len(idle) >= MAX_IDLE_PER_SERVER:
            idle.popleft().abort()
        connection.no_deadlines()
        connection.idle_since = monotonic()
        idle.append(connection)

    def close_all(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().abort()
        self._idle.clear()
