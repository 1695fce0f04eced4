"""Probes against real backends on loopback, and the prober process end to end.

The backends live in this file: a small trio + h11 HTTP server (optionally
over TLS with trustme certificates) that answers with a chosen status and
body, or never answers, and trio-websocket servers.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import ssl
import subprocess
import sys
from functools import partial

import attrs
import h11
import pytest
import trio
import trio_websocket
import trustme

from appgw.config.model import Config, Pool, Probe, Rule, Server, Setting
from appgw.prober import results
from appgw.prober.main import serve_prober
from appgw.prober.probe import USER_AGENT, probe_once
from appgw.prober.targets import Target, probe_targets

BUDGET = 10  # seconds, per test unless it says otherwise


# --- backends --------------------------------------------------------------


@attrs.define
class Backend:
    """How a test HTTP backend answers, and what it saw."""

    status: int = 200
    body: bytes = b"ok"
    answer: bool = True  # False: read the request and never answer
    extra_headers: list[tuple[str, str]] = attrs.Factory(list)
    hosts: list[str] = attrs.Factory(list)
    agents: list[str] = attrs.Factory(list)
    requests: int = 0


async def _serve_http(stream: trio.abc.Stream, backend: Backend) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
                continue
            if isinstance(event, h11.Request):
                backend.requests += 1
                headers = {k.decode(): v.decode() for k, v in event.headers}
                backend.hosts.append(headers.get("host", ""))
                backend.agents.append(headers.get("user-agent", ""))
                if not backend.answer:
                    await trio.sleep_forever()
                if backend.status == 101:
                    await stream.send_all(
                        conn.send(
                            h11.InformationalResponse(
                                status_code=101,
                                headers=[
                                    ("Upgrade", "websocket"),
                                    ("Connection", "Upgrade"),
                                    *backend.extra_headers,
                                ],
                            )
                        )
                    )
                    return
                head = h11.Response(
                    status_code=backend.status,
                    headers=[("Content-Length", str(len(backend.body))), *backend.extra_headers],
                )
                await stream.send_all(
                    conn.send(head)
                    + conn.send(h11.Data(data=backend.body))
                    + conn.send(h11.EndOfMessage())
                )
                return
            return  # ConnectionClosed or anything else
    except (trio.BrokenResourceError, h11.RemoteProtocolError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def launch(
    nursery: trio.Nursery,
    backend: Backend,
    host: str = "127.0.0.2",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[int, trio.CancelScope]:
    """Start an HTTP backend; return its port and a scope that stops it."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[int]) -> None:
        with scope:
            listeners: list = await trio.open_tcp_listeners(port, host=host)
            bound = listeners[0].socket.getsockname()[1]
            if ssl_context is not None:
                listeners = [
                    trio.SSLListener(ln, ssl_context, https_compatible=True) for ln in listeners
                ]
            task_status.started(bound)
            await trio.serve_listeners(partial(_serve_http, backend=backend), listeners)

    return await nursery.start(run), scope


def closed_port(host: str = "127.0.0.2") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def target_for(
    port: int,
    probe: Probe | None = None,
    host: str = "127.0.0.2",
    roots: dict[str, bytes] | None = None,
    **setting_fields: object,
) -> Target:
    setting = Setting("s", port=port, probe=probe.name if probe else None, **setting_fields)  # type: ignore[arg-type]
    config = Config(
        source="test.toml",
        pools={"p": Pool("p", (Server(host),))},
        settings={"s": setting},
        probes={probe.name: probe} if probe else {},
        rules={"r": Rule("r", listener="l", pool="p", setting="s")},
        trusted_root_certificates=roots or {},
    )
    [target] = probe_targets(config)
    return target


# --- HTTP probes -------------------------------------------------------------


async def test_status_in_range_is_healthy(nursery):
    with trio.fail_after(BUDGET):
        backend = Backend(status=204, body=b"")
        port, _ = await launch(nursery, backend)
        result = await probe_once(target_for(port))
        assert result == results.ProbeResult(True, "Success. Received 204 status code", 204)
        assert backend.agents == [USER_AGENT]


