"""Request and response buffering against a live gateway, with raw sockets.

The backend records every byte it receives (tests/support/hostile.py), so
"the backend received nothing" is exact. With request buffering on (the
default), a body that is malformed or cut short inside its first buffer
never reaches a backend, and a slow upload holds no backend connection
until its buffer is full; with it off, the head goes out at once (which is
what the same checks catch). With response buffering on, a client that
reads slowly does not hold the backend connection of a response that fits
in the buffer.
"""

from __future__ import annotations

import socket
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.support.gateway import gateway_toml, open_gateway
from tests.support.hostile import (
    PEER_ERRORS,
    RawBackend,
    RawReader,
    ResponseReader,
    ScriptedBackend,
    open_raw,
    raise_nofile,
    rss_bytes,
    send_quietly,
    serve_raw_backend,
    serve_scripted_backend,
)
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
CHUNKED_HEAD = (
    b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nX-Desync-Marker: bad\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
OVERFLOW = b"10000000000000000\r\nhello\r\n0\r\n\r\n"

# name -> (what the client sends, in pieces; whether it closes its side after)
BAD_BODIES: dict[str, tuple[list[bytes], bool]] = {
    "overflowing chunk size at once": ([CHUNKED_HEAD + OVERFLOW], False),
    "overflowing chunk size with trailers": (
        [CHUNKED_HEAD + b"10000000000000000\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n"],
        False,
    ),
    "overflowing chunk size slowly": (
        [CHUNKED_HEAD, *(bytes([b]) for b in b"10000000000000000"), b"\r\nhello\r\n"],
        False,
    ),
    "bad chunk extension": ([CHUNKED_HEAD + b"5;a b\r\nhello\r\n0\r\n\r\n"], False),
    "body shorter than its Content-Length, then a close": (
        [
            b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nX-Desync-Marker: bad\r\n"
            b"Content-Length: 100\r\n\r\n0123456789"
        ],
        True,
    ),
}


def _config(backend_port: int, gateway_port: int, buffering: bool, **limits: object) -> str:
    return gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        request_timeout=10,
        limits={"request_buffering": buffering, "response_buffering": buffering} | limits,
    )


async def _control(port: int, backend: RawBackend, marker: str) -> None:
    """A good request on a connection of its own: answered by the backend."""
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        reader.expect(b"GET")
        await stream.send_all(
            b"GET /control HTTP/1.1\r\nHost: gateway.test\r\nX-Desync-Marker: %s\r\n\r\n"
            % marker.encode()
        )
        response = await reader.read()
        assert response is not None and response.status == 200
    assert backend.by_marker(marker)


async def _send_bad(port: int, pieces: list[bytes], close: bool) -> int | None:
    """Send a bad request; the gateway's status (None: closed without one)."""
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        reader.expect(b"POST")
        for piece in pieces:
            if not await send_quietly(stream, piece):
                break
            if len(pieces) > 1:
                await trio.sleep(0.02)  # pacing a slow client, not waiting for anything
        if close:
            await stream.send_eof()
        try:
            response = await reader.read()
        except PEER_ERRORS:
            return None
        return None if response is None else response.status


