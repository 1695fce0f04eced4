"""The gateway's limits ([gateway.limits]) against a live gateway.

Sizes: request head over max_header_bytes -> 431, URI over max_uri_bytes
-> 414, body over max_body_bytes -> 413 (either framing). Time: a request
not complete within request_timeout -> 408, a head trickled past
header_timeout is cut off, an idle keep-alive connection ends after
keepalive_timeout, a backend connect hanging past connect_timeout -> 502 or
504. Capacity: max_connections per worker makes the gateway stop accepting
(connections wait in the backlog) and serve them once slots free up. A
backend response head over max_response_header_bytes -> 502.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from tests.support.backends import start_http_backends
from tests.support.clients import HttpClient, open_http
from tests.support.gateway import gateway_toml, open_gateway
from tests.support.hostile import (
    RawReader,
    ResponseReader,
    ScriptedBackend,
    ended_by_peer,
    open_blackhole,
    open_raw,
    send_quietly,
    serve_scripted_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
KiB = 1024


def config(gateway_port: int, backend_port: int, **limits: object) -> str:
    return gateway_toml(
        servers=[A], backend_port=backend_port, http_port=gateway_port, limits=limits or None
    )


async def answer_to(port: int, data: bytes, method: bytes = b"GET", timeout: float = 10) -> int:
    """The status the gateway answers raw request bytes with."""
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        reader.expect(method)
        await send_quietly(stream, data)
        with trio.fail_after(timeout):
            response = await reader.read()
    assert response is not None, "the gateway closed without an answer"
    return response.status


# -- sizes ----------------------------------------------------------------------


async def test_sizes_431_414_413(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(40):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(gateway_port, backend_port, max_body_bytes=1000), tmp_path, workers=1
        ):
            big_header = b"X-Big: " + b"a" * (33 * KiB) + b"\r\n"
            assert (
                await answer_to(
                    gateway_port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + big_header + b"\r\n"
                )
                == 431
            )
            # Many headers adding up past the limit, none big on its own.
            many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(200))
            assert (
                await answer_to(gateway_port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
                == 431
            )
            # Just under the limit is fine.
            fits = b"X-Fits: " + b"a" * (30 * KiB) + b"\r\n"
            assert (
                await answer_to(gateway_port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + fits + b"\r\n")
                == 200
            )
            # A request line over the URI limit (32 KB by default, as in
            # Application Gateway) is a 414, even though it also overflows the head.
            long_uri = b"/echo?" + b"q" * (40 * KiB)
            assert (
                await answer_to(gateway_port, b"GET " + long_uri + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                == 414
            )
            assert (
                await answer_to(
                    gateway_port,
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
                    + b"b" * 2000,
                    b"POST",
                )
                == 413
            )
            chunked = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
            assert (
                await answer_to(
                    gateway_port,
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + chunked,
                    b"POST",
                )
                == 413
            )
            # At the limit: forwarded whole.
            async with open_http(GATEWAY, gateway_port) as client:
                response = await client.request("POST", "/upload", body=b"d" * 1000)
            assert response.status == 200
            assert response.json()["bytes"] == 1000
    assert [r.path for r in backend.requests_to("/upload")].count("/upload") <= 2


# -- time -----------------------------------------------------------------------


async def test_408_for_a_stalled_body(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(gateway_port, backend_port, request_timeout=1), tmp_path, workers=1
        ):
            async with open_raw(GATEWAY, gateway_port) as stream:
                reader = ResponseReader(stream)
                reader.expect(b"POST")
                start = trio.current_time()
                await stream.send_all(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
                )
                with trio.fail_after(6):
                    response = await reader.read()
                elapsed = trio.current_time() - start
    assert response is not None and response.status == 408
    assert 0.8 <= elapsed < 4, f"408 after {elapsed:.2f} s"


async def test_408_for_a_trickled_body(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    """request_timeout bounds the whole request, not each pause in it."""
    timeout = 1.5
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(gateway_port, backend_port, request_timeout=timeout), tmp_path, workers=1
        ):
            async with open_raw(GATEWAY, gateway_port) as stream:
                reader = ResponseReader(stream)
                reader.expect(b"POST")
                start = trio.current_time()
                await stream.send_all(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                )
                outcome: list[object] = []

                async def trickle() -> None:
                    for _ in range(1000):
                        if not await send_quietly(stream, b"z"):
                            return
                        await trio.sleep(0.25)

                async with trio.open_nursery() as inner:
                    inner.start_soon(trickle)
                    with trio.move_on_after(timeout + 6):
                        outcome.append(await reader.read())
                    outcome.append(trio.current_time() - start)
                    inner.cancel_scope.cancel()
    response, elapsed = outcome
    assert response is not None, "closed without a 408"
    assert response.status == 408, response  # type: ignore[attr-defined]
    assert elapsed < timeout + 2, f"408 only after {elapsed:.2f} s"  # type: ignore[operator]


async def test_header_timeout_cuts_off_a_trickled_head(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 1
    with trio.fail_after(30):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(gateway_port, backend_port, header_timeout=timeout), tmp_path, workers=1
        ):
            async with open_raw(GATEWAY, gateway_port) as stream:
                start = trio.current_time()
                await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
                ended = False

                async def trickle() -> None:
                    for _ in range(100):
                        if not await send_quietly(stream, b"X"):
                            return
                        await trio.sleep(0.1)

                async with trio.open_nursery() as inner:
                    inner.start_soon(trickle)
                    ended, data = await ended_by_peer(stream, timeout + 4)
                    inner.cancel_scope.cancel()
                elapsed = trio.current_time() - start
    assert ended, "the gateway kept a trickling client"
    assert elapsed < timeout + 2, f"cut off after {elapsed:.2f} s"
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
    assert backend.requests_to("/echo") == []


async def test_keepalive_timeout_closes_idle_connections(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 1
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(gateway_port, backend_port, keepalive_timeout=timeout), tmp_path, workers=1
        ):
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/echo")).status == 200
                start = trio.current_time()
                ended, data = await ended_by_peer(client.stream, timeout + 4)
                elapsed = trio.current_time() - start
    assert ended and data == b"", data
    assert timeout * 0.8 <= elapsed < timeout + 2, f"closed after {elapsed:.2f} s"


async def test_connect_timeout_to_a_black_holed_backend(tmp_path: Path, gateway_port: int) -> None:
    timeout = 1
    with open_blackhole(A) as port, trio.fail_after(30):
        async with open_gateway(
            config(gateway_port, port, connect_timeout=timeout), tmp_path, workers=1
        ):
            async with open_http(GATEWAY, gateway_port) as client:
                start = trio.current_time()
                with trio.fail_after(timeout + 5):
                    response = await client.get("/echo")
                elapsed = trio.current_time() - start
    assert response.status in (502, 504)
    assert timeout * 0.8 <= elapsed < timeout + 3, f"answered after {elapsed:.2f} s"


async def test_max_connections_pauses_accepting(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    slots = 4
    with trio.fail_after(40):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(gateway_port, backend_port, max_connections=slots, header_timeout=30),
            tmp_path,
            workers=1,
        ):
            held: list[HttpClient] = []
            try:
                for _ in range(slots):
                    client = await HttpClient.open(GATEWAY, gateway_port)
                    held.append(client)
                    assert (await client.get("/echo")).status == 200  # accepted, kept alive
                # One more: the TCP connect succeeds (backlog), but nobody serves it yet.
                async with open_raw(GATEWAY, gateway_port) as waiting:
                    reader = ResponseReader(waiting)
                    reader.expect()
                    await waiting.send_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
                    with trio.move_on_after(1.5) as early:
                        await reader.read()
                    assert early.cancelled_caught, "served beyond max_connections"
                    # A slot frees up: the waiting connection is served, not refused.
                    await held.pop().aclose()
                    with trio.fail_after(5):
                        response = await reader.read()
                    assert response is not None and response.status == 200
            finally:
                for client in held:
                    await client.aclose()


async def test_oversized_response_head_is_502(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    async def script(
        backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader
    ) -> None:
        while True:
            head, _ = await backend.read_request(reader)
            size = 20 * KiB if b"/big" in head.split(b"\r\n", 1)[0] else 100
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nX-Fat: " + b"f" * size + b"\r\nContent-Length: 2\r\n\r\nok"
            )

    with trio.fail_after(30):
        await nursery.start(partial(serve_scripted_backend, A, backend_port, script))
        async with open_gateway(
            config(gateway_port, backend_port, max_response_header_bytes=8 * KiB),
            tmp_path,
            workers=1,
        ):
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/small")).status == 200
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/big")).status == 502
