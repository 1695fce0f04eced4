"""The `appgw` command: argument parsing and the subcommands.

No gateway logic lives here: each subcommand loads what it needs and hands
over to the master (run), signals a running master through its pid file
(stop, reload, status), or formats what the master wrote beside its pid
file (status, health).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from appgw import __version__, control, runfiles
from appgw.config import Config, ConfigError, Inputs, load
from appgw.config.overrides import apply, parse_port_map
from appgw.config.silence import silence_limits
from appgw.config.validate_tls import effective_policy

DEFAULT_CONFIG = "conf/appgw.toml"


def _gateway_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help="configuration file (TOML, ARM template or az show JSON)",
    )
    parser.add_argument(
        "--workers", type=int, help="worker processes (default: gateway.workers, or one per CPU)"
    )
    parser.add_argument(
        "--pid-file", help="pid file (default: gateway.pid_file, or /run/appgw.pid as root)"
    )
    parser.add_argument(
        "--bind",
        metavar="ADDR",
        help="bind every listener to ADDR instead of its configured address",
    )
    parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="FRONT=LOCAL",
        help="serve configured frontend port FRONT on local port LOCAL (repeatable)",
    )
    parser.add_argument(
        "--admin",
        metavar="ADDR:PORT",
        help="serve /metrics, /healthz, /backend-health and the status page here",
    )
    parser.add_argument(
        "--access-log",
        metavar="PATH",
        help="write the access log (JSON lines) to PATH, '-' for stdout",
    )
    _input_options(parser)


def _input_options(parser: argparse.ArgumentParser) -> None:
    """What an ARM template or az show JSON takes besides the file (see inputs.py)."""
    parser.add_argument(
        "--parameters",
        "-p",
        action="extend",
        nargs="+",
        default=[],
        metavar="PARAMS",
        help="template parameters as az takes them: FILE, @FILE, NAME=VALUE, NAME=@FILE "
        "(repeatable)",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME.PATH=VALUE",
        help="a value that exists only once deployed, for reference() (repeatable)",
    )
    parser.add_argument(
        "--certificate",
        action="append",
        default=[],
        metavar="NAME=FILE[:PASSWORD]",
        help="an sslCertificate the document carries without its private key: PFX, or PEM "
        "with the key (repeatable)",
    )
    parser.add_argument(
        "--connect-to",
        action="append",
        default=[],
        metavar="HOST[:PORT]=HOST[:PORT]",
        help="connect to the second address where the configuration says the first; "
        "Host, SNI and probes keep the configured names (curl's meaning; repeatable)",
    )


def inputs_of(args: argparse.Namespace) -> Inputs:
    """The command line's inputs, with relative files read from here."""
    return Inputs(
        parameters=tuple(args.parameters),
        references=tuple(args.reference),
        certificates=tuple(args.certificate),
        connect_to=tuple(getattr(args, "connect_to", ())),
        base=os.getcwd(),
    )


def _watch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watch",
        action="store_true",
        help="reload when the configuration file changes (also gateway.watch = true)",
    )


