"""A real browser over HTTP/2: Chromium loads a page through the gateway's
HTTPS listener (ALPN h2), and the page's WebSocket opens on that same
connection (RFC 8441, extended CONNECT) and echoes; curl --http2 beside it.

The browser is told to accept exactly one certificate, the gateway's
(`--ignore-certificate-errors-spki-list`, as in test_browser.py), and not
to preconnect (its network prediction is off in the profile: otherwise, in
some runs, it opens a spare connection beside the page's that carries
nothing). That the WebSocket took the page's HTTP/2 connection and not an
HTTP/1.1 one of its own is the gateway's to say: its metrics count one h2
client connection and no HTTP/1.1 connection or request, and the tunnel's
access log line says HTTP/2.0 and has the page's client port.

How such a tunnel ends, on the same gateway: Chromium resets the stream
of a WebSocket still open when it closes, an h2 client resets one and
drops its connection with another open; each tunnel ends and is logged as
on HTTP/1.1 (its `tunnel*` fields, `tunnelClosedBy` `client`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import trio
import trustme

from appgw.certs import spki_sha256
from tests.integration.cdp import chromium_missing, open_browser
from tests.integration.test_http2 import client_frame, open_websocket
from tests.support.admin import Samples, sample, wait_for_metrics
from tests.support.backends import start_http_backends
from tests.support.gateway import CertFiles, open_gateway, write_certificates
from tests.support.h2client import H2Client, open_h2
from tests.support.ports import free_port

GATEWAY = "127.0.0.1"
BACKEND = "127.0.0.2"


def config(port: int, backend_port: int, certs: CertFiles, log: Path) -> str:
    return f"""
[gateway]
access_log = "{log}"
[gateway.http2]
enabled = true

[certificates.site]
cert = "{certs.cert}"
key = "{certs.key}"

[listeners.site]
protocol = "https"
address = "{GATEWAY}"
port = {port}
certificate = "site"

[pools.web]
servers = ["{BACKEND}"]
[settings.web]
port = {backend_port}

