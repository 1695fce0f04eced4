"""appgw's TLS stream (worker/io/tls_stream.py) against Python's own ssl client.

Real socket pairs and real TLS: the gateway's side is a TlsStream (alone,
and under an Endpoint with the worker's timer), the client a blocking
ssl.SSLSocket in a thread. Every test runs under `fail_after`.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest
import trio
import trio.testing
import trustme

from appgw.worker.io.endpoint import Endpoint, Expired
from appgw.worker.io.timer import Timer
from appgw.worker.io.tls_stream import TlsStream

BUDGET = 20


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def timer(nursery: trio.Nursery) -> Timer:
    timer = Timer()
    nursery.start_soon(timer.run)
    return timer


def pair(context: ssl.SSLContext) -> tuple[TlsStream, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stream = TlsStream(trio.socket.from_stdlib_socket(ours), context, server_side=True)
    return stream, theirs


class Client:
    """A blocking TLS client in a thread, running `script` on its socket."""

    def __init__(
        self, raw: socket.socket, context: ssl.SSLContext, script: Callable[[ssl.SSLSocket], object]
    ) -> None:
        self.result: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                raw.settimeout(BUDGET)
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    self.result = script(tls)
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    async def done(self) -> object:
        await trio.to_thread.run_sync(self.thread.join)
        if self.error is not None:
            raise self.error
        return self.result


def receive_all(tls: ssl.SSLSocket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = tls.recv(65536)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_bytes_both_ways_big_and_small(server_context, client_context):
    big = bytes(range(256)) * 4096  # 1 MiB: many records, more than a socket buffer
    stream, raw = pair(server_context)

    def script(tls: ssl.SSLSocket) -> bytes:
        tls.sendall(b"hello")
        tls.sendall(big)
        return receive_all(tls, len(big) + 5)

    client = Client(raw, client_context, script)
    with trio.fail_after(BUDGET):
        got = bytearray()
        while len(got) < len(big) + 5:
            data = await stream.receive_some()
            assert data
            got += data
        assert bytes(got) == b"hello" + big
        await stream.send_all(b"world")
        for part in chunks(big, 100_000):
            await stream.send_all(part)
        assert await client.done() == b"world" + big
        assert stream.version() == "TLSv1.3"
        await stream.aclose()


async def test_the_peers_close_notify_and_a_ragged_eof_both_read_as_the_end(
    server_context, client_context
):
    for ragged in (False, True):
        stream, raw = pair(server_context)

        def script(tls: ssl.SSLSocket, ragged: bool = ragged) -> None:
            tls.sendall(b"bye")
            if ragged:  # the TCP connection ends without a close_notify
                tls.shutdown(socket.SHUT_WR)
                # Read on until the server's own end, so that closing does not
                # find its session tickets unread (which would send a reset).
                while tls.recv(1024):
                    pass
            else:
                tls.unwrap()

        client = Client(raw, client_context, script)
        with trio.fail_after(BUDGET):
            assert await stream.receive_some() == b"bye"
            assert await stream.receive_some() == b""
            await stream.aclose()  # (answers the client's close_notify: its unwrap returns)
            await client.done()


def finished_with_request(raw: socket.socket, context: ssl.SSLContext) -> tuple[bytes, bool]:
    """A TLS 1.3 client whose Finished and first request leave in one send
    (an SSLObject over memory BIOs), as a browser's usually do; it returns
    the answer and whether a session ticket came before it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    raw.settimeout(BUDGET)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))
    tls.write(b"request")
    raw.sendall(outgoing.read())  # Finished and the request, together
    while True:
        try:
            answer = tls.read(100)
            break
        except ssl.SSLWantReadError:
            incoming.write(raw.recv(65536))
    session = tls.session
    return answer, session is not None and session.has_ticket


async def test_the_session_tickets_leave_with_the_first_answer(server_context, client_context):
    """The TLS 1.3 session tickets that the client's Finished produces wait
    for the answer to the request that came with it: one write, not two."""
    stream, raw = pair(server_context)
    result: list[tuple[bytes, bool]] = []
    client = threading.Thread(
        target=lambda: result.append(finished_with_request(raw, client_context)), daemon=True
    )
    client.start()
    with trio.fail_after(BUDGET):
        got = None
        while got is None:  # the server's flight goes out; then Finished and the request
            await trio.lowlevel.wait_readable(stream.socket)
            got = stream.read_now()
        assert got == b"request"
        assert stream.wants_write  # the tickets, not written yet
        await stream.send_all(b"answer")
        await trio.to_thread.run_sync(client.join)
        assert result == [(b"answer", True)]
        await stream.aclose()


async def test_aclose_sends_a_close_notify(server_context, client_context):
    stream, raw = pair(server_context)

    def script(tls: ssl.SSLSocket) -> bytes:
        tls.sendall(b"x")
        return tls.recv(10)  # b"" only after a close_notify (else SSLEOFError)

    client = Client(raw, client_context, script)
    with trio.fail_after(BUDGET):
        assert await stream.receive_some() == b"x"
        await stream.aclose()
        assert await client.done() == b""


async def test_a_client_that_does_not_speak_tls_breaks_the_handshake(server_context):
    stream, raw = pair(server_context)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(BUDGET):
        with pytest.raises(trio.BrokenResourceError):
            await stream.receive_some()
        await stream.aclose()


async def test_an_endpoint_reads_and_writes_tls_with_its_deadlines(
    server_context, client_context, timer
):
    stream, raw = pair(server_context)

    def script(tls: ssl.SSLSocket) -> bytes:
        tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
        return receive_all(tls, 5 + 70_000)

    client = Client(raw, client_context, script)
    endpoint = Endpoint(stream, timer)
    with trio.fail_after(BUDGET):
        endpoint.read_within(10)
        assert await endpoint.read() == b"GET / HTTP/1.1\r\n\r\n"
        await endpoint.write(b"head:", 10, b"b" * 70_000)  # one write, one system call
        assert await client.done() == b"head:" + b"b" * 70_000
        await stream.aclose()


async def test_a_handshake_that_does_not_finish_expires_at_the_read_deadline(
    server_context, timer
):
    stream, raw = pair(server_context)  # the peer never says anything
    endpoint = Endpoint(stream, timer)
    with trio.fail_after(BUDGET):
        endpoint.read_within(0.3)
        with pytest.raises(Expired):
            await endpoint.read()
    await stream.aclose()
    raw.close()


async def test_tls_sides_are_relayed_on_the_epoll_set(server_context):
    from appgw.worker.tunnel.direction import on_epoll

    stream, raw = pair(server_context)
    assert on_epoll(stream) and on_epoll(stream.transport_stream)
    assert not on_epoll(trio.testing.memory_stream_pair()[0])
    await stream.aclose()
    raw.close()


async def test_a_backend_connection_over_tls_runs_on_the_tls_stream(
    server_context, client_context, timer
):
    from appgw.worker.upstream.connections import BackendConnections

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def backend() -> bytes:
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            request = tls.recv(100)
            tls.sendall(b"answer")
            return request

    serving = threading.Thread(target=lambda: results.append(backend()), daemon=True)
    results: list[bytes] = []
    serving.start()
    with trio.fail_after(BUDGET):
        connection = await BackendConnections(5.0, timer).acquire(
            "127.0.0.1", port, client_context, "localhost"
        )
        assert type(connection.stream) is TlsStream
        await connection.write(b"request")
        assert await connection.receive() == b"answer"
        await trio.to_thread.run_sync(serving.join)
        assert results == [b"request"]
        connection.abort()
    listener.close()
