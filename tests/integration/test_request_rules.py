"""Request-line, Host and header-value rules end to end (RFC 9112, issue 12).

One gateway in front of a backend that records the raw requests it gets
(tests/support/hostile.py). Refusals are the gateway's own answers: the
backend never sees those requests. Every request carries a marker, so a
request that reached the backend is found by it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from tests.support.gateway import gateway_toml, open_gateway
from tests.support.hostile import (
    RawBackend,
    ResponseReader,
    open_raw,
    send_quietly,
    serve_raw_backend,
)

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
BUDGET = 10


def get(
    marker: str,
    *,
    line: bytes = b"GET /x HTTP/1.1",
    host: bytes = b"gateway.test",
    extra: bytes = b"",
) -> bytes:
    return (
        line
        + b"\r\nHost: "
        + host
        + b"\r\nX-Desync-Marker: "
        + marker.encode()
        + b"\r\n"
        + extra
        + b"\r\n"
    )


async def answers(
    port: int, data: bytes, methods: list[bytes]
) -> list[tuple[int, bytes | None, bool]]:
    """(status, marker, keep-alive) of each answer to `data`, in order."""
    out = []
    async with open_raw(GATEWAY, port) as stream:
        reader = ResponseReader(stream)
        await send_quietly(stream, data)
        for method in methods:
            reader.expect(method)
            with trio.fail_after(BUDGET):
                response = await reader.read()
            assert response is not None, f"closed before answer {len(out) + 1}"
            out.append((response.status, response.header(b"x-desync-marker"), response.keep_alive))
            if not response.keep_alive:
                assert await reader.closes_within(BUDGET), "kept open after Connection: close"
                break
    return out


async def test_request_rules(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    with trio.fail_after(60):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        async with open_gateway(config, tmp_path, workers=1):
            # A control character in a header value: 400, never forwarded.
            [(status, _, alive)] = await answers(
                gateway_port, get("c1", extra=b"X-Note: a\x01b\r\n"), [b"GET"]
            )
            assert (status, alive) == (400, False)
            # A Host that is not a host: 400.
            for number, host in enumerate([b"loc\x07al", b"loc al", b"a:b:c"]):
                [(status, _, alive)] = await answers(
                    gateway_port, get(f"h{number}", host=host), [b"GET"]
                )
                assert (status, alive) == (400, False), host
            # A version other than 1.0 and 1.1: 505.
            for number, line in enumerate(
                [b"GET /x HTTP/1.9", b"GET /x HTTP/0.9", b"GET /x HTTP/2.0"]
            ):
                [(status, _, alive)] = await answers(
                    gateway_port, get(f"v{number}", line=line), [b"GET"]
                )
                assert (status, alive) == (505, False), line
            # One empty line before a request line is ignored, also after a
            # POST body on a keep-alive connection.
            post = (
                b"POST /x HTTP/1.1\r\nHost: gateway.test\r\nX-Desync-Marker: p1\r\n"
                b"Content-Length: 2\r\n\r\nok"
            )
            got = await answers(
                gateway_port,
                b"\r\n" + get("e1") + post + b"\r\n" + get("e2"),
                [b"GET", b"POST", b"GET"],
            )
            assert got == [(200, b"e1", True), (200, b"p1", True), (200, b"e2", True)]
            # A GET or HEAD with a body is forwarded, then neither connection
            # is reused: the client's closes, and the backend's carries no
            # other request.
            cases = [
                (b"g1", b"GET", b"Content-Length: 3\r\n", b"abc"),
                (b"g2", b"HEAD", b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
            ]
            for marker, method, framing, body in cases:
                data = get(marker.decode(), line=method + b" /x HTTP/1.1", extra=framing) + body
                got = await answers(gateway_port, data + get("after"), [method, b"GET"])
                assert got == [(200, marker, False)], method  # answered, then closed
                [forwarded] = backend.by_marker(marker.decode())
                assert not backend.later_on_same_connection(forwarded), method
    assert (
        not backend.by_marker("c1") and not backend.by_marker("h0") and not backend.by_marker("v0")
    )


async def test_strict_edges(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    config = gateway_toml(servers=[A], backend_port=backend_port, http_port=gateway_port)
    refused = {
        # No version at all (HTTP/0.9's request line): 400, not 505.
        "no version": b"GET /x\r\nHost: gateway.test\r\nX-Desync-Marker: s0\r\n\r\n",
        "no version, no headers": b"GET /x\r\n\r\n",
        # Absolute-form: a Host that is not a valid host, or blank, is refused
        # whatever the target's authority says (RFC 9110 §7.2, RFC 9112 §3.2).
        "absolute-form, space in Host": get(
            "s1", line=b"GET http://gateway.test/x HTTP/1.1", host=b"gateway .test"
        ),
        "absolute-form, tab in Host": get(
            "s2", line=b"GET http://gateway.test/x HTTP/1.1", host=b"gateway\t.test"
        ),
        "absolute-form, blank Host": get(
            "s3", line=b"GET http://gateway.test/x HTTP/1.1", host=b" \t"
        ),
        "absolute-form, bad authority": get(
            "s4", line=b"GET http://gate~way.test:x/x HTTP/1.1", host=b"gateway.test"
        ),
        # Bare CRs before the request line (only empty lines may come there).
        "bare CRs": b"\r\r\r" + get("s5"),
        "one bare CR": b"\r" + get("s6"),
    }
    with trio.fail_after(60):
        backend: RawBackend = await nursery.start(partial(serve_raw_backend, A, backend_port))
        async with open_gateway(config, tmp_path, workers=1):
            for name, data in refused.items():
                [(status, _, alive)] = await answers(gateway_port, data, [b"GET"])
                assert (status, alive) == (400, False), name
            # Before the next request of a kept-alive connection, too.
            async with open_raw(GATEWAY, gateway_port) as stream:
                reader = ResponseReader(stream)
                statuses = []
                for data in (get("k1"), b"\r\r" + get("k2")):
                    await stream.send_all(data)
                    reader.expect(b"GET")
                    with trio.fail_after(BUDGET):
                        response = await reader.read()
                    assert response is not None
                    statuses.append(response.status)
                assert statuses == [200, 400]
                assert await reader.closes_within(BUDGET)
            # An absolute-form request with a valid Host is served.
            got = await answers(
                gateway_port, get("ok", line=b"GET http://gateway.test/x HTTP/1.1"), [b"GET"]
            )
            assert got == [(200, b"ok", True)]
    markers = {request.marker for request in backend.requests}
    assert not markers & {f"s{n}" for n in range(7)} and "k2" not in markers
