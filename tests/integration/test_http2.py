"""HTTP/2 on an HTTPS listener, end to end: the real gateway (its CLI), the
h2 library, curl and nghttp as clients, HTTP/1.1 backends.

One gateway serves the module's first test: what an HTTP/1.1 request gets,
over HTTP/2 (several streams at once routed by host and path, a POST body
larger than the window, rewrites, a redirect, cookie-based affinity, the
forwarding headers, a custom error page, the WAF, mutual TLS variables,
Azure's 431 for a header field over 8 KB, a big response through a small
window), curl's and nghttp's HTTP/2, the access log's HTTP/2.0 and the
metrics by protocol. The Azure limits (the 1,000th request and the idle
timeout retire a connection with GOAWAY), the rapid-reset defence and a
drain get a gateway of one worker; WebSocket over HTTP/2 (RFC 8441) and its
drain have a test of their own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from pathlib import Path

import h2.events
import hyperframe.frame
import trio
import trustme

from appgw.certs import issue_client_cert
from tests.support.admin import Samples, sample, wait_for_metrics
from tests.support.backends import pattern_sha256, start_http_backends
from tests.support.gateway import CertFiles, open_gateway, write_certificates
from tests.support.h2client import H2Client, open_h2
from tests.support.ports import free_port
from tests.support.wsecho import serve_ws_echo

GATEWAY = "127.0.0.1"
A, B = "127.0.0.2", "127.0.0.3"


MTLS = """
[trusted_client_certificates.partners]
cert = "{ca}"

[ssl_profiles.partners]
trusted_client_certificates = ["partners"]
client_auth = {{ mode = "strict" }}

[listeners.partners]
protocol = "https"
address = "127.0.0.1"
port = {port}
certificate = "site"
ssl_profile = "partners"

[rewrite_rule_sets.identity]
[[rewrite_rule_sets.identity.rules]]
name = "client"
[rewrite_rule_sets.identity.rules.request_headers]
X-Client-Subject = "{{var_client_certificate_subject}}"
X-Client-Verify = "{{var_client_certificate_verification}}"

[rules.partners]
listener = "partners"
pool = "a"
setting = "web"
priority = 1
rewrite_rule_set = "identity"
"""


def config(
    port: int,
    backend_port: int,
    certs: CertFiles,
    log: Path,
    drain: str = "",
    http2: str = "",
    mtls: str = "",
    shop_waf: str = "",
) -> str:
    return (
        mtls
        + f"""
[gateway]
access_log = "{log}"
[gateway.http2]
enabled = true
{http2}

[certificates.site]
cert = "{certs.cert}"
key = "{certs.key}"

[listeners.site]
protocol = "https"
address = "{GATEWAY}"
port = {port}
certificate = "site"

[listeners.shop]
protocol = "https"
address = "{GATEWAY}"
port = {port}
certificate = "site"
host_names = ["shop.example"]
{shop_waf}

[pools.a]
servers = ["{A}"]
[pools.b]
servers = ["{B}"]
[pools.dead]
servers = ["127.0.0.4"]
[settings.web]
port = {backend_port}
{drain}

[path_maps.site]
default_pool = "a"
default_setting = "web"
[redirects.moved]
redirect_type = "found"
target_url = "https://elsewhere.example"

[[path_maps.site.rules]]
name = "old"
paths = ["/old/*"]
redirect = "moved"
[[path_maps.site.rules]]
name = "dead"
paths = ["/dead/*"]
pool = "dead"
setting = "web"
[[path_maps.site.rules]]
name = "b"
paths = ["/b/*"]
pool = "b"
setting = "web"

[rules.site]
listener = "site"
kind = "path"
path_map = "site"
priority = 10

[settings.sticky]
port = {backend_port}
cookie_based_affinity = true

[rules.shop]
listener = "shop"
pool = "b"
setting = "sticky"
priority = 5
rewrite_rule_set = "mark"

