"""`appgw demo` as users run it: started, used over HTTP, HTTPS and wss://, stopped.

open_demo runs `python -m appgw demo` on free ports and returns once it
prints that it is running, with the pid of every process it started. Its
exit path makes sure nothing is left, whatever the test did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import trio
import trio_websocket

from appgw import runfiles
from appgw.certs import make_local_ca
from appgw.demo.runner import APP_INSTANCES, CHAT_ADDRESS, READY_LINE, DemoOptions, demo_config
from tests.support.gateway import pid_alive
from tests.support.ports import free_port, port_accepts

START_TIMEOUT = 40.0
STOP_TIMEOUT = 60.0
PROCESS_LINE = re.compile(r"^\s+(app-1|app-2|chat|gateway)\s+pid (\d+)")


@attrs.define
class Demo:
    directory: Path
    http_port: int
    https_port: int
    app_port: int
    chat_port: int
    process: trio.Process
    output: list[str]
    pids: dict[str, int] = attrs.Factory(dict)

    def log(self) -> str:
        return "\n".join(self.output)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def addresses(self) -> list[tuple[str, int]]:
        """Every address the demo listens on."""
        return [
            ("127.0.0.1", self.http_port),
            ("127.0.0.1", self.https_port),
            *((address, self.app_port) for _, address in APP_INSTANCES),
            (CHAT_ADDRESS, self.chat_port),
        ]

    async def interrupt(self) -> int:
        """Ctrl-C: its exit status."""
        self.process.send_signal(signal.SIGINT)
        with trio.fail_after(STOP_TIMEOUT):
            return await self.process.wait()


async def _collect(process: trio.Process, output: list[str], banner_done: trio.Event) -> None:
    assert process.stdout is not None
    buffer = b""
    while data := await process.stdout.receive_some(65536):
        buffer += data
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            output.append(line.decode("utf-8", "replace"))
            if line.startswith(b"Press Ctrl-C to stop"):
                banner_done.set()
    banner_done.set()


@asynccontextmanager
async def open_demo(cwd: Path, directory: Path | None = None) -> AsyncIterator[Demo]:
    """`appgw demo` run in `cwd` on free ports; everything it started is gone afterwards.

    Without `directory` the demo keeps its state where users have it, in
    `cwd/.appgw-demo`.
    """
    http_port = free_port("127.0.0.1")
    while (https_port := free_port("127.0.0.1")) == http_port:
        pass
    app_port = free_port(*(address for _, address in APP_INSTANCES))
    chat_port = free_port(CHAT_ADDRESS)
    command = [
        sys.executable,
        "-m",
        "appgw",
        "demo",
        *(["--dir", str(directory)] if directory is not None else []),
        "--http-port",
        str(http_port),
        "--https-port",
        str(https_port),
        "--app-port",
        str(app_port),
        "--chat-port",
        str(chat_port),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(cwd),
    )
    directory = directory or cwd / runfiles.DEMO_DIRECTORY
    demo = Demo(directory, http_port, https_port, app_port, chat_port, process, [])
    banner_done = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, process, demo.output, banner_done)
            with trio.move_on_after(START_TIMEOUT):
                await banner_done.wait()
            if READY_LINE not in demo.output or process.returncode is not None:
                raise AssertionError(f"the demo did not start:\n{demo.log()}")
            for line in demo.output:
                if match := PROCESS_LINE.match(line):
                    demo.pids[match[1]] = int(match[2])
            assert set(demo.pids) == {"app-1", "app-2", "chat", "gateway"}, demo.log()
            yield demo
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await _clean_up(demo)


async def _clean_up(demo: Demo) -> None:
    if demo.process.returncode is None:
        demo.process.send_signal(signal.SIGINT)
        with trio.move_on_after(STOP_TIMEOUT):
            await demo.process.wait()
    if demo.process.returncode is None:
        demo.process.kill()
        await demo.process.wait()
    for pid in demo.pids.values():  # each child leads its own process group
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def whoami(client: httpx.AsyncClient, url: str) -> dict[str, object]:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


async def get_message(
    ws: trio_websocket.WebSocketConnection, kind: str, sender: str | None = None
) -> dict[str, object]:
    """The next chat event of type `kind` (from `sender`), skipping the others."""
    while True:
        event = json.loads(await ws.get_message())
        if event["type"] == kind and sender in (None, event["from"]):
            return event


async def exchange(
    sender: trio_websocket.WebSocketConnection,
    receiver: trio_websocket.WebSocketConnection,
    text: str,
) -> None:
    """`sender` says `text`; `receiver` hears it (and so does `sender`)."""
    name = str(sender.path).split("name=", 1)[1]
    await sender.send_message(json.dumps({"name": name, "text": text}))
    for ws in (receiver, sender):
        heard = await get_message(ws, "message", sender=name)
        assert heard["text"] == text


@asynccontextmanager
async def open_chat_client(
    port: int, name: str, tls: ssl.SSLContext
) -> AsyncIterator[tuple[trio_websocket.WebSocketConnection, trio.SSLStream]]:
    """A wss:// chat client over a TLS stream the test holds (and can close)."""
    tcp = await trio.open_tcp_stream("localhost", port)
    stream = trio.SSLStream(tcp, tls, server_hostname="localhost", https_compatible=True)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, f"localhost:{port}", f"/chat/ws?name={name}"
            )
            yield ws, stream
            with trio.move_on_after(5):
                await ws.aclose()
            nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()


