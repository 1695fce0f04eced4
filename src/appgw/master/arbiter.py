"""The master: a plain synchronous loop that owns sockets and children.

The master binds the listening sockets, forks the prober and the workers,
and then only waits: on its signal wakeup pipe and on its children's
channels, with a short timeout. Signal handlers just queue the signal
number; the loop dispatches them to handle_<name> methods. Each pass of the
loop then reaps children that exited, reads what children said (ready,
heartbeat, health), and makes the set of children match the plan
(generations.py): start missing workers, retire old or extra ones,
replace the dead (with a back-off when they die young), kill the stalled.

Reload (HUP) loads the configuration again; if it is valid a new
generation of workers and a new prober start, and once every new worker is
ready the old generation drains. The listening sockets never close in
between, so no connection is refused. An invalid configuration leaves
everything as it is.

The master never runs trio, and never blocks on a child: every write to a
channel is non-blocking with a bounded outbox.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

from appgw import logs, runfiles, sdnotify
from appgw.config import ConfigError, load
from appgw.config.model import Config
from appgw.config.overrides import apply
from appgw.ipc import MasterChannel
from appgw.master import signals
from appgw.master.children import BOOT_ERROR, kill, prober_body, reap, spawn, worker_body
from appgw.master.generations import WorkerState, generation_ready, plan, worker_count
from appgw.master.reports import RunFiles
from appgw.master.sockets import ListeningSocket, SocketSet
from appgw.metrics import MasterTotals

log = logs.log

BOOT_TIMEOUT = 30.0  # seconds a new worker may take to report ready
YOUNG = 5.0  # a worker that dies younger than this backs off its replacement
MAX_BACKOFF = 30.0

SIGNAL_NAMES: dict[int, str] = {
    signal.SIGHUP: "hup",
    signal.SIGTERM: "term",
    signal.SIGINT: "int",
    signal.SIGQUIT: "quit",
    signal.SIGUSR1: "usr1",
    signal.SIGUSR2: "usr2",
    signal.SIGTTIN: "ttin",
    signal.SIGTTOU: "ttou",
    signal.SIGCHLD: "chld",
}


@attrs.define
class RunOptions:
    config_path: str
    workers: int | None = None
    pid_file: str | None = None
    bind: str | None = None
    ports: dict[int, int] = attrs.Factory(dict)
    ready_fd: int | None = None
    admin: str | None = None  # --admin ADDR:PORT
    access_log: str | None = None  # --access-log PATH

    def load(self) -> Config:
        config = load(self.config_path)
        return apply(
            config,
            bind=self.bind,
            ports=self.ports,
            workers=self.workers,
            pid_file=self.pid_file,
            admin=self.admin,
            access_log=self.access_log,
        )


@attrs.define(eq=False)
class Child:
    pid: int
    kind: str  # "worker" | "prober"
    generation: int
    channel: MasterChannel
    started: float
    ready: bool = False
    retiring: bool = False
    last_beat: float = 0.0
    metrics: dict[str, Any] = attrs.Factory(dict)  # a worker's last heartbeat (metrics.py)


class Arbiter:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.config: Config | None = None
        self.generation = 0
        self.configs: dict[int, Config] = {}
        self.children: dict[int, Child] = {}
        self.sockets = SocketSet()
        self.pending_signals: list[int] = []
        self.wanted = 1
        self.stopping: str | None = None
        self.stop_deadline = 0.0
        self.backoff = 0.0
        self.next_spawn = 0.0
        self.prober_backoff = 0.0
        self.next_prober = 0.0
        self.health: dict[str, object] | None = None
        self.ready_generations: set[int] = set()
        self.reloads = 0
        self.last_reload: dict[str, object] = {}
        self.exit_code = 0
        self.files: RunFiles | None = None
        self._wakeup_r = -1
        self._wakeup_w = -1
        self.predecessor: int | None = None
        self.totals = MasterTotals()  # exited workers' counts, reloads (metrics.py)
        self.metrics_written = 0.0
        self.successor: int | None = None  # the new master of a binary upgrade

    # -- start and stop --------------------------------------------------------

    def run(self) -> int:
        from appgw.master.upgrade import predecessor

        self.predecessor = predecessor()
        try:
            config = self.options.load()
        except ConfigError as exc:
            return self._fail(exc.report())
        logs.setup(config.gateway.error_log, config.gateway.access_log)
        for warning in config.warnings:
            log.warning("%s: %s", config.source, warning)
        if (config.gateway.user or config.gateway.group) and os.geteuid() != 0:
            log.warning("gateway.user/group ignored: not running as root")
        errors = self.sockets.ensure(config)
        if errors:
            self.sockets.close()
            return self._fail("\n".join(errors))
        self.files = RunFiles(config.gateway.pid_file or runfiles.default_pid_file())
        problem = self.files.claim(self.predecessor)
        if problem:
            self.sockets.close()
            return self._fail(problem)
        self._install_signals()
        if self.predecessor:
            self._adopt_health()
        self.wanted = worker_count(config)
        self._start_generation(config)
        log.info(
            "appgw master %d: %s, %d worker(s), listening on %s",
            os.getpid(),
            config.source,
            self.wanted,
            ", ".join(s.url for s in self.sockets.for_config(config)),
        )
        try:
            self._loop()
        finally:
            self._cleanup()
        return self.exit_code

    def _fail(self, message: str) -> int:
        print(f"appgw: {message}", file=sys.stderr, flush=True)
        self._tell_starter(f"error: {message}")
        return 1

    def _tell_starter(self, line: str) -> None:
        fd = self.options.ready_fd
        if fd is None:
            return
        self.options.ready_fd = None
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode())
        except OSError:
            pass
        finally:
            os.close(fd)

    def _cleanup(self) -> None:
        for child in list(self.children.values()):
            kill(child.pid, signal.SIGKILL)
            child.channel.close()
        reap()
        self.sockets.close()
        if self.files is not None:
            self.files.remove()
        signal.set_wakeup_fd(-1)
        for fd in (self._wakeup_r, self._wakeup_w):
            if fd >= 0:
                os.close(fd)
        log.info("appgw master %d: exit %d", os.getpid(), self.exit_code)

    def _install_signals(self) -> None:
        self._wakeup_r, self._wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        for signum in SIGNAL_NAMES:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.pending_signals.append(signum)

    # -- the loop --------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            while self.pending_signals:
                signum = self.pending_signals.pop(0)
                handler: Callable[[Arbiter], None] = getattr(
                    signals, f"handle_{SIGNAL_NAMES[signum]}"
                )
                handler(self)
            self._reap()
            if self.stopping:
                if not self.children:
                    return
                if time.monotonic() >= self.stop_deadline:
                    for child in self.children.values():
                        log.warning("%s %d did not stop in time; killing", child.kind, child.pid)
                        kill(child.pid, signal.SIGKILL)
                    self.stop_deadline = time.monotonic() + 5
                self._wait(0.2)
                continue
            self._maintain()
            self._write_metrics()
            self._wait(self._until_next_spawn())

    def _until_next_spawn(self) -> float:
        """How long the loop may sleep: a second, less when a spawn is due sooner."""
        now = time.monotonic()
        due = [t - now for t in (self.next_spawn, self.next_prober) if t > now]
        return min([1.0, *due]) + 0.01

    def _wait(self, timeout: float) -> None:
        channels = {
            c.channel.fileno(): c.channel for c in self.children.values() if not c.channel.closed
        }
        writers = [fd for fd, channel in channels.items() if channel.wants_write]
        try:
            readable, writable, _ = select.select([self._wakeup_r, *channels], writers, [], timeout)
        except InterruptedError:
            return
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.EINTR):
                return
            raise
        for item in readable:
            if item == self._wakeup_r:
                try:
                    while os.read(self._wakeup_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            self._receive(channels[item])
        for fd in writable:
            channels[fd].flush()

    def _receive(self, channel: MasterChannel) -> None:
        child = next((c for c in self.children.values() if c.channel is channel), None)
        messages = channel.receive()
        if child is None or messages is None:
            return
        now = time.monotonic()
        for message in messages:
            kind = message.get("type")
            if kind == "heartbeat":
                child.last_beat = now
                if isinstance(message.get("metrics"), dict):
                    child.metrics = message["metrics"]
            elif kind == "ready":
                child.ready = True
                child.last_beat = now
            elif kind == "health" and child.kind == "prober":
                if child.generation == self.generation:
                    self._publish_health(message)
            elif kind == "boot-error":
                log.error("%s %d: %s", child.kind, child.pid, message.get("error"))

    def _adopt_health(self) -> None:
        """After a binary upgrade: start from the old master's last health."""
        assert self.files is not None
        snapshot = self.files.read("health")
        if isinstance(snapshot, dict):
            self.health = {"type": "health", "snapshot": snapshot}

    def _publish_health(self, message: dict[str, object]) -> None:
        self.health = message
        for child in self.children.values():
            if child.kind == "worker" and child.generation == self.generation:
                child.channel.send(message)
        if self.files is not None:
            self.files.write("health", message.get("snapshot"))

    # -- children ----------------------------------------------------------------

    def _start_generation(self, config: Config) -> None:
        self.generation += 1
        self.config = config
        self.configs[self.generation] = config
        self.backoff = 0.0
        self.next_spawn = 0.0
        self.prober_backoff = 0.0
        self.next_prober = 0.0
        self._write_state()

    def _close_in_child(self, sockets: list[ListeningSocket]) -> list[int]:
        keep = {s.sock.fileno() for s in sockets}
        fds = [c.channel.fileno() for c in self.children.values() if not c.channel.closed]
        fds += [self._wakeup_r, self._wakeup_w]
        if self.options.ready_fd is not None:
            fds.append(self.options.ready_fd)
        fds += [
            s.sock.fileno() for s in self.sockets.sockets.values() if s.sock.fileno() not in keep
        ]
        return fds

    def _spawn_worker(self) -> None:
        config = self.config
        assert config is not None
        listening = self.sockets.for_config(config)
        body = worker_body(config, listening, self.generation)
        pid, channel = spawn("worker", body, self._close_in_child(listening))
        now = time.monotonic()
        self.children[pid] = Child(pid, "worker", self.generation, channel, now, last_beat=now)
        if self.health is not None:
            channel.send(self.health)
        log.info("worker %d started (generation %d)", pid, self.generation)

    def _spawn_prober(self) -> None:
        assert self.config is not None
        previous = self.health.get("snapshot") if self.health else None
        body = prober_body(self.config, previous)
        pid, channel = spawn("prober", body, self._close_in_child([]))
        now = time.monotonic()
        self.children[pid] = Child(pid, "prober", self.generation, channel, now, last_beat=now)
        log.info("prober %d started (generation %d)", pid, self.generation)

    def _reap(self) -> None:
        now = time.monotonic()
        for pid, code in reap():
            child = self.children.pop(pid, None)
            if child is None:
                continue
            child.channel.close()
            if child.kind == "worker":
                self.totals.worker_exited(child.metrics)
            if self.stopping or child.retiring or child.generation < self.generation:
                log.info("%s %d exited (%s)", child.kind, pid, _describe(code))
                continue
            log.warning("%s %d died unexpectedly (%s)", child.kind, pid, _describe(code))
            young = now - child.started < YOUNG
            if child.kind == "prober":
                self.prober_backoff = (
                    min(max(0.5, self.prober_backoff * 2), MAX_BACKOFF) if young else 0.0
                )
                self.next_prober = now + self.prober_backoff
                continue
            if code == BOOT_ERROR and not child.ready:
                self._boot_failed()
                continue
            if young or not child.ready:
                self.backoff = min(max(0.5, self.backoff * 2), MAX_BACKOFF)
                self.next_spawn = now + self.backoff
                log.warning("replacing it in %.1fs", self.backoff)
            else:
                self.backoff = 0.0

    def _boot_failed(self) -> None:
        if self.generation in self.ready_generations or self.generation == 1:
            log.error("workers cannot boot; stopping")
            self.exit_code = BOOT_ERROR
            self._tell_starter("error: workers cannot boot (see the log)")
            signals.begin_stop(self, "fast")
            return
        # A reloaded generation that cannot boot: keep the old one serving.
        failed = self.generation
        log.error("reload to generation %d failed: workers cannot boot", failed)
        for child in list(self.children.values()):
            if child.generation == failed:
                child.retiring = True
                kill(child.pid, signal.SIGQUIT)
        self.generation -= 1
        self.config = self.configs[self.generation]
        self.configs.pop(failed, None)
        self._reload_result(False, ["workers of the new configuration cannot boot"])

    def _maintain(self) -> None:
        now = time.monotonic()
        workers = [c for c in self.children.values() if c.kind == "worker"]
        states = [WorkerState(c.pid, c.generation, c.ready, c.retiring, c.started) for c in workers]
        current_plan = plan(states, self.generation, self.wanted)
        for pid in current_plan.retire:
            child = self.children[pid]
            child.retiring = True
            log.info("retiring worker %d (generation %d)", pid, child.generation)
            kill(pid, signal.SIGTERM)
        if current_plan.start and now >= self.next_spawn:
            for _ in range(current_plan.start):
                self._spawn_worker()
        probers = [c for c in self.children.values() if c.kind == "prober"]
        if not any(p.generation == self.generation for p in probers) and now >= self.next_prober:
            self._spawn_prober()
        for child in workers:
            if child.retiring:
                continue
            config = self.configs.get(child.generation) or self.config
            assert config is not None
            stall = config.gateway.stall_timeout
            if child.ready and now - child.last_beat > stall:
                log.error(
                    "worker %d stalled (no heartbeat for %.0fs); replacing it",
                    child.pid,
                    now - child.last_beat,
                )
                child.retiring = True
                kill(child.pid, signal.SIGKILL)
            elif not child.ready and now - child.started > BOOT_TIMEOUT:
                log.error(
                    "worker %d did not become ready in %.0fs; replacing it", child.pid, BOOT_TIMEOUT
                )
                kill(child.pid, signal.SIGKILL)
        if self.generation not in self.ready_generations and generation_ready(
            states, self.generation, self.wanted
        ):
            self._generation_ready()
        if len(self.configs) > 1 and not any(
            c.generation < self.generation for c in self.children.values()
        ):
            for old in [g for g in self.configs if g < self.generation]:
                self.configs.pop(old)

    def _generation_ready(self) -> None:
        self.ready_generations.add(self.generation)
        # The old generation is being retired and will not be fallen back to:
        # a listener the new configuration dropped stops accepting now (its
        # draining workers have closed their own references already).
        self.sockets.retire_unused([self.configs[self.generation]])
        for child in self.children.values():
            if child.kind == "prober" and child.generation < self.generation:
                child.retiring = True
                kill(child.pid, signal.SIGTERM)
        if self.generation == 1:
            log.info("gateway ready: %d worker(s), pid %d", self.wanted, os.getpid())
            if self.predecessor:
                log.info("binary upgrade: telling the old master %d to drain", self.predecessor)
                kill(self.predecessor, signal.SIGTERM)
            self._tell_starter("ready")
            sdnotify.notify(
                f"READY=1\nSTATUS=serving with {self.wanted} worker(s)\nMAINPID={os.getpid()}"
            )
        else:
            log.info("reload complete: generation %d ready", self.generation)
            self._reload_result(True, [])
            sdnotify.notify("READY=1")
        self._write_state()

    def _reload_result(self, ok: bool, errors: list[str]) -> None:
        self.last_reload = {"seq": self.reloads, "ok": ok, "errors": errors, "time": time.time()}
        self.totals.reload(ok)
        self._write_state()

    def _write_metrics(self) -> None:
        """The workers' counters summed, for `appgw metrics` (once a second)."""
        now = time.monotonic()
        if self.files is None or now - self.metrics_written < 1.0:
            return
        self.metrics_written = now
        workers = [c for c in self.children.values() if c.kind == "worker"]
        data = self.totals.document(
            [c.metrics for c in workers],
            generation=self.generation,
            workers=sum(1 for c in workers if not c.retiring),
            draining=sum(1 for c in workers if c.retiring),
        )
        self.files.write("metrics", data)

    def _write_state(self) -> None:
        if self.files is None or self.config is None:
            return
        state = {
            "pid": os.getpid(),
            "config": os.path.abspath(self.options.config_path),
            "bind": self.options.bind,
            "ports": {str(k): v for k, v in self.options.ports.items()},
            "generation": self.generation,
            "ready": self.generation in self.ready_generations,
            "stopping": self.stopping,
            "workers": self.wanted,
            "reloads": self.reloads,
            "last_reload": self.last_reload,
            "listeners": [s.url for s in self.sockets.for_config(self.config)],
        }
        self.files.write("state", state)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
