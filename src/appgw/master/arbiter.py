"""The master: a plain synchronous loop that owns sockets and children.

The master binds the listening sockets, forks the prober and the workers,
and then only waits: on its signal wakeup pipe and on its children's
channels, with a short timeout. Signal handlers just queue the signal
number; the loop dispatches them (signals.py) to the public verbs below:
reload, stop, reopen_logs, add_worker, remove_worker, upgrade. Each pass
of the loop then reaps children that exited, reads what children said
(ipc's Ready, Heartbeat, Health), and makes the set of children match the
plan (generations.py): start missing workers, retire old or extra ones,
replace the dead, kill the overdue. What a child's message, a timeout or
its exit means for it, and the back-off of replacements, are the rules of
lifecycle.py; this loop carries them out.

Reload (HUP, or a change of the configuration file with config watch)
loads the configuration again; if it is valid a new generation of workers
and a new prober start, and once every new worker is ready the old
generation drains. The listening sockets never close in between, so no
connection is refused. An invalid configuration leaves everything as it is.

The master never runs trio, and never blocks on a child (bounded outboxes).
"""

from __future__ import annotations

import os
import signal
import sys
import time

from appgw import logs, runfiles, sdnotify
from appgw.config import ConfigError, config_notes
from appgw.config.model import Config
from appgw.ipc import Health
from appgw.master import descriptors, lifecycle, reports, signals
from appgw.master.brood import Brood, Child
from appgw.master.children import kill
from appgw.master.generations import drain_budget, generation_ready, plan, worker_count
from appgw.master.lifecycle import Event, Outcome
from appgw.master.options import RunOptions
from appgw.master.reports import RunFiles, Starter
from appgw.master.sockets import ListeningSocket, SocketSet
from appgw.master.tls_contexts import Bound, SharedSessions, SocketTls
from appgw.master.upgrade import predecessor, start_successor
from appgw.master.watch import ConfigWatch
from appgw.metrics import MasterTotals
from appgw.titles import master_title, set_title

log = logs.log

FAST_STOP_GRACE = 5.0  # seconds children get after QUIT, before KILL