@pytest.mark.timeout(60)
async def test_bad_bodies_reach_no_backend(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(50):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        config = _config(backend_port, gateway_port, True)
        async with open_gateway(config, tmp_path, workers=1):
            for number, (name, (pieces, close)) in enumerate(BAD_BODIES.items()):
                status = await _send_bad(gateway_port, pieces, close)
                assert status in ((400, None) if close else (400,)), (name, status)
                # The gateway is done with the bad request once it answered
                # (or closed); a good request after it goes through.
                await _control(gateway_port, backend, f"ok{number}")
                assert not backend.by_marker("bad"), name
                assert all(b"bad" not in bytes(data) for data in backend.received.values()), name
    # Nothing but the control requests (and health probes) reached the backend.
    markers = [r.marker for r in backend.requests if r.marker is not None]
    assert markers == [f"ok{n}" for n in range(len(BAD_BODIES))]


@pytest.mark.timeout(60)
async def test_without_request_buffering_the_head_goes_out_first(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    # What the test above guards against: streaming sends the head at once.
    with trio.fail_after(50):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        config = _config(backend_port, gateway_port, False)
        async with open_gateway(config, tmp_path, workers=1):
            status = await _send_bad(gateway_port, [CHUNKED_HEAD + OVERFLOW], False)
            assert status == 400
            await wait_until(
                lambda: any(b"bad" in bytes(data) for data in backend.received.values()),
                10,
                "the head of the bad request reaches the backend",
            )


@pytest.mark.parametrize("buffering", [True, False], ids=["buffered", "streamed"])
@pytest.mark.timeout(60)
async def test_slow_upload_holds_no_backend_connection_until_its_buffer_is_full(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, buffering: bool
) -> None:
    bound = 64 * 1024
    total = 3 * bound
    piece = b"x" * 4096
    with trio.fail_after(50):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        config = _config(backend_port, gateway_port, buffering, request_buffer_bytes=bound)
        async with open_gateway(config, tmp_path, workers=1), open_raw(GATEWAY, gateway_port) as up:

            def head_seen() -> bool:
                return any(b"x-desync-marker: slow" in bytes(d) for d in backend.received.values())

            await up.send_all(
                b"POST /upload HTTP/1.1\r\nHost: gateway.test\r\nX-Desync-Marker: slow\r\n"
                b"Content-Length: %d\r\n\r\n" % total
            )
            sent = 0
            for _ in range(4):  # well under the buffer, slowly
                await up.send_all(piece)
                sent += len(piece)
                await trio.sleep(0.05)  # pacing a slow client
            if not buffering:
                await wait_until(head_seen, 10, "the head reaches the backend while streaming")
                return
            # A request after it is served by the backend: the gateway is
            # reading, and only the slow upload's buffer is filling.
            await _control(gateway_port, backend, "control")
            assert not head_seen()
            while sent < bound - len(piece):
                await up.send_all(piece)
                sent += len(piece)
            assert not head_seen()
            await up.send_all(piece * 2)  # the buffer is full now
            sent += 2 * len(piece)
            await wait_until(head_seen, 10, "the head goes out once the buffer is full")
            while sent < total:
                await up.send_all(piece[: total - sent])
                sent += min(len(piece), total - sent)
            reader = ResponseReader(up)
            reader.expect(b"POST")
            response = await reader.read()
            assert response is not None and response.status == 200
    [slow] = backend.by_marker("slow")
    assert slow.payload == b"x" * total


BIG = 1024 * 1024


async def _big_then_small(
    big: list[int], backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader
) -> None:
    """GET /big: 1 MiB, kept alive; anything else: a small answer, then close.

    A small answer names its connection and the request's place on it; the
    connections that served /big are noted in `big`."""
    number = backend.connections  # this connection's (counted as it was accepted)
    requests = 0
    while True:
        head, _ = await backend.read_request(reader)
        requests += 1
        if head.startswith(b"GET /big"):
            big.append(number)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
            await stream.send_all(b"b" * BIG)
        else:
            body = b"connection %d request %d" % (number, requests)
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            return


@pytest.mark.parametrize("buffering", [True, False], ids=["buffered", "streamed"])
@pytest.mark.timeout(60)
async def test_slow_reader_of_a_1mib_response_frees_the_backend_connection(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, buffering: bool
) -> None:
    with trio.fail_after(50):
        big: list[int] = []
        backend: ScriptedBackend = await nursery.start(
            serve_scripted_backend, A, backend_port, partial(_big_then_small, big)
        )
        config = _config(backend_port, gateway_port, buffering)
        async with open_gateway(config, tmp_path, workers=1):
            slow = trio.socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # a small window
            await slow.connect((GATEWAY, gateway_port))
            stream = trio.SocketStream(slow)
            await stream.send_all(b"GET /big HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
            await backend.wait_for(lambda b: bool(big), 10)
            on_big = b"connection %d " % big[0]

            async def small() -> bytes:
                async with open_raw(GATEWAY, gateway_port) as other:
                    reader = ResponseReader(other)
                    reader.expect(b"GET")
                    await other.send_all(b"GET /small HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
                    response = await reader.read()
                    assert response is not None and response.status == 200
                    return response.body

            if buffering:
                # The 1 MiB is read ahead of the client and the connection
                # goes back to the pool: a later request is served on it.
                async def reused() -> bool:
                    return (await small()).startswith(on_big)

                await wait_until(reused, 20, "a request served on the big response's connection")
            else:
                for _ in range(5):
                    assert not (await small()).startswith(on_big)
            # Whatever happened behind it, the slow client gets its 1 MiB whole.
            received = bytearray()
            raw = RawReader(stream)
            head = await raw.until(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            received += await raw.exactly(BIG)
            assert received == b"b" * BIG
            await stream.aclose()


SLOW_UPLOADS = 500


@pytest.mark.xdist_group("load")
@pytest.mark.timeout(120)
async def test_memory_stays_bounded_with_500_slow_uploads(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    limit = raise_nofile(4 * SLOW_UPLOADS + 512)
    assert limit >= 2 * SLOW_UPLOADS + 256, f"RLIMIT_NOFILE {limit} is too low"
    each = 512 * 1024  # sent at once by every upload, which then stalls
    budget = 16 * 1024 * 1024
    with trio.fail_after(100):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        config = _config(
            backend_port,
            gateway_port,
            True,
            request_buffer_bytes=1024 * 1024,
            worker_request_buffer_bytes=budget,
            max_connections=SLOW_UPLOADS + 100,
        )
        async with open_gateway(config, tmp_path, workers=1) as gw:
            [worker] = gw.worker_pids(GATEWAY, gateway_port)
            await _control(gateway_port, backend, "before")
            before = rss_bytes(worker)
            streams: list[trio.SocketStream] = []
            try:
                data = b"u" * each
                for number in range(SLOW_UPLOADS):
                    stream = await trio.open_tcp_stream(GATEWAY, gateway_port)
                    streams.append(stream)
                    await stream.send_all(
                        b"POST /u%d HTTP/1.1\r\nHost: gateway.test\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (number, 2 * each, data)
                    )
                # The uploads the budget has no room for stream to the backend
                # at once; those it has room for stay in their buffers.
                granted = budget // (2 * each)  # each reserves its Content-Length
                await wait_until(
                    lambda: backend.connections >= SLOW_UPLOADS - granted,
                    60,
                    lambda: f"backend connections: {backend.connections}",
                )
                await _control(gateway_port, backend, "during")
                grown = rss_bytes(worker) - before
                print(f"worker RSS grew by {grown / 2**20:.1f} MiB with {SLOW_UPLOADS} uploads")
                # Unbounded, the buffers alone would take 500 x 512 KiB = 250 MiB
                # (measured: 255 MiB). Bounded: 16 MiB of buffers, and the
                # streamed uploads' pieces in flight, one read (64 KiB) each.
                assert grown < 128 * 1024 * 1024, f"worker RSS grew by {grown / 2**20:.1f} MiB"
            finally:
                for stream in streams:
                    await trio.aclose_forcefully(stream)
            await _control(gateway_port, backend, "after")


@pytest.mark.timeout(60)
async def test_an_event_stream_is_not_held_back(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    # Response buffering on: each event reaches the client while the
    # backend waits, with the stream (chunked, no end in sight) still open.
    delivered = [trio.Event() for _ in range(3)]

    async def events(
        backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader
    ) -> None:
        head, _ = await backend.read_request(reader)
        if not head.startswith(b"GET /events"):
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for number, seen in enumerate(delivered):
            event = b"data: %d\n\n" % number
            await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
            await seen.wait()  # the client has it before the next is sent
        await stream.send_all(b"0\r\n\r\n")

    with trio.fail_after(50):
        await nursery.start(serve_scripted_backend, A, backend_port, events)
        async with open_gateway(_config(backend_port, gateway_port, True), tmp_path, workers=1):
            async with open_raw(GATEWAY, gateway_port) as stream:
                await stream.send_all(b"GET /events HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
                raw = RawReader(stream)
                head = await raw.until(b"\r\n\r\n")
                assert b"text/event-stream" in head
                for number, seen in enumerate(delivered):
                    with trio.fail_after(10):
                        size = int((await raw.until(b"\r\n")).strip(), 16)
                        data = await raw.exactly(size + 2)
                    assert data == b"data: %d\n\n\r\n" % number
                    seen.set()
                assert await raw.until(b"\r\n\r\n") == b"0\r\n\r\n"


@pytest.mark.timeout(60)
async def test_a_body_that_turns_bad_past_its_buffer_aborts_the_backend_connection(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    bound = 64 * 1024
    chunk = b"y" * 8192
    good = b"%x\r\n%s\r\n" % (len(chunk), chunk) * (2 * bound // len(chunk))
    with trio.fail_after(50):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        config = _config(backend_port, gateway_port, True, request_buffer_bytes=bound)
        async with open_gateway(config, tmp_path, workers=1):
            head = CHUNKED_HEAD.replace(b"bad", b"mid")
            status = await _send_bad(gateway_port, [head + good, OVERFLOW], False)
            assert status == 400

            def cut_off() -> list[int]:
                return [
                    number
                    for number, data in backend.received.items()
                    if b"x-desync-marker: mid" in bytes(data) and len(data) > bound
                ]

            # The first buffer's worth went out (checked), then the bad chunk
            # size ended the backend connection: no request was completed on it.
            [number] = await wait_until(cut_off, 10, "the body's first buffer reaches the backend")
            await _control(gateway_port, backend, "after")
            assert not backend.by_marker("mid")
            assert all(r.connection != number for r in backend.requests)
