"""PROXY protocol listeners: the client a balancer names is the client.

One gateway with an http and an https listener, both with `proxy_protocol`
on, trusting 127.0.0.1 (where the test's balancer connects from), and a
third listener that trusts only 127.0.0.9. Raw sockets write the headers
byte for byte; the backend echoes the request it saw, a rewrite copies the
`client_ip` and `client_port` server variables into a header, the access
log and /metrics show the rest.
"""

from __future__ import annotations

import json
import ssl
import struct
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import trio

from tests.support.admin import sample, wait_for_metrics
from tests.support.backends import start_http_backends
from tests.support.gateway import CertFiles, open_gateway, toml_table
from tests.support.ports import free_port
from tests.support.waiting import wait_until

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_TIMEOUT = 2


def v1(source: str, port: int) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {port} 443\r\n".encode()


def v2(source: str, port: int, command: int = 1) -> bytes:
    block = IPv4Address(source).packed + IPv4Address("127.0.0.1").packed
    block += struct.pack("!HH", port, 443)
    block += b"\x02\x00\x0bexample.com"  # a TLV (authority), skipped
    return V2_SIGNATURE + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(block)) + block


def config(ports: dict[str, int], backend_port: int, cert: CertFiles, log: Path) -> str:
    trusted = {"proxy_protocol": True, "proxy_protocol_trusted": ["127.0.0.0/30", "10.0.0.0/8"]}
    return "\n".join(
        [
            toml_table("gateway", {"access_log": str(log)}),
            toml_table("gateway.limits", {"header_timeout": HEADER_TIMEOUT}),
            toml_table("certificates.site", {"cert": str(cert.cert), "key": str(cert.key)}),
            toml_table(
                "listeners.plain",
                {"protocol": "http", "address": GATEWAY, "port": ports["plain"], **trusted},
            ),
            toml_table(
                "listeners.secure",
                {
                    "protocol": "https",
                    "address": GATEWAY,
                    "port": ports["secure"],
                    "certificate": "site",
                    **trusted,
                },
            ),
            toml_table(
                "listeners.picky",
                {
                    "protocol": "http",
                    "address": GATEWAY,
                    "port": ports["picky"],
                    "proxy_protocol": True,
                    "proxy_protocol_trusted": ["127.0.0.9"],
                },
            ),
            toml_table("pools.web", {"servers": [A]}),
            toml_table("settings.web", {"port": backend_port, "request_timeout": 5}),
            "[rewrite_rule_sets.client]\n[[rewrite_rule_sets.client.rules]]\n"
            'name = "client"\nsequence = 100\n'
            'request_headers = { "X-Client" = "{var_client_ip}:{var_client_port}" }\n',
            *(
                toml_table(
                    f"rules.{name}",
                    {
                        "listener": name,
                        "pool": "web",
                        "setting": "web",
                        "rewrite_rule_set": "client",
                    },
                )
                for name in ("plain", "secure", "picky")
            ),
        ]
    )


async def exchange(
    port: int, header: bytes, tls: ssl.SSLContext | None = None, path: str = "/echo"
) -> dict[str, Any]:
    """One request after `header`, through TLS when `tls`: the backend's echo."""
    stream: trio.abc.Stream = await trio.open_tcp_stream(GATEWAY, port)
    await stream.send_all(header)
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname="localhost", https_compatible=True)
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n".encode()
    )
    received = b""
    while chunk := await stream.receive_some(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), received[:300]
    echo: dict[str, Any] = json.loads(body)
    return {name: value for name, value in echo["headers"]}


async def refused(port: int, data: bytes, eof: bool = False) -> bytes:
    """What the gateway answers to `data` (then our end of stream, with `eof`)
    before it closes: nothing, when refused."""
    stream = await trio.open_tcp_stream(GATEWAY, port)
    await stream.send_all(data)
    if eof:
        await stream.send_eof()
    received = b""
    try:
        while chunk := await stream.receive_some(65536):
            received += chunk
    except trio.BrokenResourceError:
        pass
    await stream.aclose()
    return received