class Arbiter:
    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.config: Config | None = None
        self.generation = 0
        self.configs: dict[int, Config] = {}
        # Each generation's TLS contexts, shared by its workers (tls_contexts.py).
        self.tls: dict[int, dict[Bound, SocketTls]] = {}
        self.sessions = SharedSessions()
        self.children = Brood()
        self.sockets = SocketSet()
        self.signals: signals.SignalQueue | None = None
        # The configuration file; _start_generation adds the files it read.
        self.watch = ConfigWatch(options.config_path)
        self.wanted = 1
        self.stopping: str | None = None
        self.stop_deadline = 0.0
        self.health: Health | None = None
        self.ready_generations: set[int] = set()
        self.reloads = 0
        self.last_reload: dict[str, object] = {}
        self.exit_code = 0
        self.files: RunFiles | None = None
        self.starter = Starter(options.ready_fd)
        self.predecessor: int | None = None
        self.totals = MasterTotals()  # exited workers' counts, reloads (metrics.py)
        self.metrics_written = 0.0
        self.successor: int | None = None  # the new master of a binary upgrade

    # -- the verbs: start, and what signals ask for --------------------------------

    def run(self) -> int:
        self.predecessor = predecessor()
        try:
            config = self.options.load()
        except ConfigError as exc:
            return self._fail(exc.report())
        self.watch.rebase()  # now with the files the configuration read
        logs.setup(config.gateway.error_log, config.gateway.access_log)
        for level, note in config_notes(config):  # its warnings, each rule's silence limit
            log.log(level, "%s", note)
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
        self.options.handoff = runfiles.inputs_file(self.files.pid_file)
        if not self.predecessor:
            runfiles.remove(self.options.handoff)  # left by a reload of an earlier run
        self.signals = signals.SignalQueue()
        snapshot = self.files.read("health") if self.predecessor else None
        if isinstance(snapshot, dict):  # a binary upgrade: the old master's last health
            self.health = Health(snapshot)
        try:
            contexts = self.sessions.contexts(config, {})
        except ValueError as exc:
            self.sockets.close()
            return self._fail(str(exc))
        self.wanted = worker_count(config)
        self._start_generation(config, contexts)
        listening = self.sockets.for_config(config)
        log.info("%s", reports.start_line(config, self.wanted, listening, self.watching))
        try:
            self._loop()
        finally:
            self._cleanup()
        return self.exit_code

    def reload(self) -> None:
        """Read the configuration again; start a new generation if it is valid."""
        if self.stopping:
            return
        self.reloads += 1
        sdnotify.notify(
            f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )
        log.info("reloading %s", self.options.config_path)
        self.watch.rebase()
        try:
            config = self.options.load()
        except ConfigError as exc:
            log.error("reload refused, still serving the previous configuration:\n%s", exc.report())
            self._reload_result(False, exc.errors)
            return
        errors = self.sockets.ensure(config)
        contexts: dict[Bound, SocketTls] = {}
        if not errors:
            try:  # a certificate or key that does not load refuses the reload
                contexts = self.sessions.contexts(config, self.tls.get(self.generation, {}))
            except ValueError as exc:
                errors = [str(exc)]
        if errors:
            for error in errors:
                log.error("reload refused, still serving the previous configuration: %s", error)
            self._reload_result(False, errors)
            return
        for level, note in config_notes(config):  # its warnings, each rule's silence limit
            log.log(level, "%s", note)
        if self.options.workers is None:
            self.wanted = worker_count(config)
        self._start_generation(config, contexts)

    def stop(self, how: str) -> None:
        """Stop "graceful" (drain, TERM) or "fast" (QUIT); a fast stop is never slowed."""
        if self.stopping == "fast" and how == "graceful":
            return
        self.stopping = how
        self._write_state()  # the admin listener's /healthz answers 503 from here on
        budget = drain_budget(self.configs.values()) if how == "graceful" else FAST_STOP_GRACE
        now = time.monotonic()
        self.stop_deadline = now + budget
        if not self.successor:
            # (After a binary upgrade the service goes on under the new master.)
            sdnotify.notify("STOPPING=1")
        event = Event.RETIRE if how == "graceful" else Event.ABANDON
        self.children.apply(event, now)
        # Nobody will accept any more: let new connections be refused at
        # once instead of waiting in the backlog (workers close their copies
        # as they drain).
        self.sockets.close()

    def reopen_logs(self) -> None:
        logs.reopen()
        for child in self.children:
            kill(child.pid, signal.SIGUSR1)

    def add_worker(self) -> None:
        self.wanted += 1
        log.info("TTIN: %d worker(s)", self.wanted)
        self._write_state()

    def remove_worker(self) -> None:
        self.wanted = max(1, self.wanted - 1)
        log.info("TTOU: %d worker(s)", self.wanted)
        self._write_state()

    def upgrade(self) -> None:
        """Binary upgrade: start a new master on the same sockets (upgrade.py)."""
        if not self.stopping:
            self.successor = start_successor(self.sockets) or self.successor

    @property
    def watching(self) -> bool:
        """Config watch: --watch, or gateway.watch in the current configuration."""
        return self.options.watch or (self.config is not None and self.config.gateway.watch)

    # -- start and stop --------------------------------------------------------

    def _fail(self, message: str) -> int:
        print(f"appgw: {message}", file=sys.stderr, flush=True)
        self.starter.tell(f"error: {message}")
        return 1

    def _cleanup(self) -> None:
        self.children.kill_all(signal.SIGKILL)
        self.sockets.close()
        if self.files is not None:
            self.files.remove()
        if self.signals is not None:
            self.signals.close()
        log.info("appgw master %d: exit %d", os.getpid(), self.exit_code)

    # -- the loop --------------------------------------------------------------

    def _loop(self) -> None:
        assert self.signals is not None
        while True:
            for signum in self.signals.take():
                signals.dispatch(self, signum)
            self._reap()
            if self.stopping:
                if not self.children:
                    return
                now = time.monotonic()
                if now >= self.stop_deadline:
                    self.children.kill_all_overdue(now)
                    self.stop_deadline = now + FAST_STOP_GRACE
                self._wait(0.2)
                continue
            self._maintain()
            if self.watching and self.watch.poll(time.monotonic()):
                changed = [
                    self.options.config_path if p == self.watch.path else p
                    for p in self.watch.changed
                ]
                log.info("%s changed", ", ".join(changed))
                self.reload()
            self._write_metrics()
            self._wait(self._until_next_due())

    def _until_next_due(self) -> float:
        """How long the loop may sleep: a second, less when a spawn or a look is due."""
        now = time.monotonic()
        due = [1.0, self.watch.due_in(now) if self.watching else 1.0]
        spawn = self.children.next_spawn_in(now)
        return min(due if spawn is None else [*due, spawn]) + 0.01

    def _wait(self, timeout: float) -> None:
        assert self.signals is not None
        woken, health = self.children.wait(timeout, self.signals.fileno())
        if woken:
            self.signals.clear()
        for child, message in health:
            if child.kind == "prober" and child.generation == self.generation:
                self._publish_health(message)

    def _publish_health(self, message: Health) -> None:
        self.health = message
        self.children.publish(message, self.generation)
        if self.files is not None:
            self.files.write("health", message.snapshot)

    # -- children ----------------------------------------------------------------

    def _start_generation(self, config: Config, contexts: dict[Bound, SocketTls]) -> None:
        descriptors.check(config, start=not self.generation)
        self.watch.follow(config.files)
        self.generation += 1
        self.config = config
        self.configs[self.generation] = config
        self.tls[self.generation] = contexts
        self.children.reset_backoff()
        self._write_state()

    def _close_in_child(self, sockets: list[ListeningSocket]) -> list[int]:
        """The master's fds a new child must not hold, besides other children's channels."""
        fds = self.signals.fds() if self.signals is not None else []
        fds += [] if self.starter.fd is None else [self.starter.fd]
        return fds + self.sockets.fds_except(sockets)

    def _reap(self) -> None:
        def wanted(child: Child) -> bool:
            return not self.stopping and child.generation == self.generation

        for child, outcome in self.children.reap(time.monotonic(), wanted):
            if child.kind == "worker":
                self.totals.worker_exited(child.metrics)
            # (Once for a generation: its other workers fail alike.)
            failed = outcome is Outcome.BOOT_FAILED and child.generation == self.generation
            if failed and not self.stopping:
                self._boot_failed()

    def _boot_failed(self) -> None:
        if self.generation in self.ready_generations or self.generation == 1:
            log.error("workers cannot boot; stopping")
            self.exit_code = lifecycle.BOOT_ERROR
            self.starter.tell("error: workers cannot boot (see the log)")
            self.stop("fast")
            return
        # A reloaded generation that cannot boot: keep the old one serving.
        failed = self.generation
        log.error("reload to generation %d failed: workers cannot boot", failed)
        failing = [c for c in self.children if c.generation == failed]
        self.children.apply(Event.ABANDON, time.monotonic(), failing)
        self.generation -= 1
        self.config = self.configs[self.generation]
        self.watch.follow(self.config.files)
        self.configs.pop(failed, None)
        self.tls.pop(failed, None)
        self._reload_result(False, ["workers of the new configuration cannot boot"])

    def _maintain(self) -> None:
        now = time.monotonic()
        workers = self.children.of_kind("worker")
        states = [c.worker_state() for c in workers]
        current_plan = plan(states, self.generation, self.wanted)
        for pid in current_plan.retire:
            child = self.children[pid]
            log.info("retiring worker %d (generation %d)", pid, child.generation)
            child.apply(Event.RETIRE, now)
        config = self.config
        assert config is not None
        if current_plan.start and self.children.may_spawn("worker", now):
            listening = self.sockets.for_config(config)
            close = self._close_in_child(listening)
            for _ in range(current_plan.start):
                self.children.spawn_worker(
                    config,
                    self.generation,
                    listening,
                    close,
                    self.health,
                    now,
                    self.tls[self.generation],
                )
        probers = self.children.of_kind("prober")
        if not any(p.generation == self.generation for p in probers):
            if self.children.may_spawn("prober", now):
                close = self._close_in_child([])
                self.children.spawn_prober(config, self.generation, close, self.health, now)

        def stall_of(child: Child) -> float | None:
            gateway = (self.configs.get(child.generation) or config).gateway
            return gateway.stall_timeout if child.kind == "worker" else None

        self.children.kill_overdue(now, stall_of)
        if self.generation not in self.ready_generations and generation_ready(
            states, self.generation, self.wanted
        ):
            self._generation_ready()
        if len(self.configs) > 1 and not any(c.generation < self.generation for c in self.children):
            for old in [g for g in self.configs if g < self.generation]:
                self.configs.pop(old)
                self.tls.pop(old, None)

    def _generation_ready(self) -> None:
        self.ready_generations.add(self.generation)
        # The old generation is being retired and will not be fallen back to:
        # a listener the new configuration dropped stops accepting now (its
        # draining workers have closed their own references already).
        self.sockets.retire_unused([self.configs[self.generation]])
        old = [c for c in self.children.of_kind("prober") if c.generation < self.generation]
        self.children.apply(Event.RETIRE, time.monotonic(), old)
        if self.generation == 1:
            reports.tell_ready(self.starter, self.wanted, self.predecessor)
        else:
            log.info("reload complete: generation %d ready", self.generation)
            self._reload_result(True, [])
        self._write_state()

    def _reload_result(self, ok: bool, errors: list[str]) -> None:
        self.last_reload = {"seq": self.reloads, "ok": ok, "errors": errors, "time": time.time()}
        sdnotify.notify("READY=1")
        self.totals.reload(ok)
        self._write_state()

    def _write_metrics(self) -> None:
        """The workers' counters summed, for `appgw metrics` (once a second)."""
        now = time.monotonic()
        if self.files is None or now - self.metrics_written < 1.0:
            return
        self.metrics_written = now
        workers = self.children.of_kind("worker")
        self.files.write("metrics", reports.metrics_document(self.totals, workers, self.generation))

    def _write_state(self) -> None:
        set_title(master_title(self.generation, self.options.config_path, bool(self.stopping)))
        if self.files is None or self.config is None:
            return
        listening = self.sockets.for_config(self.config)
        self.files.write("state", reports.state_document(self, listening))