def _pid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="find the pid file through this configuration")
    parser.add_argument("--pid-file", help="the running gateway's pid file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appgw", description="An application gateway for HTTP/1.1 and WebSocket."
    )
    parser.add_argument("--version", action="version", version=f"appgw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the gateway in the foreground")
    _gateway_options(run)
    _watch_option(run)
    run.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)

    start = sub.add_parser("start", help="start the gateway in the background")
    _gateway_options(start)
    _watch_option(start)
    start.add_argument(
        "--log-file",
        help="where the master logs (default: gateway.error_log, or beside the pid file)",
    )
    start.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")

    stop = sub.add_parser("stop", help="stop the running gateway (gracefully)")
    _pid_options(stop)
    stop.add_argument("--fast", action="store_true", help="stop at once (QUIT) instead of draining")
    stop.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the exit")

    reload = sub.add_parser("reload", help="reload the configuration with no downtime")
    _pid_options(reload)
    _input_options(reload)
    reload.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the new workers"
    )

    status = sub.add_parser("status", help="is the gateway running, and with what")
    _pid_options(status)

    check = sub.add_parser("check", help="validate a configuration")
    _gateway_options(check)

    health = sub.add_parser("health", help="backend health as the prober sees it")
    _pid_options(health)
    health.add_argument(
        "--json",
        action="store_true",
        help="az network application-gateway show-backend-health shape",
    )

    metrics = sub.add_parser("metrics", help="counters in Prometheus' text format")
    _pid_options(metrics)
    metrics.add_argument("--json", action="store_true", help="the raw totals as JSON")

    certs = sub.add_parser("certs", help="make a local CA and a localhost certificate (trustme)")
    certs.add_argument("directory")

    sub.add_parser("demo", help="the gateway in front of sample backends", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        from appgw.demo.runner import run_demo

        return run_demo(argv[1:])
    args = build_parser().parse_args(argv)
    name = f"cmd_{args.command}"
    handler = globals().get(name) or getattr(control, name)
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `appgw health --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    try:
        ports = parse_port_map(args.port)
    except ValueError as exc:
        raise SystemExit(f"appgw: {exc}") from None
    return {
        "bind": args.bind,
        "ports": ports,
        "workers": args.workers,
        "pid_file": args.pid_file,
        "admin": args.admin,
        "access_log": _absolute(args.access_log),
    }


def _absolute(path: str | None) -> str | None:
    return path if path in (None, "", "-") else os.path.abspath(path)  # type: ignore[type-var]


def cmd_run(args: argparse.Namespace) -> int:
    from appgw.master.arbiter import Arbiter
    from appgw.master.options import RunOptions

    overrides = _overrides(args)
    options = RunOptions(
        config_path=args.config,
        workers=args.workers,
        pid_file=args.pid_file,
        bind=args.bind,
        ports=overrides["ports"],  # type: ignore[arg-type]
        ready_fd=args.ready_fd,
        watch=args.watch,
        admin=args.admin,
        access_log=overrides["access_log"],  # type: ignore[arg-type]
        inputs=inputs_of(args),
    )
    return Arbiter(options).run()


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = apply(load(args.config, inputs_of(args)), **_overrides(args))  # type: ignore[arg-type]
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{args.config}: ok ({len(config.listeners)} listener(s), {len(config.pools)} pool(s), "
        f"{len(config.settings)} setting(s), {len(config.rules)} rule(s))"
    )
    for line in tls_summary(config):
        print(line)
    for limit in silence_limits(config):
        print(f"  {limit.describe()}")
    return 0


def tls_summary(config: Config) -> list[str]:
    """`appgw check`'s lines about each HTTPS listener: its effective TLS
    policy, HTTP/2 when on, and with mutual TLS its client authentication."""
    lines = []
    for name, listener in config.listeners.items():
        if listener.protocol != "https":
            continue
        lines.append(
            f"  listener {name}: TLS policy {effective_policy(config, listener).describe()}"
        )
        if config.gateway.http2.enabled:
            websocket = ", WebSocket over HTTP/2" if config.gateway.http2.websocket else ""
            lines.append(f"  listener {name}: ALPN h2 then http/1.1{websocket}")
        profile = config.ssl_profiles.get(listener.ssl_profile or "")
        if profile is not None and profile.mutual_tls:
            auth = profile.client_auth
            checks = [f"{auth.mode} client certificates"]
            if auth.verify_issuer_dn:
                checks.append("issuer DN checked")
            if auth.verify_revocation == "ocsp":
                checks.append("revocation checked by OCSP")
            lines.append(f"  listener {name}: mutual TLS, " + ", ".join(checks))
    return lines


def cmd_start(args: argparse.Namespace) -> int:
    try:
        config = apply(load(args.config, inputs_of(args)), **_overrides(args))  # type: ignore[arg-type]
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    pid_file = config.gateway.pid_file or runfiles.default_pid_file()
    running = runfiles.read_pid(pid_file)
    if running is not None:
        print(f"appgw: already running (pid {running}, {pid_file})", file=sys.stderr)
        return 1
    log_file = args.log_file or config.gateway.error_log or ""
    if log_file in ("", "-"):
        log_file = runfiles.sibling(pid_file, ".log")
    os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
    read_end, write_end = os.pipe()
    command = [
        sys.executable,
        "-m",
        "appgw",
        "run",
        "-c",
        args.config,
        "--pid-file",
        pid_file,
        "--ready-fd",
        str(write_end),
    ]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    if args.bind:
        command += ["--bind", args.bind]
    for item in args.port:
        command += ["--port", item]
    if args.watch:
        command.append("--watch")
    if args.admin:
        command += ["--admin", args.admin]
    if args.access_log:
        command += ["--access-log", str(_absolute(args.access_log))]
    for flag, items in (
        ("--parameters", args.parameters),
        ("--reference", args.reference),
        ("--certificate", args.certificate),
        ("--connect-to", args.connect_to),
    ):
        for item in items:
            command.append(f"{flag}={item}")
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    answer = _read_line(read_end, args.timeout)
    if answer == "ready":
        state = control.state_of(pid_file)
        listeners = ", ".join(str(item) for item in state.get("listeners", ()))  # type: ignore[attr-defined]
        print(f"appgw started (pid {process.pid}){': ' + listeners if listeners else ''}")
        return 0
    if process.poll() is None and answer is None:
        print(f"appgw: not ready after {args.timeout:g}s; see {log_file}", file=sys.stderr)
        return 1
    print(
        f"appgw: failed to start: {answer or 'the master exited'}; see {log_file}", file=sys.stderr
    )
    return 1


def _read_line(fd: int, timeout: float) -> str | None:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data.decode(errors="replace").strip() or None


def cmd_certs(args: argparse.Namespace) -> int:
    from appgw.certs import cmd_certs as make

    return make(args.directory)
