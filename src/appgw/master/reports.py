"""What the master tells the commands that started it or look at it.

The `start` command waits on a pipe for one line: "ready" or the error
that stopped the gateway (Starter).

The master claims the pid file at start (refusing when another live gateway
holds it, except the master it replaces in a binary upgrade), keeps the
state, health and metrics files current, and removes them all when it
exits, unless a successor has taken the pid file over.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Protocol

from appgw import logs, runfiles, sdnotify
from appgw.config.model import Config
from appgw.master.brood import Child
from appgw.master.children import kill
from appgw.master.options import RunOptions
from appgw.master.sockets import ListeningSocket
from appgw.metrics import MasterTotals

log = logs.log

_FILES = {
    "state": runfiles.state_file,
    "health": runfiles.health_file,
    "metrics": runfiles.metrics_file,
}


class RunFiles:
    def __init__(self, pid_file: str) -> None:
        self.pid_file = pid_file

    def claim(self, predecessor: int | None) -> str | None:
        """Write our pid; the reason why not, if another gateway holds the file."""
        other = runfiles.read_pid(self.pid_file)
        if other is not None and other not in (os.getpid(), predecessor):
            return f"another gateway (pid {other}) runs with pid file {self.pid_file}"
        try:
            runfiles.write_atomic(self.pid_file, f"{os.getpid()}\n")
        except OSError as exc:
            return f"cannot write pid file {self.pid_file}: {exc}"
        return None

    def write(self, kind: str, data: Any) -> None:
        """Replace the state, health or metrics file; a failure is only logged."""
        try:
            runfiles.write_json(_FILES[kind](self.pid_file), data)
        except OSError as exc:
            log.warning("cannot write the %s file: %s", kind, exc)

    def read(self, kind: str) -> Any:
        try:
            return runfiles.read_json(_FILES[kind](self.pid_file))
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Remove every file, if the pid file is still ours."""
        if runfiles.read_pid(self.pid_file) != os.getpid():
            return
        runfiles.remove(self.pid_file)
        for path_of in _FILES.values():
            runfiles.remove(path_of(self.pid_file))


class Starter:
    """The `start` command's ready pipe: told "ready" or "error: ..." once."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def tell(self, line: str) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
        except OSError:
            pass
        finally:
            os.close(fd)


class _Master(Protocol):
    """What the state file tells of the master (arbiter.Arbiter)."""

    options: RunOptions
    generation: int
    ready_generations: set[int]
    stopping: str | None
    wanted: int
    reloads: int
    last_reload: dict[str, object]

    @property
    def watching(self) -> bool: ...


def state_document(master: _Master, listening: list[ListeningSocket]) -> dict[str, Any]:
    """The state file: what `appgw status` shows of the master."""
    options = master.options
    return {
        "pid": os.getpid(),
        "config": os.path.abspath(options.config_path),
        "bind": options.bind,
        "ports": {str(k): v for k, v in options.ports.items()},
        "generation": master.generation,
        "ready": master.generation in master.ready_generations,
        "stopping": master.stopping,
        "workers": master.wanted,
        "reloads": master.reloads,
        "last_reload": master.last_reload,
        "watch": master.watching,
        "listeners": [s.url for s in listening],
    }


def metrics_document(totals: MasterTotals, workers: list[Child], generation: int) -> dict[str, Any]:
    """The metrics file: the workers' counters summed, for `appgw metrics`."""
    data = totals.document(
        [c.metrics for c in workers],
        generation=generation,
        workers=sum(1 for c in workers if c.life.live),
        draining=sum(1 for c in workers if not c.life.live),
    )
    # Servers the workers pass over after failed connects (worker/policy/passive.py).
    data["passive"] = [s for c in workers for s in c.metrics.get("passive_servers", ())]
    return data


def start_line(
    config: Config, workers: int, listening: list[ListeningSocket], watching: bool
) -> str:
    """The master's line once it serves."""
    urls = ", ".join(s.url for s in listening)
    watch = "; watching the configuration file" if watching else ""
    pid = os.getpid()
    return f"appgw master {pid}: {config.source}, {workers} worker(s), listening on {urls}{watch}"


def tell_ready(starter: Starter, workers: int, predecessor: int | None) -> None:
    """The first generation serves: the log, `appgw start`, systemd, and a
    binary upgrade's old master (it drains now)."""
    log.info("gateway ready: %d worker(s), pid %d", workers, os.getpid())
    if predecessor:
        log.info("binary upgrade: telling the old master %d to drain", predecessor)
        kill(predecessor, signal.SIGTERM)
    starter.tell("ready")
    sdnotify.notify(f"READY=1\nSTATUS=serving with {workers} worker(s)\nMAINPID={os.getpid()}")