async def test_status_out_of_range(nursery):
    with trio.fail_after(BUDGET):
        port, _ = await launch(nursery, Backend(status=503))
        result = await probe_once(target_for(port))
        assert not result.ok and result.status == 503
        assert result.reason == (
            "Status code of the backend's HTTP response did not match the probe setting."
            " Expected:200-399 Received:503."
        )


async def test_custom_status_codes(nursery):
    with trio.fail_after(BUDGET):
        probe = Probe("p", match_status_codes=((200, 200), (401, 401)))
        port, _ = await launch(nursery, Backend(status=401))
        assert (await probe_once(target_for(port, probe))).ok
        port, _ = await launch(nursery, Backend(status=301, extra_headers=[("Location", "/x")]))
        result = await probe_once(target_for(port, probe))
        assert result.reason.endswith("Expected:200,401 Received:301.")


async def test_body_match(nursery):
    with trio.fail_after(BUDGET):
        port, _ = await launch(nursery, Backend(body=b"status: healthy\n"))
        assert (await probe_once(target_for(port, Probe("p", match_body="healthy")))).ok
        result = await probe_once(target_for(port, Probe("p", match_body="ready")))
        assert not result.ok
        assert result.reason == (
            "Body of the backend's HTTP response did not match the probe setting."
            " Received response body doesn't contain ready."
        )


async def test_body_match_reads_at_most_64_kib(nursery):
    with trio.fail_after(BUDGET):
        port, _ = await launch(nursery, Backend(body=b"x" * 70_000 + b"healthy"))
        result = await probe_once(target_for(port, Probe("p", match_body="healthy")))
        assert not result.ok and "doesn't contain healthy" in result.reason


async def test_host_header_choice(nursery):
    with trio.fail_after(BUDGET):
        backend = Backend()
        port, _ = await launch(nursery, backend)
        await probe_once(target_for(port))  # default probe: Application Gateway's 127.0.0.1
        await probe_once(target_for(port, host_name="app.example"))  # default probe, setting's name
        await probe_once(target_for(port, pick_host_name_from_backend_address=True))
        await probe_once(target_for(port, Probe("p", host="probe.example")))
        await probe_once(
            target_for(port, Probe("p", pick_host_name_from_settings=True), host_name="app.example")
        )
        assert backend.hosts == [
            f"127.0.0.1:{port}",
            f"app.example:{port}",
            f"127.0.0.2:{port}",
            f"probe.example:{port}",
            f"app.example:{port}",
        ]


async def test_custom_port(nursery):
    with trio.fail_after(BUDGET):
        backend = Backend()
        port, _ = await launch(nursery, backend)
        setting_port = closed_port()
        assert not (await probe_once(target_for(setting_port))).ok
        result = await probe_once(target_for(setting_port, Probe("p", port=port, host="h")))
        assert result.ok and backend.hosts == [f"h:{port}"]


async def test_timeout(nursery):
    with trio.fail_after(BUDGET):
        backend = Backend(answer=False)
        port, _ = await launch(nursery, backend)
        start = trio.current_time()
        result = await probe_once(target_for(port, Probe("p", timeout=1)))
        elapsed = trio.current_time() - start
        assert backend.requests == 1
        assert 0.9 <= elapsed < 2.0
        assert result.reason == (
            "Time taken by the backend to respond to application gateway's health probe is"
            " more than the timeout threshold in the probe setting."
        )


async def test_connection_refused():
    with trio.fail_after(BUDGET):
        result = await probe_once(target_for(closed_port()))
        assert not result.ok and result.status is None
        assert result.reason.startswith("Application Gateway could not connect to the backend.")
        assert result.reason.endswith("(Connection refused)")


async def test_unresolvable_name():
    with trio.fail_after(BUDGET):
        result = await probe_once(target_for(80, host="backend.invalid"))
        assert result.reason.startswith("Application Gateway could not create a probe")


