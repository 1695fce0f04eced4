"""The files a running gateway keeps beside its pid file.

- the pid file: the master's pid;
- `<name>.state.json`: what the master is running (config path and
  overrides, generation, workers, the outcome of the last reload), read by
  `appgw status` and `appgw reload`;
- `<name>.health.json`: the latest health snapshot, read by `appgw health`;
- `<name>.metrics.json`: the workers' counters, summed, read by `appgw metrics`;
- `<name>.inputs.json`: new `--parameters`/`--reference`/... from `appgw reload`,
  read (and removed) by the master on that reload.

Each is replaced atomically (write, then rename), so a reader never sees
half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# `appgw demo` keeps its state (and pid file) in this directory of the
# current directory; the control commands look there when nothing runs on
# the default pid file.
DEMO_DIRECTORY = ".appgw-demo"
DEMO_PID_FILE = os.path.join(DEMO_DIRECTORY, "appgw.pid")


def default_pid_file() -> str:
    if os.geteuid() == 0:
        return "/run/appgw.pid"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "appgw.pid")
    return os.path.join(tempfile.gettempdir(), f"appgw-{os.getuid()}.pid")


def sibling(pid_file: str, suffix: str) -> str:
    path = Path(pid_file)
    stem = path.name[: -len(".pid")] if path.name.endswith(".pid") else path.name
    return str(path.with_name(stem + suffix))


def state_file(pid_file: str) -> str:
    return sibling(pid_file, ".state.json")


def health_file(pid_file: str) -> str:
    return sibling(pid_file, ".health.json")


def inputs_file(pid_file: str) -> str:
    """Where `appgw reload --parameters ...` leaves the inputs for the master."""
    return sibling(pid_file, ".inputs.json")


def metrics_file(pid_file: str) -> str:
    return sibling(pid_file, ".metrics.json")


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".appgw-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def write_json(path: str, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_pid(pid_file: str) -> int | None:
    """The pid in a pid file, if that process is alive."""
    try:
        with open(pid_file, encoding="ascii") as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