[rewrite_rule_sets.mark]
[[rewrite_rule_sets.mark.rules]]
name = "version"
[rewrite_rule_sets.mark.rules.request_headers]
X-Client-Version = "{{var_http_version}}"
[rewrite_rule_sets.mark.rules.response_headers]
X-Rewritten = "yes"
"""
    )


REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/"),
]


def certificates(tmp_path: Path) -> CertFiles:
    return write_certificates(
        trustme.CA(), tmp_path / "certs", ("localhost", "127.0.0.1", "shop.example")
    )


async def test_requests_over_http2(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    certs = certificates(tmp_path)
    port = free_port(GATEWAY)
    log = tmp_path / "access.log"
    ca = certs.ca.read_bytes()
    with trio.fail_after(30):
        await start_http_backends(nursery, [A, B], backend_port, names=["a", "b"])
        admin = free_port(GATEWAY)
        args = ["--admin", f"{GATEWAY}:{admin}"]
        partners_ca = trustme.CA()
        (tmp_path / "partners.pem").write_bytes(partners_ca.cert_pem.bytes())
        partners = free_port(GATEWAY)
        mtls = MTLS.format(ca=tmp_path / "partners.pem", port=partners)
        (tmp_path / "502.html").write_text("<html>our own 502 page</html>")
        mtls += f'\n[error_pages]\n502 = "{tmp_path / "502.html"}"\n'
        mtls += '\n[waf_policies.strict]\nmode = "prevention"\n'
        waf = 'firewall_policy = "strict"'
        gateway_config = config(port, backend_port, certs, log, mtls=mtls, shop_waf=waf)
        async with open_gateway(gateway_config, tmp_path, extra_args=args):
            client = await open_h2(port, ca)
            # The codec's SETTINGS: streams, header list, extended CONNECT.
            assert client.settings[0x3] == 100 and client.settings[0x6] == 16384
            assert client.settings[0x8] == 1

            # Several GETs at once, routed by path and by host (:authority).
            ids = [
                await client.start("/echo?x=1"),
                await client.start("/b/echo"),
                await client.start("/echo", authority="shop.example"),
            ]
            answers = [await client.answer(i) for i in ids]
            assert [a.status for a in answers] == [200, 404, 200]  # the backend has no /b/echo
            assert [a.header(b"x-backend") for a in answers] == [b"a", b"b", b"b"]
            echoes = [json.loads(answers[0].body), json.loads(answers[2].body)]
            first = {k: v for k, v in echoes[0]["headers"]}
            assert first["host"] == "localhost" and first["x-forwarded-proto"] == "https"
            assert echoes[0]["http_version"] == "1.1" and echoes[0]["target"] == "/echo?x=1"
            shop = {k: v for k, v in echoes[1]["headers"]}
            assert shop["host"] == "shop.example"
            assert shop["x-client-version"] == "HTTP/2.0"  # the rewrite rule set's variable
            assert answers[2].header(b"x-rewritten") == b"yes"
            cookies = [v for k, v in answers[2].headers if k == b"set-cookie"]
            assert any(c.startswith(b"ApplicationGatewayAffinity=") for c in cookies), cookies
            cookie = cookies[0].split(b";")[0]
            again = await client.request(
                "/echo", authority="shop.example", headers=[(b"cookie", cookie)]
            )
            assert again.header(b"set-cookie") is None  # the cookie named the server
            assert answers[0].header(b"connection") is None

            # A POST whose body is larger than the stream's window: streamed.
            body = bytes(range(256)) * 2048  # 512 KiB
            upload = await client.request("/upload", method="POST", body=body)
            assert upload.status == 200, upload
            seen = json.loads(upload.body)
            assert seen["bytes"] == len(body)
            assert seen["sha256"] == hashlib.sha256(body).hexdigest()
            assert seen["framing"] == "chunked"  # no content-length was sent
            sized = await client.request(
                "/upload",
                method="POST",
                body=b"x" * 1000,
                headers=[(b"content-length", b"1000")],
            )
            assert json.loads(sized.body)["framing"] == "content-length"
            # Request trailers end the request and are not forwarded (as over HTTP/1.1).
            trailed = await client.start("/echo", method="POST", open_ended=True)
            await client.send_body(trailed, b"abc", end=False)
            client.conn.send_headers(trailed, [(b"x-checksum", b"900150983cd2")], end_stream=True)
            await client.flush()
            echoed = json.loads((await client.answer(trailed)).body)
            assert echoed["body_bytes"] == 3, echoed
            assert "x-checksum" not in dict(echoed["headers"])
            # expect: 100-continue: :status 100 before the body is sent, then the answer.
            asking = await client.start(
                "/upload",
                method="POST",
                headers=[(b"expect", b"100-continue"), (b"content-length", b"5")],
                open_ended=True,
            )
            with trio.fail_after(5):
                while not any(
                    isinstance(e, h2.events.InformationalResponseReceived) and e.stream_id == asking
                    for e in client.events
                ):
                    await client.read_once()
            informed = next(
                e for e in client.events if isinstance(e, h2.events.InformationalResponseReceived)
            )
            assert (b":status", b"100") in informed.headers
            assert client.answers[asking].status == 0  # no final answer yet
            await client.send_body(asking, b"hello", end=True)
            continued = await client.answer(asking)
            assert continued.status == 200 and json.loads(continued.body)["bytes"] == 5

            # A pool without a live server: the custom error page.
            dead = await client.request("/dead/x")
            assert dead.status == 502 and dead.body == b"<html>our own 502 page</html>"
            assert dead.header(b"content-length") == str(len(dead.body)).encode()
            # Azure's header limits: one field over 8 KB is answered 431.
            big_field = await client.request("/echo", headers=[(b"x-big", b"x" * 9000)])
            assert big_field.status == 431, big_field
            assert (await client.request("/echo")).status == 200  # the connection goes on

            # The WAF screens HTTP/2 requests as it does HTTP/1.1 ones.
            sqli = "/echo?id=1%27%20or%20%271%27=%271"
            blocked = await client.request(sqli, authority="shop.example")
            assert blocked.status == 403, blocked

            # A redirect the gateway answers itself.
            moved = await client.request("/old/page?q=1")
            assert moved.status == 302, moved
            assert moved.header(b"location") == b"https://elsewhere.example/old/page?q=1"
            head = await client.request("/echo", method="HEAD")
            assert head.status == 200 and head.body == b""
            await client.aclose()

            # A big response through a small window: all of it, in order.
            slow = await open_h2(port, ca, window=16384)
            size = 3 * 1024 * 1024
            big = await slow.request(f"/download?size={size}&chunked=1")
            assert big.status == 200 and len(big.body) == size
            assert hashlib.sha256(big.body).hexdigest() == pattern_sha256(size)
            await slow.aclose()

            # curl and nghttp2's nghttp speak HTTP/2 to the gateway too.
            assert shutil.which("nghttp"), (
                "nghttp is missing (Debian: apt-get install nghttp2-client)"
            )
            if shutil.which("curl"):
                out = await trio.run_process(
                    [
                        "curl",
                        "-sS",
                        "--http2",
                        "--cacert",
                        str(certs.ca),
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_version} %{http_code}",
                        f"https://localhost:{port}/echo",
                    ],
                    capture_stdout=True,
                )
                assert out.stdout.decode() == "2 200"
            out = await trio.run_process(
                ["nghttp", "-nv", f"https://127.0.0.1:{port}/echo"], capture_stdout=True
            )
            text = out.stdout.decode()
            assert ":status: 200" in text and "SETTINGS_ENABLE_CONNECT_PROTOCOL" in text

            # Mutual TLS over HTTP/2: the client certificate's variables.
            alice = issue_client_cert(partners_ca, "alice")
            (tmp_path / "alice.pem").write_bytes(alice.cert_pem + alice.key_pem)
            signed = await open_h2(partners, ca, client_cert=tmp_path / "alice.pem")
            seen = json.loads((await signed.request("/echo")).body)
            identity = {k: v for k, v in seen["headers"]}
            assert identity["x-client-subject"].startswith("CN=alice"), identity
            assert identity["x-client-verify"] == "SUCCESS"
            await signed.aclose()

            # Requests and connections by protocol, in the metrics (each
            # worker's counts come with its heartbeat).
            def counted(samples: Samples) -> tuple[float, float]:
                return (
                    sample(samples, "appgw_client_protocol_requests_total", protocol="h2"),
                    sample(samples, "appgw_client_protocol_connections_total", protocol="h2"),
                )

            samples = await wait_for_metrics(admin, lambda s: counted(s) == (18, 5))
            assert sample(samples, "appgw_client_protocol_requests_total", protocol="http/1.1") == 0

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    versions = {line["httpVersion"] for line in lines}
    assert versions == {"HTTP/2.0"}, versions
    uploads = [line for line in lines if line["requestUri"] == "/upload"]
    assert uploads[0]["receivedBytes"] >= len(body)
    assert any(line["sentBytes"] == size for line in lines)


async def test_the_thousandth_request_retires_the_connection(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    """Application Gateway's limits: 1,000 requests per HTTP/2 connection,
    then GOAWAY, and GOAWAY after the idle timeout; a rapid-reset flood on
    one connection leaves the others served."""
    certs = certificates(tmp_path)
    port = free_port(GATEWAY)
    ca = certs.ca.read_bytes()
    with trio.fail_after(60):
        await start_http_backends(nursery, [A, B], backend_port, names=["a", "b"])
        retiring = config(port, backend_port, certs, tmp_path / "a.log", http2="idle_timeout = 1")
        # One worker: the flood and the client served beside it share it.
        async with open_gateway(retiring, tmp_path, workers=1) as gw:
            # The idle timeout: GOAWAY once no stream was open for a second.
            idle = await open_h2(port, ca)
            assert (await idle.request("/")).status == 200
            began = trio.current_time()
            while idle.goaway is None and not idle.closed:
                await idle.read_once()
            assert idle.goaway is not None and idle.goaway.error_code == 0
            assert 0.9 < trio.current_time() - began < 5  # 1 s, on a busy machine
            await idle.aclose()

            client = await open_h2(port, ca)
            for batch in range(10):
                ids = [await client.start("/") for _ in range(100 if batch < 9 else 99)]
                for stream_id in ids:
                    assert (await client.answer(stream_id)).status == 200
            assert client.goaway is None
            # The 1,000th request, and one more behind it; the h2 library
            # parses nothing after a GOAWAY, so the frames are read raw.
            for _ in range(2):
                stream_id = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream_id, REQUEST, end_stream=True)
            frames = await client.frames_after(client.conn.data_to_send())
            goaways = [f for f in frames if isinstance(f, hyperframe.frame.GoAwayFrame)]
            assert [(g.last_stream_id, g.error_code) for g in goaways] == [(1999, 0)]
            ends = [f.stream_id for f in frames if "END_STREAM" in getattr(f, "flags", ())]
            assert ends == [1999]  # the 1,000th is answered, the 1,001st never started
            await client.aclose()

            # Rapid reset (CVE-2023-44487): streams opened and reset at once.
            flood = await open_h2(port, ca)
            other = await open_h2(port, ca)
            try:
                for batch in range(20):
                    for _ in range(100):
                        stream_id = flood.conn.get_next_available_stream_id()
                        flood.conn.send_headers(stream_id, REQUEST)
                        flood.conn.reset_stream(stream_id)
                    await flood.flush()
                    if batch == 1:  # the flood is on: another client is served meanwhile
                        assert (await other.request("/")).status == 200
                with trio.move_on_after(5):
                    while flood.goaway is None and not flood.closed:
                        await flood.read_once()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            assert flood.goaway is not None and flood.goaway.error_code == 0xB  # ENHANCE_YOUR_CALM
            assert (await other.request("/")).status == 200
            await other.aclose()
            await flood.aclose()

            # A drain: GOAWAY with the last stream id; the request in flight
            # is answered whole, then the connection closes.
            busy = await open_h2(port, ca)
            slow = await busy.start("/slow?delay=1")
            gw.send_signal(signal.SIGTERM)
            frames = await busy.frames_after()
            goaways = [f for f in frames if isinstance(f, hyperframe.frame.GoAwayFrame)]
            assert [(g.last_stream_id, g.error_code) for g in goaways] == [(slow, 0)]
            ends = [f.stream_id for f in frames if "END_STREAM" in getattr(f, "flags", ())]
            assert ends == [slow]
            assert await gw.wait(10) == 0


MASK = b"\x01\x02\x03\x04"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked WebSocket frame (payload under 126 bytes), as a client sends it."""
    masked = bytes(c ^ MASK[i % 4] for i, c in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + MASK + masked


async def open_websocket(client: H2Client, path: str) -> int:
    """Extended CONNECT (RFC 8441) on `client`; the stream once it got its 200."""
    stream_id = await client.start(
        path,
        method="CONNECT",
        extra=[(b":protocol", b"websocket")],
        headers=[(b"sec-websocket-version", b"13")],
        open_ended=True,
    )
    answer = client.answers[stream_id]
    while answer.status == 0 and answer.reset is None:
        await client.read_once()
    assert answer.status == 200, answer
    assert answer.header(b"sec-websocket-accept") is None
    return stream_id


async def test_websocket_over_http2(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    """RFC 8441: extended CONNECT becomes an HTTP/1.1 Upgrade to the backend,
    the frames pass untouched as DATA both ways; a drain closes the tunnel
    with 1001 at a frame boundary, as for HTTP/1.1 tunnels."""
    certs = certificates(tmp_path)
    port = free_port(GATEWAY)
    ca = certs.ca.read_bytes()
    log = tmp_path / "access.log"
    with trio.fail_after(30):
        await nursery.start(serve_ws_echo, A, backend_port)
        await nursery.start(serve_ws_echo, B, backend_port)
        gateway_config = config(
            port, backend_port, certs, log, drain="connection_draining = true\ndrain_timeout = 1"
        )
        async with open_gateway(gateway_config, tmp_path) as gw:
            client = await open_h2(port, ca)
            chat = await open_websocket(client, "/chat")
            kept = await open_websocket(client, "/kept")
            answer = client.answers[chat]
            await client.send_body(chat, client_frame(0x1, b"hello"), end=False)
            while len(answer.body) < 7:
                await client.read_once()
            assert bytes(answer.body[:7]) == b"\x81\x05hello"  # the echo, unmasked
            # A Close (1000): the echo answers with its own, the stream ends.
            await client.send_body(chat, client_frame(0x8, b"\x03\xe8"), end=True)
            while not answer.ended and answer.reset is None:
                await client.read_once()
            assert bytes(answer.body[7:9]) == b"\x88\x02"

            # The drain: GOAWAY, and the open tunnel gets Close 1001 from the
            # gateway (the h2 library parses nothing after a GOAWAY: raw frames).
            started = trio.current_time()
            gw.send_signal(signal.SIGTERM)
            frames = await client.frames_after()
            goaways = [f for f in frames if isinstance(f, hyperframe.frame.GoAwayFrame)]
            assert [(g.last_stream_id, g.error_code) for g in goaways] == [(kept, 0)]
            sent = b"".join(
                f.data
                for f in frames
                if isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == kept
            )
            assert sent == b"\x88\x02\x03\xe9"  # Close, 1001
            assert await gw.wait(10) == 0
            assert trio.current_time() - started < 8  # the 1 s drain, then the Close budget
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    tunnels = {line["requestUri"]: line for line in lines if "tunnelDuration" in line}
    assert set(tunnels) == {"/chat", "/kept"}, lines
    assert tunnels["/chat"]["httpVersion"] == "HTTP/2.0"
    # The client got :status 200 for the backend's 101 (RFC 8441).
    assert (tunnels["/chat"]["httpStatus"], tunnels["/chat"]["serverStatus"]) == (200, "101")
    assert tunnels["/chat"]["tunnelCloseCode"] == 1000
    assert tunnels["/kept"]["tunnelClosedBy"] == "gateway"