def entries(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


async def test_proxy_protocol_listeners(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int, cert_files: CertFiles
) -> None:
    ports: dict[str, int] = {}
    for name in ("plain", "secure", "picky", "admin"):
        while (port := free_port(GATEWAY)) in ports.values():
            pass
        ports[name] = port
    log = tmp_path / "access.log"
    tls = ssl.create_default_context(cafile=str(cert_files.ca))
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(
            config(ports, backend_port, cert_files, log),
            tmp_path,
            workers=1,
            extra_args=["--admin", f"{GATEWAY}:{ports['admin']}"],
        ) as gw:
            # v1 and v2, plain: the named client reaches X-Forwarded-For and
            # the server variables.
            seen = await exchange(ports["plain"], v1("203.0.113.7", 40001))
            assert seen["x-forwarded-for"] == "203.0.113.7"
            assert seen["x-client"] == "203.0.113.7:40001"
            seen = await exchange(ports["plain"], v2("198.51.100.23", 40002))
            assert seen["x-forwarded-for"] == "198.51.100.23"
            assert seen["x-client"] == "198.51.100.23:40002"
            # Over TLS the header comes before the handshake.
            seen = await exchange(ports["secure"], v2("192.0.2.44", 40003), tls)
            assert seen["x-forwarded-for"] == "192.0.2.44"
            seen = await exchange(ports["secure"], v1("192.0.2.45", 40004), tls)
            assert seen["x-client"] == "192.0.2.45:40004"
            # LOCAL (a balancer's health check) and UNKNOWN: the connection's own address.
            seen = await exchange(ports["plain"], v2("0.0.0.0", 0, command=0))
            assert seen["x-forwarded-for"] == "127.0.0.1"
            seen = await exchange(ports["plain"], b"PROXY UNKNOWN\r\n")
            assert seen["x-forwarded-for"] == "127.0.0.1"

            # The access log's clientIP and clientPort are the named client's.
            def logged() -> list[tuple[str, int]] | None:
                found = [(e["clientIP"], e["clientPort"]) for e in entries(log)]
                return found if len(found) >= 6 else None

            clients = await wait_until(logged, 10, "six access-log lines")
            assert ("203.0.113.7", 40001) in clients
            assert ("192.0.2.44", 40003) in clients

            # Refused, every one of them closed without an answer:
            # no header at all (a client that bypassed the balancer),
            assert await refused(ports["plain"], b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n") == b""
            # a TLS hello where the header should be,
            assert await refused(ports["secure"], b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1") == b""
            # a malformed header,
            assert await refused(ports["plain"], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n") == b""
            # a source the listener does not trust, even with a good header,
            assert (
                await refused(ports["picky"], v1("203.0.113.8", 1) + b"GET / HTTP/1.1\r\n") == b""
            )
            # a header cut short by the client's end of stream,
            assert await refused(ports["plain"], v2("203.0.113.9", 1)[:20], eof=True) == b""
            # and a header that never ends: closed at the header timeout,
            # while other connections are served all along.
            async with await trio.open_tcp_stream(GATEWAY, ports["plain"]) as slow:
                await slow.send_all(b"PROXY TCP4 203.0.")
                seen = await exchange(ports["plain"], v1("203.0.113.10", 40005))
                assert seen["x-forwarded-for"] == "203.0.113.10"
                with trio.fail_after(HEADER_TIMEOUT + 10):
                    assert await slow.receive_some(100) == b""

            # Each refusal: a log line and a count on /metrics.
            await gw.wait_for_log("refused 127.0.0.1", 10)
            await gw.wait_for_log("127.0.0.1 is not a trusted source", 10)

            def counted(samples: Any) -> bool:
                return (
                    sample(samples, name, port=str(ports["plain"]), reason="timeout") >= 1
                    and sample(samples, name, port=str(ports["plain"]), reason="closed") >= 1
                )

            name = "appgw_proxy_protocol_refused_total"
            samples = await wait_for_metrics(ports["admin"], counted)
            plain = str(ports["plain"])
            assert sample(samples, name, port=plain, reason="malformed") == 2
            assert sample(samples, name, port=plain, reason="closed") == 1
            assert sample(samples, name, port=plain, reason="timeout") == 1
            assert sample(samples, name, port=str(ports["secure"]), reason="malformed") == 1
            assert sample(samples, name, port=str(ports["picky"]), reason="untrusted") == 1
            # The gateway kept serving through all of it.
            seen = await exchange(ports["secure"], v1("203.0.113.11", 40006), tls)
            assert seen["x-forwarded-for"] == "203.0.113.11"
