"""HTTP proxying through a real gateway process: bodies, connections, headers, errors.

The gateway listens on 127.0.0.1; its pool's servers are test backends on
127.0.0.2 and 127.0.0.3. Requests to paths other than "/" are used where the
gateway's health probes (GET /) must not be counted.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from tests.support import backends
from tests.support.backends import (
    pattern_blocks,
    pattern_sha256,
    serve_silent_backend,
    start_http_backends,
)
from tests.support.clients import IncompleteResponse, open_http, raw_exchange, status_of
from tests.support.gateway import CertFiles, gateway_toml, open_gateway

MiB = 1024 * 1024
BIG = 64 * MiB
GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"


def one_pool(gateway_port: int, backend_port: int, *servers: str, **options: object) -> str:
    return gateway_toml(
        servers=list(servers) or [A],
        backend_port=backend_port,
        http_port=gateway_port,
        **options,  # type: ignore[arg-type]
    )


# -- bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_streamed_upload_64mib(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, chunked: bool
) -> None:
    with trio.fail_after(90):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                response = await client.request(
                    "POST",
                    "/upload",
                    body=pattern_blocks(BIG, seed=1),
                    chunked=chunked,
                    content_length=None if chunked else BIG,
                )
    assert response.status == 200
    document = response.json()
    assert document["bytes"] == BIG
    assert document["sha256"] == pattern_sha256(BIG, 1)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_streamed_download_64mib(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int, chunked: bool
) -> None:
    with trio.fail_after(90):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            digest = hashlib.sha256()
            async with open_http(GATEWAY, gateway_port) as client:
                response = await client.request(
                    "GET", f"/download?size={BIG}&seed=2&chunked={int(chunked)}", sink=digest.update
                )
    assert response.status == 200
    assert response.body_bytes == BIG
    assert digest.hexdigest() == pattern_sha256(BIG, 2)
    if not chunked:
        assert response.header("content-length") == str(BIG)


# -- connections ----------------------------------------------------------------


async def test_keepalive_reuse_on_both_sides(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    requests = 6
    with trio.fail_after(30):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                for i in range(requests):
                    response = await client.get(f"/echo?n={i}")
                    assert response.status == 200
                    assert response.json()["target"] == f"/echo?n={i}"
                    assert client.reusable, f"gateway closed the client connection after {i + 1}"
                assert client.responses == requests
    used = backend.connections_used_by("/echo")
    assert len(backend.requests_to("/echo")) == requests
    assert len(used) < requests, f"backend connections were not reused: {sorted(used)}"


async def test_round_robin_alternates_over_two_servers(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_http_backends(nursery, [A, B], backend_port, names=["a", "b"])
        async with open_gateway(one_pool(gateway_port, backend_port, A, B), tmp_path):
            # One client connection: one worker, whose rotation the test sees whole.
            async with open_http(GATEWAY, gateway_port) as client:
                names = [(await client.get("/echo")).json()["backend"] for _ in range(6)]
    assert set(names) == {"a", "b"}, names
    assert all(x != y for x, y in zip(names, names[1:], strict=False)), names


# -- headers --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "https"])
async def test_forwarding_headers_and_host(
    nursery: trio.Nursery,
    tmp_path: Path,
    gateway_port: int,
    https_port: int,
    backend_port: int,
    cert_files: CertFiles,
    client_ssl_context: ssl.SSLContext,
    protocol: str,
) -> None:
    config = gateway_toml(
        servers=[A],
        backend_port=backend_port,
        http_port=gateway_port,
        https_port=https_port,
        cert=cert_files,
    )
    port = gateway_port if protocol == "http" else https_port
    context = client_ssl_context if protocol == "https" else None
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path):
            async with open_http(GATEWAY, port, ssl_context=context) as client:
                client_port = client.local_address[1]
                first = (
                    await client.get(
                        "/echo",
                        [("Host", "app.example.test"), ("X-Forwarded-For", "203.0.113.7")],
                    )
                ).json()
                second = (await client.get("/echo", [("Host", "other.example.test:8080")])).json()
    seen = [dict(first["headers"]), dict(second["headers"])]
    client_address = rf"127\.0\.0\.1(:{client_port})?"
    assert seen[0]["host"] == "app.example.test"
    assert re.fullmatch(rf"203\.0\.113\.7, ?{client_address}", seen[0]["x-forwarded-for"])
    assert seen[0]["x-original-host"] == "app.example.test"
    assert seen[1]["host"] == "other.example.test:8080"
    assert re.fullmatch(client_address, seen[1]["x-forwarded-for"])
    assert seen[1]["x-original-host"] == "other.example.test:8080"
    for headers in seen:
        assert headers["x-forwarded-proto"] == protocol
        assert headers["x-forwarded-port"] == str(port)


async def test_hop_by_hop_headers_are_stripped(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                response = await client.get(
                    "/echo",
                    [
                        ("Connection", "keep-alive, X-Hop-Secret"),
                        ("X-Hop-Secret", "must not pass"),
                        ("Keep-Alive", "timeout=5, max=100"),
                        ("TE", "trailers"),
                        ("Trailer", "X-Checksum"),
                        ("Upgrade", "foo/1"),
                        ("Proxy-Connection", "keep-alive"),
                        ("X-End-To-End", "kept"),
                    ],
                )
    assert response.status == 200
    received = backend.requests_to("/echo")[-1]
    names = {name for name, _ in received.headers}
    for hop in ("x-hop-secret", "keep-alive", "te", "trailer", "upgrade", "proxy-connection"):
        assert hop not in names, f"{hop} reached the backend: {received.headers}"
    assert received.header("x-end-to-end") == "kept"
    for value in received.header_values("connection"):
        tokens = {t.strip().lower() for t in value.split(",")}
        assert tokens <= {"keep-alive", "close"}, f"Connection to backend: {value!r}"


async def test_third_party_client_sees_what_a_direct_client_sees(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    def fetch(base: str) -> list[tuple[int, bytes, str | None]]:
        with httpx.Client(base_url=base, trust_env=False, timeout=20) as http:
            results = []
            for target in ("/download?size=1000003&seed=5", "/status/418", "/nowhere"):
                response = http.get(target)
                backend = response.headers.get("x-backend")
                results.append((response.status_code, response.content, backend))
            upload = http.post("/upload", content=b"z" * 100_000)
            results.append((upload.status_code, upload.json()["sha256"].encode(), None))
            return results

    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port, names=["a"])
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            through = await trio.to_thread.run_sync(fetch, f"http://{GATEWAY}:{gateway_port}")
        direct = await trio.to_thread.run_sync(fetch, f"http://{A}:{backend_port}")
    assert [r[0] for r in through] == [200, 418, 404, 200]
    assert through == direct


# -- errors -----------------------------------------------------------------------


async def test_502_when_the_pools_servers_refuse_connections(
    tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    # Nothing listens on backend_port at either address.
    with trio.fail_after(30):
        async with open_gateway(one_pool(gateway_port, backend_port, A, B), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/echo")).status == 502
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.request("POST", "/upload", body=b"x" * 1000)).status == 502


async def test_502_when_the_backend_answers_garbage(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/garbage")).status == 502
            async with open_http(GATEWAY, gateway_port) as client:
                assert (await client.get("/echo")).status == 200


async def test_504_when_the_backend_does_not_answer(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    timeout = 1
    with trio.fail_after(30):
        silent = await nursery.start(partial(serve_silent_backend, A, backend_port))
        config = one_pool(gateway_port, backend_port, request_timeout=timeout)
        async with open_gateway(config, tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                start = trio.current_time()
                with trio.fail_after(timeout + 5):
                    response = await client.get("/echo")
                elapsed = trio.current_time() - start
    assert response.status == 504
    assert elapsed >= timeout * 0.9, f"504 after {elapsed:.2f} s, before the request timeout"
    assert silent.connections >= 1


async def test_400_for_two_different_content_lengths(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            raw = await raw_exchange(
                GATEWAY,
                gateway_port,
                b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
            )
    assert status_of(raw) == 400
    assert backend.requests_to("/echo") == []


async def test_client_connection_aborted_when_backend_closes_mid_body(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(30):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path):
            async with open_http(GATEWAY, gateway_port) as client:
                with pytest.raises(IncompleteResponse) as info:
                    await client.request("GET", "/close-mid-body", sink=lambda _data: None)
    # The client must not mistake a truncated body for a whole one.
    assert info.value.received < backends.CLOSE_MID_BODY_LENGTH


BAD_REQUESTS = {
    "two content-lengths": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        {400},
    ),
    "header without colon": (b"GET /echo HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", {400}),
    "bad chunk size": (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nab\r\n0\r\n\r\n",
        None,  # 400, or the connection just closes if the request was already on its way
    ),
    "not http at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), None),
    "bad request line": (b"GET\r\n\r\n", {400}),
}


async def test_bad_requests_never_take_a_worker_down(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(one_pool(gateway_port, backend_port), tmp_path) as gw:
            workers = set(gw.worker_pids(GATEWAY, gateway_port))
            assert workers, "no worker processes found"
            for name, (data, expected) in BAD_REQUESTS.items():
                with trio.fail_after(10):
                    raw = await raw_exchange(GATEWAY, gateway_port, data)
                if expected is not None:
                    assert status_of(raw) in expected, f"{name}: {raw[:200]!r}"
                elif raw:
                    assert 400 <= status_of(raw) < 500, f"{name}: {raw[:200]!r}"
                # Fresh connections are still served, repeatedly (both workers).
                for _ in range(4):
                    async with open_http(GATEWAY, gateway_port) as client:
                        assert (await client.get("/echo")).status == 200, name
            assert set(gw.worker_pids(GATEWAY, gateway_port)) == workers, gw.log_tail()
