"""`appgw demo`: the gateway in front of the bundled sample backends.

The runner makes a local CA in its state directory (once), writes demo.toml
there, then starts, as child processes in their own process groups:

    app-1  127.0.0.2:9001  \\  pool "app": everything but /chat
    app-2  127.0.0.3:9001  /
    chat   127.0.0.4:9002     pool "chat": /chat and /chat/*
    gateway                   `appgw run -c demo.toml`, http :8080, https :8443

Each child is started only once the one before it is listening (a backend
prints a line when it listens, the gateway logs `gateway ready`). Because the
children have their own process groups, Ctrl-C reaches only the runner, which
then stops them in order: the gateway gracefully (TERM; a second Ctrl-C makes
it INT, a fast stop) together with the chat server, whose goodbye ends the
open WebSocket tunnels at once, then the app instances. If any child dies on
its own, the runner stops the others and exits 1, naming the child.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio
from attrs import frozen

from appgw import runfiles
from appgw.certs import CertPaths, make_local_ca, trust_instructions
from appgw.demo.supervisor import Child, Supervisor

APP_INSTANCES = (("app-1", "127.0.0.2"), ("app-2", "127.0.0.3"))
CHAT_ADDRESS = "127.0.0.4"
READY_LINE = "appgw demo is running"

BACKEND_START_TIMEOUT = 15.0
GATEWAY_START_TIMEOUT = 30.0


@frozen
class DemoOptions:
    directory: Path
    http_port: int = 8080
    https_port: int = 8443
    public: bool = False
    app_port: int = 9001
    chat_port: int = 9002
    workers: int = 2

    @property
    def address(self) -> str:
        return "0.0.0.0" if self.public else "127.0.0.1"

    @property
    def config_path(self) -> Path:
        return self.directory / "demo.toml"

    @property
    def pid_file(self) -> Path:
        return self.directory / "appgw.pid"


def parse_args(argv: Sequence[str]) -> DemoOptions:
    parser = argparse.ArgumentParser(
        prog="appgw demo",
        description="Run the gateway in front of sample backends: two instances of a "
        "small web app and a WebSocket chat, on http://localhost:8080 and "
        "https://localhost:8443 with a local CA made on first run.",
    )
    parser.add_argument(
        "--dir",
        default=runfiles.DEMO_DIRECTORY,
        help=f"state directory: CA, config, pid file (default: ./{runfiles.DEMO_DIRECTORY})",
    )
    parser.add_argument("--http-port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--https-port", type=int, default=8443, help="HTTPS port (default 8443)")
    parser.add_argument(
        "--public",
        action="store_true",
        help="listen on all addresses instead of 127.0.0.1 only",
    )
    parser.add_argument(
        "--app-port", type=int, default=9001, help="port of the sample app instances (default 9001)"
    )
    parser.add_argument(
        "--chat-port", type=int, default=9002, help="port of the chat server (default 9002)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gateway workers (default 2)")
    args = parser.parse_args(list(argv))
    for flag in ("http_port", "https_port", "app_port", "chat_port"):
        if not 1 <= getattr(args, flag) <= 65535:
            parser.error(f"--{flag.replace('_', '-')} must be 1..65535")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return DemoOptions(
        directory=Path(args.dir).resolve(),
        http_port=args.http_port,
        https_port=args.https_port,
        public=args.public,
        app_port=args.app_port,
        chat_port=args.chat_port,
        workers=args.workers,
    )


def reload_command(options: DemoOptions) -> str:
    """How to reload the demo from the current directory.

    `appgw reload` with no options finds a demo in ./.appgw-demo; one kept
    elsewhere (--dir) is named by its pid file.
    """
    if options.directory == Path(runfiles.DEMO_DIRECTORY).resolve():
        return "scripts/appgw reload"
    return f"scripts/appgw reload --pid-file {options.pid_file}"


def demo_config(options: DemoOptions, certs: CertPaths) -> str:
    """The demo's gateway configuration, in appgw's TOML format."""
    servers = ", ".join(f'"{address}"' for _, address in APP_INSTANCES)
    return f"""\
# The appgw demo, written by `appgw demo` on every start (edits are lost then).
# While the demo runs, edit this file and apply it with
#   scripts/appgw reload          (from the directory the demo runs in)
# or, from anywhere,
#   scripts/appgw reload --pid-file {options.pid_file}

[gateway]
pid_file = "{options.pid_file}"

[gateway.http2]              # HTTPS speaks HTTP/2, WebSocket included (RFC 8441)
enabled = true

[certificates.localhost]
cert = "{certs.cert.name}"
key = "{certs.key.name}"

[listeners.http]
protocol = "http"
address = "{options.address}"
port = {options.http_port}

[listeners.https]
protocol = "https"
address = "{options.address}"
port = {options.https_port}
certificate = "localhost"

[pools.app]
servers = [{servers}]

[pools.chat]
servers = ["{CHAT_ADDRESS}"]

