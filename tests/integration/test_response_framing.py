"""Response framings through the engine, end to end.

A scripted backend answers by path: HEAD with a Content-Length and no body,
204 and 304, 100 Continue and 103 before the final answer, a chunked body,
and a body that ends when the backend closes. Each answer reaches an HTTP/1.1
client (checked by h11) intact, on a connection that keeps working, and a
pipelined burst of requests is answered in order. An HTTP/1.0 client gets a
chunked answer unframed, then the close.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from tests.support.gateway import gateway_toml, open_gateway
from tests.support.hostile import (
    RawReader,
    ResponseReader,
    ScriptedBackend,
    open_raw,
    send_quietly,
    serve_scripted_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
BUDGET = 10


async def framings(backend: ScriptedBackend, stream: trio.SocketStream, reader: RawReader) -> None:
    while True:
        head, _ = await backend.read_request(reader)
        method, path = head.split(b" ", 2)[:2]
        if method == b"HEAD":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        elif path == b"/204":
            await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == b"/304":
            await stream.send_all(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
        elif path == b"/interim":
            await stream.send_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            )
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        elif path == b"/chunked":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
            )
            await stream.send_all(b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        elif path == b"/until-close":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
            await stream.send_all(b"close")
            return
        else:
            body = b"plain " + path
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )


async def test_response_framings(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    with trio.fail_after(40):
        await nursery.start(partial(serve_scripted_backend, A, backend_port, framings))
        async with open_gateway(config, tmp_path, workers=1):
            async with open_raw(GATEWAY, gateway_port) as stream:
                reader = ResponseReader(stream)
                cases = [
                    (b"HEAD", b"/h", 200, b""),
                    (b"GET", b"/204", 204, b""),
                    (b"GET", b"/304", 304, b""),
                    (b"GET", b"/interim", 200, b"final"),
                    (b"GET", b"/chunked", 200, b"hello world"),
                    (b"GET", b"/until-close", 200, b"until close"),
                    (b"GET", b"/after", 200, b"plain /after"),
                ]
                for method, path, status, body in cases:
                    await send_quietly(
                        stream, method + b" " + path + b" HTTP/1.1\r\nHost: g\r\n\r\n"
                    )
                    reader.expect(method)
                    with trio.fail_after(BUDGET):
                        response = await reader.read()
                    assert response is not None, path
                    assert (response.status, response.body, response.keep_alive) == (
                        status,
                        body,
                        True,
                    ), path
                    if method == b"HEAD":
                        assert response.header(b"content-length") == b"1234"
            # Pipelined: three requests in one write, three answers in order.
            async with open_raw(GATEWAY, gateway_port) as stream:
                reader = ResponseReader(stream)
                burst = b"".join(b"GET /p%d HTTP/1.1\r\nHost: g\r\n\r\n" % n for n in range(3))
                await send_quietly(stream, burst)
                for n in range(3):
                    reader.expect(b"GET")
                    with trio.fail_after(BUDGET):
                        response = await reader.read()
                    assert response is not None and response.body == b"plain /p%d" % n
            # Expect: 100-continue is answered by the gateway, then the body flows.
            async with open_raw(GATEWAY, gateway_port) as stream:
                await send_quietly(
                    stream,
                    b"POST /upload HTTP/1.1\r\nHost: g\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 4\r\n\r\n",
                )
                raw_reader = RawReader(stream)
                with trio.fail_after(BUDGET):
                    interim = await raw_reader.until(b"\r\n\r\n")
                    assert interim.startswith(b"HTTP/1.1 100 ")
                    await send_quietly(stream, b"data")
                    head = await raw_reader.until(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200 ")
                    assert await raw_reader.exactly(13) == b"plain /upload"
            # HTTP/1.0: a chunked answer goes out unframed, ended by the close.
            async with open_raw(GATEWAY, gateway_port) as stream:
                await send_quietly(stream, b"GET /chunked HTTP/1.0\r\nHost: g\r\n\r\n")
                raw = bytearray()
                with trio.fail_after(BUDGET):
                    while data := await stream.receive_some(65536):
                        raw += data
                head, _, body = bytes(raw).partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                assert b"connection: close" in head.lower()
                assert b"transfer-encoding" not in head.lower()
                assert body == b"hello world"
