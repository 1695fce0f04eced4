"""The commands that act on a running gateway: stop, reload, status, health,
metrics.

They find the gateway through its pid file (`--pid-file`, the
configuration's `gateway.pid_file`, or the default), signal the master, and
read what it writes beside the pid file (state, health, metrics). With
neither option, a gateway running on the default pid file comes first, then
one that `appgw demo` runs from the current directory (`.appgw-demo/`), so
the demo's reload works as the README writes it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from appgw import runfiles
from appgw.config import ConfigError, load


def _pid_file(args: argparse.Namespace) -> str:
    """The running gateway's pid file: --pid-file, the configuration's, or the default
    (or the demo's, when only the demo runs).

    The configuration is only read for gateway.pid_file here: a file that no
    longer validates must not keep `stop` or `status` from finding the
    gateway that runs on its previous version.
    """
    if args.pid_file:
        return str(args.pid_file)
    if args.config:
        try:
            pid_file = load(args.config).gateway.pid_file
        except ConfigError:
            pid_file = _raw_pid_file(args.config)
        if pid_file:
            return pid_file
    return _default_or_demo()


def _default_or_demo() -> str:
    """The default pid file, unless no gateway runs there but the demo here does."""
    default = runfiles.default_pid_file()
    if runfiles.read_pid(default) is None and runfiles.read_pid(runfiles.DEMO_PID_FILE):
        return os.path.abspath(runfiles.DEMO_PID_FILE)
    return default


def _raw_pid_file(path: str) -> str | None:
    import tomllib

    try:
        with open(path, "rb") as f:
            value = tomllib.load(f).get("gateway", {}).get("pid_file")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(value, str):
        return None
    return os.path.join(os.path.dirname(os.path.abspath(path)), value)


def state_of(pid_file: str) -> dict[str, object]:
    try:
        state = runfiles.read_json(runfiles.state_file(pid_file))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _running(args: argparse.Namespace) -> tuple[str, int | None]:
    pid_file = _pid_file(args)
    return pid_file, runfiles.read_pid(pid_file)


def cmd_stop(args: argparse.Namespace) -> int:
    pid_file, pid = _running(args)
    if pid is None:
        print(f"appgw: not running ({pid_file})", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGQUIT if args.fast else signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if runfiles.read_pid(pid_file) != pid and not _alive(pid):
            print(f"appgw stopped (pid {pid})")
            return 0
        time.sleep(0.05)
    print(f"appgw: pid {pid} still running after {args.timeout:g}s", file=sys.stderr)
    return 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reload_inputs(args: argparse.Namespace) -> dict[str, object] | None:
    """`reload --parameters ...`: the inputs that replace the running ones."""
    from appgw.config.inputs import Inputs

    inputs = Inputs(
        parameters=tuple(getattr(args, "parameters", ())),
        references=tuple(getattr(args, "reference", ())),
        certificates=tuple(getattr(args, "certificate", ())),
        connect_to=tuple(getattr(args, "connect_to", ())),
        base=os.getcwd(),
    )
    return inputs.to_json() if inputs.given() else None


def cmd_reload(args: argparse.Namespace) -> int:
    pid_file, pid = _running(args)
    if pid is None:
        print(f"appgw: not running ({pid_file})", file=sys.stderr)
        return 1
    before = state_of(pid_file)
    reloads = int(before.get("reloads", 0))  # type: ignore[call-overload]
    inputs = _reload_inputs(args)
    if inputs is not None:  # the master reads them on this reload
        runfiles.write_json(runfiles.inputs_file(pid_file), inputs)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state = state_of(pid_file)
        last = state.get("last_reload") or {}
        if isinstance(last, dict) and int(last.get("seq", 0)) > reloads:
            if last.get("ok"):
                print(f"appgw reloaded (generation {state.get('generation')})")
                return 0
            print(
                "appgw: reload refused; still serving the previous configuration:", file=sys.stderr
            )
            for error in last.get("errors", []):
                print(f"  {error}", file=sys.stderr)
            return 1
        if not _alive(pid):
            print("appgw: the gateway exited during the reload", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print(f"appgw: reload not finished after {args.timeout:g}s", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    pid_file, pid = _running(args)
    if pid is None:
        print(f"appgw is not running ({pid_file})")
        return 3
    state = state_of(pid_file)
    print(f"appgw is running (pid {pid})")
    if state:
        watched = " (watched: reloads when it changes)" if state.get("watch") else ""
        print(f"  config:     {state.get('config')}{watched}")
        print(
            f"  generation: {state.get('generation')}{'' if state.get('ready') else ' (starting)'}"
        )
        print(f"  workers:    {state.get('workers')}")
        for listener in state.get("listeners", []):  # type: ignore[attr-defined]
            print(f"  listening:  {listener}")
        last = state.get("last_reload")
        if isinstance(last, dict) and last:
            outcome = "ok" if last.get("ok") else "refused: " + "; ".join(last.get("errors", []))
            print(f"  last reload: {outcome}")
    return 0


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _run_file(args: argparse.Namespace, path_of: Callable[[str], str], missing: str) -> Any:
    """What the running gateway wrote beside its pid file (health, metrics)."""
    pid_file, pid = _running(args)
    if pid is None:
        print(f"appgw is not running ({pid_file})", file=sys.stderr)
        raise _Exit(3)
    try:
        return runfiles.read_json(path_of(pid_file))
    except (OSError, ValueError):
        print(f"appgw: {missing}", file=sys.stderr)
        raise _Exit(1) from None


def cmd_health(args: argparse.Namespace) -> int:
    import json

    from appgw.prober.report import as_backend_health, format_text

    try:
        snapshot = _run_file(args, runfiles.health_file, "no health results yet")
    except _Exit as exc:
        return exc.code
    try:  # servers passed over after failed connects, from the workers
        passive = runfiles.read_json(runfiles.metrics_file(_pid_file(args))).get("passive")
    except (OSError, ValueError, AttributeError):
        passive = None
    if args.json:
        print(json.dumps(as_backend_health(snapshot, passive=passive), indent=2))
        return 0
    config = None
    state = state_of(_pid_file(args))
    if state.get("config"):
        try:
            config = load(str(state["config"]))
        except ConfigError:
            config = None
    print(format_text(snapshot, config, passive=passive), end="")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    import json

    from appgw.metrics_report import prometheus

    try:
        data = _run_file(args, runfiles.metrics_file, "no metrics yet")
    except _Exit as exc:
        return exc.code
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    try:
        health = runfiles.read_json(runfiles.health_file(_pid_file(args)))
    except (OSError, ValueError):
        health = None
    print(prometheus(data, health), end="")
    return 0
