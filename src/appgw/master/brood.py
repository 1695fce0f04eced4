"""The master's children as it tracks them, and lifecycle.py carried out.

A Child is one forked process: its kind, its generation, its channel and
its life (lifecycle.py), whose signals Child.apply sends. The Brood holds
every live child: it forks new ones (children.py), waits on their channels
and the signal wakeup pipe at once and hands back the messages that
arrived, kills the overdue, and reaps the exited, keeping each kind's
back-off for replacements. Which children to start or retire, and what a
message means, is the arbiter's business.
"""

from __future__ import annotations

import errno
import select
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from appgw import logs
from appgw.config.model import Config
from appgw.ipc import BootFailure, Health, Heartbeat, MasterChannel, Message, Ready
from appgw.master import lifecycle
from appgw.master.children import kill, prober_body, reap, spawn, worker_body
from appgw.master.generations import WorkerState
from appgw.master.lifecycle import Backoff, Event, Life, Outcome, Phase
from appgw.master.sockets import ListeningSocket
from appgw.tls import SocketTls

log = logs.log


@attrs.define(eq=False)
class Child:
    pid: int
    kind: str  # "worker" | "prober"
    generation: int
    channel: MasterChannel
    life: Life
    metrics: dict[str, Any] = attrs.Factory(dict)  # a worker's last heartbeat snapshot

    def apply(self, event: Event, now: float) -> None:
        """Move its life on by `event`, and send it the signal that asks for."""
        step = lifecycle.step(self.life, event, now)
        self.life = step.life
        if step.send is not None:
            kill(self.pid, step.send)

    def worker_state(self) -> WorkerState:
        """What generations.plan needs to know of a worker."""
        ready = self.life.phase is Phase.READY
        return WorkerState(self.pid, self.generation, ready, not self.life.live, self.life.started)


def _rate_limited(config: Config) -> bool:
    """Whether a WAF policy has a rate-limit rule (its counters are shared)."""
    return any(
        r.rule_type == "ratelimitrule" for p in config.waf_policies.values() for r in p.custom_rules
    )