async def closing(ws: trio_websocket.WebSocketConnection) -> trio_websocket.CloseReason | None:
    """Read until the connection closes; why it closed."""
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed as closed:
        return closed.reason


async def control(demo: Demo, command: str, cwd: Path) -> str:
    """`appgw <command>` with no options, run in `cwd` as the README says; its output.

    It finds the demo only while no gateway runs on the default pid file.
    """
    default = runfiles.default_pid_file()
    assert runfiles.read_pid(default) is None, f"a gateway runs on {default}: stop it first"
    result = await trio.run_process(
        [sys.executable, "-m", "appgw", command],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=str(cwd),
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"{command} failed:\n{output}\n{demo.log()}"
    return output


async def reload(demo: Demo) -> None:
    """`appgw reload` on the demo's pid file (the browser test reloads between chats)."""
    result = await trio.run_process(
        [sys.executable, "-m", "appgw", "reload", "--pid-file", str(demo.directory / "appgw.pid")],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"reload failed:\n{output}\n{demo.log()}"


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def assert_all_gone(demo: Demo) -> None:
    """No process the demo started is left: not its children, not their children."""
    assert [name for name, pid in demo.pids.items() if pid_alive(pid)] == [], demo.log()
    left = {name: process_group_members(pid) for name, pid in demo.pids.items()}
    assert {name: pids for name, pids in left.items() if pids} == {}, demo.log()


async def test_demo_serves_http_https_and_wss_and_stops_on_ctrl_c(tmp_path):
    with trio.fail_after(120):
        async with open_demo(tmp_path) as demo:
            status = await control(demo, "status", tmp_path)
            assert f"pid {demo.pids['gateway']}" in status, status
            assert str(demo.directory / "demo.toml") in status, status
            # HTTP: one keep-alive connection, so one worker's round robin. The
            # first answers may come before the first probes: wait until both
            # instances have answered, then they must take turns.
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                url = f"http://127.0.0.1:{demo.http_port}/api/whoami"
                seen = {(await whoami(client, url))["instance"]}
                while len(seen) < 2:
                    seen.add((await whoami(client, url))["instance"])
                answers = [await whoami(client, url) for _ in range(4)]
            names = [answer["instance"] for answer in answers]
            assert set(names) == {"app-1", "app-2"}, names
            assert all(a != b for a, b in zip(names, names[1:], strict=False)), names
            assert answers[0]["x_forwarded_proto"] == "http"
            assert str(answers[0]["x_forwarded_for"]).endswith("127.0.0.1")

            # HTTPS, verified with the demo's CA.
            tls = client_context(demo.ca)
            async with httpx.AsyncClient(trust_env=False, verify=tls, timeout=10) as client:
                base = f"https://localhost:{demo.https_port}"
                answers = [await whoami(client, f"{base}/api/whoami") for _ in range(2)]
                page = await client.get(f"{base}/chat/")
            assert {answer["instance"] for answer in answers} == {"app-1", "app-2"}
            assert answers[0]["x_forwarded_proto"] == "https"
            assert page.status_code == 200 and 'id="messages"' in page.text

            # wss://: two chat clients through the gateway; a reload in the
            # middle keeps their chat, and a client after it joins them.
            ws_url = f"wss://localhost:{demo.https_port}/chat/ws"
            async with open_chat_client(demo.https_port, "ada", tls) as (ada, ada_stream):
                await get_message(ada, "join")
                async with trio_websocket.open_websocket_url(f"{ws_url}?name=bob", tls) as bob:
                    joined = await get_message(ada, "join")
                    assert joined["from"] == "bob" and joined["online"] == 2
                    await exchange(ada, bob, "hello, bob")
                    await exchange(bob, ada, "hi ada")

                    reloaded = await control(demo, "reload", tmp_path)
                    assert "appgw reloaded (generation 2)" in reloaded, reloaded
                    await exchange(ada, bob, "still here after the reload?")
                    await exchange(bob, ada, "yes")
                    async with trio_websocket.open_websocket_url(f"{ws_url}?name=cy", tls) as cy:
                        joined = await get_message(cy, "join")
                        assert joined["online"] == 3
                        await exchange(cy, ada, "hello from after the reload")

                # Ctrl-C with a chat open: it is closed cleanly (1001, going
                # away) and everything stops, exit status 0, nothing left.
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(demo.interrupt)
                    closed = await closing(ada)
                    # trio-websocket clients leave the TCP close to the server
                    # (RFC 6455 7.1.1); close it as a browser does once the
                    # server has said goodbye.
                    await ada_stream.aclose()
                assert closed is not None and closed.code == 1001, closed
                assert demo.process.returncode == 0, demo.log()
            assert "appgw demo: stopped" in demo.log()
            assert_all_gone(demo)
            for host, port in demo.addresses():
                assert not await port_accepts(host, port), f"{host}:{port} still open"


async def test_demo_stops_everything_when_a_backend_dies(tmp_path):
    with trio.fail_after(90):
        async with open_demo(tmp_path, tmp_path / "demo") as demo:
            os.kill(demo.pids["app-2"], signal.SIGKILL)
            with trio.fail_after(STOP_TIMEOUT):
                status = await demo.process.wait()
            assert status == 1, demo.log()
            assert "app-2 exited with status -9" in demo.log()
            assert_all_gone(demo)
            for host, port in demo.addresses():
                assert not await port_accepts(host, port), f"{host}:{port} still open"


def test_demo_config_is_valid_and_routes_chat_by_path(tmp_path):
    from appgw.config import load

    options = DemoOptions(directory=tmp_path, http_port=18080, https_port=18443)
    certs = make_local_ca(tmp_path)
    path = tmp_path / "demo.toml"
    path.write_text(demo_config(options, certs))
    config = load(str(path))
    listeners = config.listeners.values()
    assert {(item.protocol, item.address, item.port) for item in listeners} == {
        ("http", "127.0.0.1", 18080),
        ("https", "127.0.0.1", 18443),
    }
    assert [str(s) for s in config.pools["app"].servers] == ["127.0.0.2", "127.0.0.3"]
    assert [str(s) for s in config.pools["chat"].servers] == ["127.0.0.4"]
    assert config.settings["chat"].request_timeout == 60
    assert config.probes[config.settings["chat"].probe].path == "/healthz"
    assert config.probes[config.settings["app"].probe].path == "/healthz"
    (site,) = config.path_maps.values()
    assert (site.default_pool, site.default_setting) == ("app", "app")
    (chat,) = site.rules
    assert set(chat.paths) == {"/chat", "/chat/*"} and chat.pool == "chat"
    assert {rule.kind for rule in config.rules.values()} == {"path"}