[probes.app]
protocol = "http"
path = "/healthz"
interval = 5
timeout = 5
unhealthy_threshold = 2

[probes.chat]
protocol = "http"
path = "/healthz"
interval = 5
timeout = 5
unhealthy_threshold = 2

[settings.app]
port = {options.app_port}
protocol = "http"
request_timeout = 20
probe = "app"

[settings.chat]
port = {options.chat_port}
protocol = "http"
request_timeout = 60         # also how long a chat may be silent; the server pings sooner
probe = "chat"

[path_maps.site]
default_pool = "app"
default_setting = "app"

[[path_maps.site.rules]]
name = "chat"
paths = ["/chat", "/chat/*"]
pool = "chat"
setting = "chat"

[rules.http]
listener = "http"
kind = "path"
priority = 100
path_map = "site"

[rules.https]
listener = "https"
kind = "path"
priority = 200
path_map = "site"
"""


def run_demo(argv: list[str]) -> int:
    """`appgw demo [--dir D] [--http-port P] [--https-port P] [--public] ...`."""
    options = parse_args(argv)
    try:
        certs = make_local_ca(options.directory)
        options.config_path.write_text(demo_config(options, certs))
    except OSError as exc:
        print(f"appgw demo: cannot prepare {options.directory}: {exc}", file=sys.stderr)
        return 1
    if certs.created_ca:
        print(f"appgw demo: made a local CA in {options.directory}", flush=True)
    try:
        return trio.run(_run, options, certs)
    except KeyboardInterrupt:  # before the runner's signal handling was in place
        return 130


async def _run(options: DemoOptions, certs: CertPaths) -> int:
    python = sys.executable
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery)

            async def watch_signals() -> None:
                async for _ in signals:
                    supervisor.on_signal()

            nursery.start_soon(watch_signals)
            try:
                started = await _start_all(supervisor, options, python)
                if started:
                    print(_banner(options, certs, supervisor.children), flush=True)
                    await supervisor.stopping.wait()
            finally:
                with trio.CancelScope(shield=True):
                    problems = await supervisor.stop_all()
            nursery.cancel_scope.cancel()
    for problem in problems:
        print(f"appgw demo: {problem}", file=sys.stderr)
    if supervisor.reason is not None:
        print(f"appgw demo: stopped because {supervisor.reason}", file=sys.stderr)
        return 1
    print("appgw demo: stopped", file=sys.stderr)
    return 1 if problems else 0


async def _start_all(supervisor: Supervisor, options: DemoOptions, python: str) -> bool:
    for name, address in APP_INSTANCES:
        child = await supervisor.start(
            name,
            [
                python,
                "-m",
                "appgw.demo.backends",
                "--name",
                name,
                "--bind",
                address,
                "--port",
                str(options.app_port),
            ],
            ready=lambda line: "listening on" in line,
            ready_on_stderr=False,
            ready_within=BACKEND_START_TIMEOUT,
        )
        if child is None:
            return False
    child = await supervisor.start(
        "chat",
        [python, "-m", "appgw.demo.chat", "--bind", CHAT_ADDRESS, "--port", str(options.chat_port)],
        ready=lambda line: "listening on" in line,
        ready_on_stderr=False,
        ready_within=BACKEND_START_TIMEOUT,
    )
    if child is None:
        return False
    child = await supervisor.start(
        "gateway",
        [
            python,
            "-m",
            "appgw",
            "run",
            "-c",
            str(options.config_path),
            "--workers",
            str(options.workers),
            "--pid-file",
            str(options.pid_file),
        ],
        ready=lambda line: "gateway ready" in line,
        ready_on_stderr=True,
        ready_within=GATEWAY_START_TIMEOUT,
    )
    return child is not None


def _banner(options: DemoOptions, certs: CertPaths, children: list[Child]) -> str:
    http = f"http://localhost:{options.http_port}/"
    https = f"https://localhost:{options.https_port}/"
    where = {name: f"http://{address}:{options.app_port}/" for name, address in APP_INSTANCES}
    where["chat"] = f"http://{CHAT_ADDRESS}:{options.chat_port}/chat/"
    where["gateway"] = f"{options.config_path}"
    processes = "\n".join(
        f"  {child.name:<8} pid {child.pid:<8} {where.get(child.name, '')}" for child in children
    )
    public = (
        "\nListening on all addresses (--public): the certificate covers localhost only.\n"
        if options.public
        else ""
    )
    return f"""
{READY_LINE}

  {http:<34} the sample app: two instances, balanced
  {https:<34} the same over HTTPS
  {https + "chat/":<34} the chat: open it in two tabs
{public}
Processes:
{processes}

Pid file: {options.pid_file}
Reload the gateway (edit {options.config_path.name} first, or not; open chats stay):
  {reload_command(options)}

{trust_instructions(certs.ca, url=https)}
Press Ctrl-C to stop.
"""