class Brood:
    def __init__(self) -> None:
        self.children: dict[int, Child] = {}
        self.backoff = {"worker": Backoff(), "prober": Backoff()}

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.children.values()))

    def __len__(self) -> int:
        return len(self.children)

    def __getitem__(self, pid: int) -> Child:
        return self.children[pid]

    def __contains__(self, child: Child) -> bool:
        return self.children.get(child.pid) is child

    def of_kind(self, kind: str) -> list[Child]:
        return [c for c in self.children.values() if c.kind == kind]

    def apply(self, event: Event, now: float, children: Iterable[Child] | None = None) -> None:
        for child in list(self.children.values() if children is None else children):
            child.apply(event, now)

    def spawn_worker(
        self,
        config: Config,
        generation: int,
        listening: list[ListeningSocket],
        close_fds: list[int],
        health: Health | None,
        now: float,
        contexts: Mapping[tuple[str, int], SocketTls],
    ) -> Child:
        if _rate_limited(config):
            from appgw.waf import rates

            rates.table()  # made here, before the fork, so that every worker shares it
        body = worker_body(config, listening, generation, contexts)
        pid, channel = spawn("worker", body, close_fds + self._channel_fds())
        child = self.children[pid] = Child(pid, "worker", generation, channel, Life.begin(now))
        if health is not None:
            channel.send(health)
        log.info("worker %d started (generation %d)", pid, generation)
        return child

    def spawn_prober(
        self,
        config: Config,
        generation: int,
        close_fds: list[int],
        health: Health | None,
        now: float,
    ) -> Child:
        body = prober_body(config, health.snapshot if health else None)
        pid, channel = spawn("prober", body, close_fds + self._channel_fds())
        child = self.children[pid] = Child(pid, "prober", generation, channel, Life.begin(now))
        log.info("prober %d started (generation %d)", pid, generation)
        return child

    def _channel_fds(self) -> list[int]:
        """Other children's channels: a new child must not hold them."""
        return [c.channel.fileno() for c in self.children.values() if not c.channel.closed]

    def wait(self, timeout: float, wakeup: int) -> tuple[bool, list[tuple[Child, Health]]]:
        """Wait up to `timeout` for the wakeup fd or a child's channel.

        Ready and Heartbeat messages move their sender's life on (and keep
        a worker's counters); a BootFailure is logged. Returns whether the
        wakeup fd is readable, and the Health messages that arrived with
        their senders. Pending writes are flushed on the way.
        """
        channels = {c.channel.fileno(): c for c in self.children.values() if not c.channel.closed}
        writers = [fd for fd, c in channels.items() if c.channel.wants_write]
        try:
            readable, writable, _ = select.select([wakeup, *channels], writers, [], timeout)
        except InterruptedError:
            return False, []
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.EINTR):
                return False, []
            raise
        now = time.monotonic()
        health: list[tuple[Child, Health]] = []
        for fd in readable:
            if fd != wakeup:
                child = channels[fd]
                for message in child.channel.receive() or ():
                    if isinstance(message, Health):
                        health.append((child, message))
                    else:
                        self._receive(child, message, now)
        for fd in writable:
            channels[fd].channel.flush()
        return wakeup in readable, health

    @staticmethod
    def _receive(child: Child, message: Message, now: float) -> None:
        if isinstance(message, Heartbeat):
            child.apply(Event.BEAT, now)
            child.metrics = dict(message.metrics)
        elif isinstance(message, Ready):
            child.apply(Event.READY, now)
        elif isinstance(message, BootFailure):
            log.error("%s %d: %s", child.kind, child.pid, message.error)

    def publish(self, health: Health, generation: int) -> None:
        """Send a health snapshot to every worker of `generation`."""
        for child in self.children.values():
            if child.kind == "worker" and child.generation == generation:
                child.channel.send(health)

    # -- the back-off, overdue children, exits ------------------------------------

    def reset_backoff(self) -> None:
        self.backoff = {"worker": Backoff(), "prober": Backoff()}

    def may_spawn(self, kind: str, now: float) -> bool:
        return self.backoff[kind].due(now)

    def next_spawn_in(self, now: float) -> float | None:
        """Seconds until a backed-off replacement may start; None if none waits."""
        waits = [b.until - now for b in self.backoff.values() if b.until > now]
        return min(waits, default=None)

    def kill_overdue(self, now: float, stall_of: Callable[[Child], float | None]) -> None:
        """Kill every child that is overdue (lifecycle.overdue): stalled or never ready."""
        for child in list(self.children.values()):
            why = lifecycle.overdue(child.life, now, stall_timeout=stall_of(child))
            if why is not None:
                log.error("%s %d %s; replacing it", child.kind, child.pid, why)
                child.apply(Event.OVERDUE, now)

    def kill_all_overdue(self, now: float) -> None:
        """The stop deadline passed: kill whatever is left."""
        for child in list(self.children.values()):
            if child.life.phase is not Phase.STALLED:
                log.warning("%s %d did not stop in time; killing", child.kind, child.pid)
            child.apply(Event.OVERDUE, now)

    def reap(self, now: float, wanted: Callable[[Child], bool]) -> list[tuple[Child, Outcome]]:
        """Children that exited, and what to do about each (lifecycle.exit_outcome).

        Exits are logged, and the back-off of replacements is kept here.
        """
        exited = []
        for pid, code in reap():
            child = self.children.pop(pid, None)
            if child is None:
                continue
            child.channel.close()
            worker = child.kind == "worker"
            outcome = lifecycle.exit_outcome(child.life, code, wanted=wanted(child), worker=worker)
            how = lifecycle.describe_exit(code)
            if outcome is Outcome.GONE or child.life.phase is Phase.STALLED:
                log.info("%s %d exited (%s)", child.kind, pid, how)
            else:
                log.warning("%s %d died unexpectedly (%s)", child.kind, pid, how)
            if outcome is Outcome.REPLACE:
                backoff = self.backoff[child.kind].after_exit(child.life, now)
                self.backoff[child.kind] = backoff
                if backoff.delay:
                    log.warning("replacing it in %.1fs", backoff.delay)
            child.apply(Event.EXIT, now)
            exited.append((child, outcome))
        return exited

    def kill_all(self, signum: int) -> None:
        for child in self.children.values():
            kill(child.pid, signum)
            child.channel.close()
        reap()