async def test_garbage_response(nursery):
    async def garbage(stream: trio.abc.Stream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await stream.aclose()

    with trio.fail_after(BUDGET):
        listeners = await nursery.start(partial(trio.serve_tcp, garbage, 0, host="127.0.0.2"))
        port = listeners[0].socket.getsockname()[1]
        result = await probe_once(target_for(port))
        assert not result.ok and "not valid HTTP/1.1" in result.reason


# --- HTTPS -----------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


async def test_https_with_trusted_root(nursery, ca):
    with trio.fail_after(BUDGET):
        backend = Backend()
        port, _ = await launch(
            nursery, backend, ssl_context=server_context(ca, "backend.test", "127.0.0.2")
        )
        roots = {"ca": ca.cert_pem.bytes()}
        https = Probe("p", protocol="https", host="backend.test")
        result = await probe_once(
            target_for(
                port, https, roots=roots, protocol="https", trusted_root_certificates=("ca",)
            )
        )
        assert result.ok, result.reason
        # The default probe verifies the server's address when no host name is set.
        result = await probe_once(
            target_for(port, roots=roots, protocol="https", trusted_root_certificates=("ca",))
        )
        assert result.ok, result.reason
        assert backend.hosts == [f"backend.test:{port}", f"127.0.0.1:{port}"]


async def test_https_untrusted_and_wrong_name(nursery, ca):
    with trio.fail_after(BUDGET):
        port, _ = await launch(nursery, Backend(), ssl_context=server_context(ca, "backend.test"))
        # No trusted roots: the system store does not know this CA.
        result = await probe_once(
            target_for(port, Probe("p", protocol="https", host="backend.test"), protocol="https")
        )
        assert not result.ok
        assert "not signed by a well-known Certificate Authority" in result.reason
        # Trusted CA, but the certificate does not name the probe's host.
        result = await probe_once(
            target_for(
                port,
                Probe("p", protocol="https", host="other.test"),
                roots={"ca": ca.cert_pem.bytes()},
                protocol="https",
                trusted_root_certificates=("ca",),
            )
        )
        assert result.reason.startswith("The Common Name of the leaf certificate")
        # A different CA as the trusted root.
        result = await probe_once(
            target_for(
                port,
                Probe("p", protocol="https", host="backend.test"),
                roots={"other": trustme.CA().cert_pem.bytes()},
                protocol="https",
                trusted_root_certificates=("other",),
            )
        )
        assert "doesn't match the trusted root certificate" in result.reason


async def test_https_probe_of_a_plain_http_backend(nursery):
    with trio.fail_after(BUDGET):
        port, _ = await launch(nursery, Backend())
        result = await probe_once(
            target_for(port, Probe("p", protocol="https", host="h"), protocol="https")
        )
        assert not result.ok and result.reason.startswith(
            "The TLS handshake with the backend failed"
        )


# --- WebSocket probes --------------------------------------------------------


@attrs.define
class Closes:
    """Close codes a WebSocket backend received."""

    codes: list[int] = attrs.Factory(list)
    event: trio.Event = attrs.Factory(trio.Event)


async def _start_websocket_server(nursery, closes: Closes, ssl_context=None) -> int:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            closes.codes.append(exc.reason.code if exc.reason else 0)
            closes.event.set()

    server = await nursery.start(
        partial(trio_websocket.serve_websocket, handler, "127.0.0.2", 0, ssl_context)
    )
    return server.port


async def test_websocket_probe_of_a_websocket_backend(nursery):
    with trio.fail_after(BUDGET):
        closes = Closes()
        port = await _start_websocket_server(nursery, closes)
        result = await probe_once(target_for(port, Probe("p", protocol="ws", path="/chat")))
        assert result == results.ProbeResult(True, "Success. Received 101 status code", 101)
        await closes.event.wait()  # the handler may see the close after the probe returns
        assert closes.codes == [1000]


async def test_wss_probe(nursery, ca):
    with trio.fail_after(BUDGET):
        port = await _start_websocket_server(nursery, Closes(), server_context(ca, "chat.test"))
        probe = Probe("p", protocol="wss", host="chat.test")
        result = await probe_once(
            target_for(
                port,
                probe,
                roots={"ca": ca.cert_pem.bytes()},
                protocol="https",
                trusted_root_certificates=("ca",),
            )
        )
        assert result.ok, result.reason


async def test_websocket_probe_of_a_plain_http_backend(nursery):
    with trio.fail_after(BUDGET):
        port, _ = await launch(nursery, Backend(status=200))
        result = await probe_once(target_for(port, Probe("p", protocol="ws")))
        assert not result.ok and result.status == 200
        assert result.reason == (
            "The backend's WebSocket handshake did not succeed. Expected:101 Received:200."
        )


async def test_websocket_probe_checks_the_accept_header(nursery):
    with trio.fail_after(BUDGET):
        backend = Backend(
            status=101, extra_headers=[("Sec-WebSocket-Accept", "bm90IHRoZSByaWdodCBvbmU=")]
        )
        port, _ = await launch(nursery, backend)
        result = await probe_once(target_for(port, Probe("p", protocol="ws")))
        assert not result.ok and "Sec-WebSocket-Accept" in result.reason


# --- the prober process ------------------------------------------------------

_PROBER_SCRIPT = """
import pickle, sys
from appgw.prober.main import run_prober
with open(sys.argv[1], "rb") as f:
    config = pickle.load(f)
run_prober(config, int(sys.argv[2]))
"""


async def _collect(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    while data := await stream.receive_some(65536):
        into += data


class Messages:
    """The prober's messages from a pipe, as JSON objects; its Ready comes first."""

    def __init__(self, fd: int) -> None:
        self.stream = trio.lowlevel.FdStream(fd)
        self.buffer = b""
        self.ready = False

    async def next(self) -> dict:
        while True:
            while b"\n" not in self.buffer:
                data = await self.stream.receive_some(65536)
                assert data, "the prober closed its pipe"
                self.buffer += data
            line, _, self.buffer = self.buffer.partition(b"\n")
            message = json.loads(line)
            if message == {"type": "ready"}:
                assert not self.ready, "the prober said ready twice"
                self.ready = True
                continue
            assert self.ready, "a message before the prober said ready"
            return message

    async def until(self, predicate) -> dict:
        while True:
            message = await self.next()
            assert message["type"] == "health"
            servers = {s["host"]: s for s in message["snapshot"]["servers"]}
            if predicate(servers):
                return servers


async def test_prober_process_end_to_end(nursery, tmp_path):
    interval, timeout, threshold = 1, 1, 2
    with trio.fail_after(30):
        port_a, stop_a = await launch(nursery, Backend(), host="127.0.0.2")
        port_b, stop_b = await launch(nursery, Backend(), host="127.0.0.3")
        config = Config(
            source="test.toml",
            pools={"web": Pool("web", (Server("127.0.0.2", port_a), Server("127.0.0.3", port_b)))},
            settings={"web": Setting("web", port=1, probe="p")},
            probes={
                "p": Probe("p", interval=interval, timeout=timeout, unhealthy_threshold=threshold)
            },
            rules={"r": Rule("r", listener="l", pool="web", setting="web")},
        )
        config_path = tmp_path / "config.pickle"
        config_path.write_bytes(pickle.dumps(config))
        read_fd, write_fd = os.pipe()
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", _PROBER_SCRIPT, str(config_path), str(write_fd)],
            pass_fds=(write_fd,),
            stderr=subprocess.PIPE,
        )
        os.close(write_fd)
        errors = bytearray()
        nursery.start_soon(_collect, process.stderr, errors)
        messages = Messages(read_fd)
        try:
            # The first message comes after the first round, and says everything.
            first = await messages.next()
            assert first["type"] == "health"
            snapshot = first["snapshot"]
            assert {
                (s["host"], s["port"], s["state"], s["routable"]) for s in snapshot["servers"]
            } == {
                ("127.0.0.2", port_a, "Healthy", True),
                ("127.0.0.3", port_b, "Healthy", True),
            }
            assert {"pool", "setting", "since", "reason"} <= set(snapshot["servers"][0])

            # B stops answering: out of rotation within interval * threshold + timeout,
            # plus at most one publish interval.
            stop_b.cancel()
            stopped = trio.current_time()
            servers = await messages.until(lambda s: not s["127.0.0.3"]["routable"])
            elapsed = trio.current_time() - stopped
            assert elapsed < interval * threshold + timeout + 1.5, elapsed
            assert servers["127.0.0.3"]["state"] == "Unhealthy"
            assert "could not connect to the backend" in servers["127.0.0.3"]["reason"]
            assert servers["127.0.0.2"]["state"] == "Healthy"

            # B comes back: one good probe brings it back.
            await launch(nursery, Backend(), host="127.0.0.3", port=port_b)
            restarted = trio.current_time()
            servers = await messages.until(lambda s: s["127.0.0.3"]["state"] == "Healthy")
            assert servers["127.0.0.3"]["routable"]
            assert trio.current_time() - restarted < interval + timeout + 1.5

            # The reader goes away: the prober exits at its next message.
            await messages.stream.aclose()
            stop_a.cancel()  # a change, so that it writes
            with trio.fail_after(interval + timeout + 5):
                await process.wait()
            assert process.returncode == 0, errors.decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_routing_changes_are_published_before_the_first_round_ends(nursery):
    with trio.fail_after(BUDGET):
        port_a, _ = await launch(nursery, Backend(), host="127.0.0.2")
        port_c, _ = await launch(nursery, Backend(answer=False), host="127.0.0.4")
        port_b = closed_port("127.0.0.3")
        config = Config(
            source="test.toml",
            pools={
                "web": Pool(
                    "web",
                    (
                        Server("127.0.0.2", port_a),
                        Server("127.0.0.3", port_b),
                        Server("127.0.0.4", port_c),
                    ),
                )
            },
            settings={"web": Setting("web", port=1, probe="p")},
            probes={"p": Probe("p", interval=30, timeout=3, unhealthy_threshold=1)},
            rules={"r": Rule("r", listener="l", pool="web", setting="web")},
        )
        read_fd, write_fd = os.pipe()
        messages = Messages(read_fd)
        prober = trio.CancelScope()
        start = trio.current_time()
        nursery.start_soon(_run_prober_until, config, write_fd, prober)
        # The refused server leaves rotation at once, without waiting for
        # the silent one's timeout.
        servers = await messages.until(lambda s: not s["127.0.0.3"]["routable"])
        assert trio.current_time() - start < 1.5
        assert servers["127.0.0.4"]["state"] == "Unknown"
        assert servers["127.0.0.4"]["reason"] == results.PENDING
        # The silent server's timeout ends the first round.
        servers = await messages.until(lambda s: s["127.0.0.4"]["state"] != "Unknown")
        assert 2.9 < trio.current_time() - start < 4.5
        assert servers["127.0.0.4"]["state"] == "Unhealthy"
        assert servers["127.0.0.4"]["reason"].startswith("Time taken by the backend")
        assert servers["127.0.0.2"]["state"] == "Healthy"
        prober.cancel()
        await messages.stream.aclose()
        os.close(write_fd)


async def _run_prober_until(config: Config, fd: int, scope: trio.CancelScope) -> None:
    with scope:
        await serve_prober(config, fd)


async def test_probe_lets_the_backend_finish(nursery):
    # Closing with half a response unread would reset the connection, which
    # backends log as errors; the probe reads the rest first.
    from tests.support.backends import serve_http_backend

    with trio.fail_after(BUDGET):
        backend = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="big"))
        result = await probe_once(
            target_for(backend.port, Probe("p", path="/download?size=500000"))
        )
        assert result.ok, result.reason
        assert backend.peer_errors == []