[rules.site]
listener = "site"
pool = "web"
setting = "web"
priority = 10
"""


def curl_speaks_http2() -> bool:
    """Whether curl is installed with HTTP/2 among its features (`curl -V`)."""
    if shutil.which("curl") is None:
        return False
    features = subprocess.run(["curl", "-V"], capture_output=True, text=True, check=False)
    return "HTTP2" in features.stdout.split()


def no_preconnect(profile: Path) -> None:
    """A Chromium profile whose network prediction is off (no speculative connections)."""
    (profile / "Default").mkdir(parents=True)
    preferences = {"net": {"network_prediction_options": 2}}  # 2: never predict
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))


async def echoed(client: H2Client, stream_id: int) -> None:
    """A text message on the WebSocket of `stream_id`, and its echo back."""
    answer = client.answers[stream_id]
    before = len(answer.body)
    await client.send_body(stream_id, client_frame(0x1, b"hi"), end=False)
    while len(answer.body) < before + 4:
        await client.read_once()
    assert bytes(answer.body[before:]) == b"\x81\x02hi"


def by_protocol(samples: Samples, name: str) -> dict[str, float]:
    """{protocol: value} of one of the by-protocol counters."""
    return {
        dict(labels)["protocol"]: value
        for (family, labels), value in samples.items()
        if family == name
    }


async def test_chromium_opens_its_websocket_on_the_http2_connection(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    problem = chromium_missing()
    assert problem is None, problem
    certs = write_certificates(trustme.CA(), tmp_path / "certs", ("localhost",))
    port = free_port(GATEWAY)
    admin = free_port(GATEWAY)
    log = tmp_path / "access.log"
    flags = [f"--ignore-certificate-errors-spki-list={spki_sha256(certs.cert)}"]
    with trio.fail_after(40):
        [backend] = await start_http_backends(
            nursery, [BACKEND], backend_port, names=["web"], websocket=True
        )
        async with open_gateway(
            config(port, backend_port, certs, log),
            tmp_path,
            workers=1,
            extra_args=["--admin", f"{GATEWAY}:{admin}"],
        ) as gw:
            no_preconnect(tmp_path / "profile")
            async with open_browser(tmp_path / "profile", flags) as browser:
                page = await browser.new_page(f"https://localhost:{port}/ws-page")
                try:
                    state = await page.wait_for(
                        "(s => !['connecting', 'open'].includes(s) && s)"
                        "(document.querySelector('#echo').dataset.state)"
                    )
                    echo = await page.evaluate("document.querySelector('#echo').textContent")
                    navigation = await page.evaluate(
                        "performance.getEntriesByType('navigation')[0].nextHopProtocol"
                    )
                except Exception as exc:
                    raise AssertionError(
                        f"{exc}\nbrowser console:\n" + "\n".join(browser.console)
                    ) from exc
                assert (state, echo) == ("echoed", "hello"), browser.console
                assert navigation == "h2"

                # The tunnel is counted once it opened; the counts travel
                # with the worker's heartbeat.
                def tunnelled(samples: Samples) -> bool:
                    return sample(samples, "appgw_tunnels_total") >= 1

                samples = await wait_for_metrics(admin, tunnelled)
            connections = by_protocol(samples, "appgw_client_protocol_connections_total")
            requests = by_protocol(samples, "appgw_client_protocol_requests_total")
            assert connections == {"h2": 1}, (connections, gw.log_tail())
            assert set(requests) == {"h2"} and requests["h2"] >= 2, requests
            assert sample(samples, "appgw_tunnels_total") == 1

            # curl speaks HTTP/2 to the same listener (where its libcurl can).
            if curl_speaks_http2():
                out = await trio.run_process(
                    ["curl", "-sS", "-i", "--http2", "--cacert", str(certs.ca)]
                    + [f"https://localhost:{port}/"],
                    capture_stdout=True,
                )
                assert out.stdout.startswith(b"HTTP/2 200"), out.stdout[:200]

            # An h2 client resets its WebSocket's stream (the connection
            # goes on), then drops its connection with another one open:
            # each tunnel ends and is logged as on HTTP/1.1.
            client = await open_h2(port, certs.ca.read_bytes())
            reset = await open_websocket(client, "/ws/reset")
            await echoed(client, reset)
            client.conn.reset_stream(reset)
            assert (await client.request("/")).status == 200
            dropped = await open_websocket(client, "/ws/dropped")
            await echoed(client, dropped)
            await trio.aclose_forcefully(client.stream)
            await gw.wait_for_log("(the client closed the connection)", 5)
            assert "Traceback" not in gw.log(), gw.log_tail()

    # The backend saw the WebSocket handshakes as HTTP/1.1 Upgrades from the
    # gateway; the access log has the tunnels as HTTP/2.0.
    assert backend.ws is not None
    assert [h.path for h in backend.ws.handshakes] == ["/ws/echo", "/ws/reset", "/ws/dropped"]
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    tunnels = [line for line in lines if "tunnelDuration" in line]
    # The client got :status 200 for the backend's 101 (RFC 8441).
    assert {(t["httpStatus"], t["serverStatus"]) for t in tunnels} == {(200, "101")}, tunnels
    seen = [(t["requestUri"], t["httpVersion"]) for t in tunnels]
    assert sorted(path for path, _ in seen) == ["/ws/dropped", "/ws/echo", "/ws/reset"], lines
    assert {version for _, version in seen} == {"HTTP/2.0"}
    # The browser went with its WebSocket open (Chromium resets the stream),
    # the h2 client reset one and dropped the other with its connection.
    for tunnel in tunnels:
        assert tunnel.get("tunnelClosedBy") == "client", tunnel
        assert tunnel["tunnelBytesFromClient"] > 0 and tunnel["tunnelBytesFromBackend"] > 0
    assert {line["httpVersion"] for line in lines} == {"HTTP/2.0"}, lines
    browser_ports = {line["clientPort"] for line in lines if "Chrome" in line["userAgent"]}
    assert len(browser_ports) == 1, lines  # the page, its favicon and its WebSocket
