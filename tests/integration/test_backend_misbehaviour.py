"""Backends that misbehave, behind a live gateway.

Before the response head: garbage, an early close or a head cut short is a
502; a backend that never answers is a 504 within the setting's request
timeout. After the head: a close in the middle of the body aborts the
client connection (never a clean end). A backend that stops reading an
upload holds the client back (back-pressure), and the worker's memory does
not grow with what the client pushes. Bytes a backend sends past the end of
a response never become the answer to somebody else's request.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import h11
import pytest
import trio

from tests.support.backends import serve_silent_backend
from tests.support.gateway import gateway_toml, open_gateway
from tests.support.hostile import (
    PeerClosed,
    RawReader,
    ResponseReader,
    ScriptedBackend,
    open_raw,
    rss_bytes,
    serve_scripted_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
MiB = 1024 * 1024


def config(gateway_port: int, backend_port: int, request_timeout: int = 20) -> str:
    return gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        request_timeout=request_timeout,
    )


def path_of(head: bytes) -> bytes:
    return head.split(b" ", 2)[1]


async def misbehaving(
    backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader
) -> None:
    """One behaviour per path; "/" (health probes) and /fine answer 200."""
    while True:
        head, _ = await backend.read_request(reader)
        path = path_of(head)
        if path == b"/garbage":
            await stream.send_all(b"\x00\x01 definitely not HTTP \xff\r\n\r\n")
            return
        if path == b"/close-before-head":
            return
        if path == b"/half-head":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Le")
            return
        if path == b"/two-lengths":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nokokokok"
            )
            return
        if path == b"/cut-length":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 30000
            )
            return
        if path == b"/cut-chunked":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"1000\r\n"
                + b"y" * 4096
                + b"\r\n"
            )
            await trio.sleep(0.2)
            return
        if path == b"/poison":
            # A whole response, and a second one nobody asked for.
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
            )
            continue
        body = b"fine " + path
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )


@pytest.fixture
async def gateway(nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int):
    backend = await nursery.start(partial(serve_scripted_backend, A, backend_port, misbehaving))
    async with open_gateway(config(gateway_port, backend_port), tmp_path, workers=1) as gw:
        yield gateway_port, backend, gw


async def get(port: int, path: bytes, reader_timeout: float = 10) -> tuple[object, bool]:
    """GET path on a fresh connection: (the response or the exception, whether it closed)."""
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        reader.expect()
        await stream.send_all(b"GET %s HTTP/1.1\r\nHost: g\r\n\r\n" % path)
        with trio.fail_after(reader_timeout):
            try:
                return await reader.read(), reader.closed
            except (PeerClosed, h11.RemoteProtocolError) as exc:
                return exc, True


async def test_502_for_anything_but_a_response_head(gateway) -> None:
    port, backend, _ = gateway
    with trio.fail_after(30):
        for path in (b"/garbage", b"/close-before-head", b"/half-head", b"/two-lengths"):
            response, _ = await get(port, path)
            assert getattr(response, "status", response) == 502, (path, response)
        response, _ = await get(port, b"/fine")
        assert getattr(response, "status", None) == 200


@pytest.mark.parametrize(
    "path", [b"/cut-length", b"/cut-chunked"], ids=["content-length", "chunked"]
)
async def test_close_mid_body_aborts_the_client(gateway, path: bytes) -> None:
    port, _, _ = gateway
    with trio.fail_after(15):
        async with open_raw(GATEWAY, port) as stream:
            await stream.send_all(b"GET %s HTTP/1.1\r\nHost: g\r\n\r\n" % path)
            received = bytearray()
            try:
                while chunk := await stream.receive_some(65536):
                    received += chunk
            except trio.BrokenResourceError:
                pass  # a reset: fine, the client cannot take it for a whole body
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    if path == b"/cut-length":
        assert b"content-length: 100000" in head.lower()
        assert len(body) < 100000
    else:
        assert b"transfer-encoding: chunked" in head.lower()
        assert not body.endswith(b"0\r\n\r\n"), "a truncated body was ended as if complete"


async def test_extra_bytes_from_a_backend_answer_nobody_else(gateway) -> None:
    """Response queue poisoning: bytes past a response's end must not be reused."""
    port, _, _ = gateway
    with trio.fail_after(20):
        response, _ = await get(port, b"/poison")
        assert getattr(response, "status", None) == 200 and response.body == b"ok"  # type: ignore[attr-defined]
        answers = []
        for n in range(3):
            response, _ = await get(port, b"/fine-%d" % n)
            answers.append(getattr(response, "body", response))
    assert answers == [b"fine /fine-%d" % n for n in range(3)], answers


async def test_504_when_the_backend_never_answers(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 2
    with trio.fail_after(30):
        await nursery.start(partial(serve_silent_backend, A, backend_port))
        async with open_gateway(
            config(gateway_port, backend_port, request_timeout=timeout), tmp_path, workers=1
        ):
            for request in (
                b"GET /x HTTP/1.1\r\nHost: g\r\n\r\n",
                b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\n\r\nhello",
            ):
                async with open_raw(GATEWAY, gateway_port) as stream:
                    reader = ResponseReader(stream)
                    reader.expect(request.split(b" ", 1)[0])
                    start = trio.current_time()
                    await stream.send_all(request)
                    with trio.fail_after(timeout + 5):
                        response = await reader.read()
                    elapsed = trio.current_time() - start
                assert response is not None and response.status == 504
                assert timeout * 0.9 <= elapsed < timeout + 2, f"504 after {elapsed:.2f} s"


async def test_a_backend_that_stops_reading_holds_the_client_back(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    push_seconds = 4
    stop = trio.Event()

    async def stops_reading(
        backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader
    ) -> None:
        head = await reader.until(b"\r\n\r\n")
        backend.heads.append(head)
        backend.changed()
        if path_of(head) == b"/":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            return
        await stop.wait()  # never reads the body

    with trio.fail_after(60):
        backend = await nursery.start(
            partial(serve_scripted_backend, A, backend_port, stops_reading)
        )
        async with open_gateway(config(gateway_port, backend_port), tmp_path, workers=1) as gw:
            [worker] = gw.worker_pids(GATEWAY, gateway_port)
            baseline = rss_bytes(worker)
            peak = baseline
            sent = 0
            async with open_raw(GATEWAY, gateway_port) as stream:
                await stream.send_all(
                    b"POST /upload HTTP/1.1\r\nHost: g\r\nContent-Length: %d\r\n\r\n" % (4096 * MiB)
                )
                block = b"u" * (256 * 1024)
                with trio.move_on_after(push_seconds):
                    async with trio.open_nursery() as inner:

                        async def watch() -> None:
                            nonlocal peak
                            while True:
                                peak = max(peak, rss_bytes(worker))
                                await trio.sleep(0.1)

                        inner.start_soon(watch)
                        while True:
                            await stream.send_all(block)
                            sent += len(block)
                stop.set()
    assert backend.heads, "the upload never reached the backend"
    # Loopback socket buffers hold a few MiB on each hop; a gateway that
    # buffered what it read would hold the client's whole push.
    assert sent < 96 * MiB, (
        f"the client pushed {sent / MiB:.0f} MiB in {push_seconds} s: no back-pressure"
    )
    growth = peak - baseline
    assert growth < 48 * MiB, f"worker RSS grew by {growth / MiB:.0f} MiB"
