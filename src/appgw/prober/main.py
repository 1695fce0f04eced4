"""The prober process: probes every target and publishes health snapshots.

The master forks the prober and calls run_prober(config, out_fd) in the
child, which runs trio once. One task per target probes it at once, then
every interval (start to start; a probe that takes longer than the interval
is followed by the next one immediately), so targets with different
intervals never move in lockstep. Each result goes into the HealthTable.

Publishing, in ipc's messages on out_fd: Ready once the probes are
started, then the whole snapshot in Health messages:

- first once every target has its first result, or once the longest probe
  timeout has passed, whichever comes first; earlier if some server's
  routability changes before that;
- then after every change of a server's state, reason or routability, at
  most once per PUBLISH_INTERVAL (a burst of changes is one message).

A write that cannot complete within WRITE_TIMEOUT, or a broken pipe, means
the reader is gone or stuck: the prober returns (the master restarts it).
It also returns when its parent process is gone, so an orphan never probes
on its own.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

import trio

from appgw.config.model import Config
from appgw.errors import STREAM_ERRORS
from appgw.ipc import Health, Ready, encode
from appgw.prober import results
from appgw.prober.health import Change, HealthTable
from appgw.prober.probe import backend_ssl_context, probe_once
from appgw.prober.results import ProbeResult
from appgw.prober.targets import Target, TargetKey, TlsKey, probe_targets

log = logging.getLogger("appgw.prober")

PUBLISH_INTERVAL = 1.0  # seconds between two messages at most once
WRITE_TIMEOUT = 5.0  # seconds a message may take to go into the pipe
PARENT_CHECK_INTERVAL = 1.0


def run_prober(config: Config, out_fd: int, previous: dict[str, Any] | None = None) -> None:
    """The prober process's body: probe and publish until told to stop.

    `out_fd` is the write end of a pipe or a stream socket to the master. It
    stays the caller's: the prober writes through a duplicate, which it makes
    non-blocking (this shows on `out_fd` too) and closes on return.
    """
    trio.run(functools.partial(serve_prober, config, out_fd, previous=previous))


async def serve_prober(
    config: Config,
    out_fd: int,
    *,
    publish_interval: float = PUBLISH_INTERVAL,
    clock: Callable[[], float] = time.time,
    previous: dict[str, Any] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Probe every target of `config` and publish snapshots to `out_fd`.

    Returns when the pipe breaks or stalls, or the parent process is gone.
    """
    targets = probe_targets(config)
    table = HealthTable(targets, clock())
    table.carry_over(previous)
    out = trio.lowlevel.FdStream(os.dup(out_fd))
    initial_wait = max((t.probe.timeout for t in targets), default=0) + 0.5
    publisher = _Publisher(table, out, clock, publish_interval, [t.key for t in targets])
    contexts = _ssl_contexts(targets)
    async with out:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher.serve, initial_wait, nursery.cancel_scope)
            nursery.start_soon(_watch_parent, os.getppid(), nursery.cancel_scope)
            for target in targets:
                nursery.start_soon(_serve_target, target, contexts, table, publisher, clock)
            task_status.started()


async def _serve_target(
    target: Target,
    contexts: dict[TlsKey, ssl.SSLContext | ProbeResult],
    table: HealthTable,
    publisher: _Publisher,
    clock: Callable[[], float],
) -> None:
    context = contexts.get(target.tls_key) if target.uses_tls else None
    while True:
        started = trio.current_time()
        if isinstance(context, ProbeResult):  # the trusted roots could not be loaded
            result = context
        else:
            try:
                result = await probe_once(target, context)
            except Exception as exc:  # one faulty probe must not stop the others
                log.exception("probe of %s failed unexpectedly", _describe(target.key))
                result = results.probe_error(repr(exc))
        change = table.record(target.key, result, clock())
        if Change.STATE in change:
            log.info("%s is %s: %s", _describe(target.key), table.state(target.key), result.reason)
        publisher.note(target.key, change)
        await trio.sleep_until(started + target.probe.interval)


def _ssl_contexts(
    targets: list[Target],
) -> dict[TlsKey, ssl.SSLContext | ProbeResult]:
    """One SSL context per distinct backend TLS setup (or why it failed)."""
    contexts: dict[TlsKey, ssl.SSLContext | ProbeResult] = {}
    for target in targets:
        roots = target.tls_key
        if not target.uses_tls or roots in contexts:
            continue
        try:
            contexts[roots] = backend_ssl_context(*roots)
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            contexts[roots] = results.probe_error(
                f"the trusted root certificates cannot be loaded ({exc})"
            )
    return contexts


class _Publisher:
    """Writes snapshots to the pipe when something changed, rate-limited."""

    def __init__(
        self,
        table: HealthTable,
        out: trio.abc.SendStream,
        clock: Callable[[], float],
        interval: float,
        keys: list[TargetKey],
    ) -> None:
        self._table = table
        self._out = out
        self._clock = clock
        self._interval = interval
        self._awaiting_first = set(keys)
        self._initial = trio.Event()
        self._changed = trio.Event()
        if not self._awaiting_first:
            self._initial.set()

    def note(self, key: TargetKey, change: Change) -> None:
        """A probe result for `key` was recorded, changing `change`."""
        self._awaiting_first.discard(key)
        if not self._awaiting_first or Change.ROUTING in change:
            self._initial.set()
        if change:
            self._changed.set()

    async def serve(self, initial_wait: float, scope: trio.CancelScope) -> None:
        if not await self._send(encode(Ready())):
            scope.cancel()
            return
        with trio.move_on_after(initial_wait):
            await self._initial.wait()
        while True:
            self._changed = trio.Event()  # changes from here on go into the next message
            if not await self._publish():
                scope.cancel()
                return
            await trio.sleep(self._interval)
            await self._changed.wait()

    async def _publish(self) -> bool:
        return await self._send(encode(Health(self._table.snapshot(self._clock()))))

    async def _send(self, data: bytes) -> bool:
        with trio.move_on_after(WRITE_TIMEOUT):
            try:
                await self._out.send_all(data)
            except STREAM_ERRORS as exc:
                log.warning("health pipe is broken (%r); the prober stops", exc.__cause__ or exc)
                return False
            return True
        log.warning("health pipe accepted nothing for %.0f s; the prober stops", WRITE_TIMEOUT)
        return False


async def _watch_parent(parent: int, scope: trio.CancelScope) -> None:
    while True:
        await trio.sleep(PARENT_CHECK_INTERVAL)
        if os.getppid() != parent:
            log.warning("the master (pid %d) is gone; the prober stops", parent)
            scope.cancel()
            return


def _describe(key: TargetKey) -> str:
    pool, setting, host, port = key
    return f"server {host}:{port} of pool {pool} (setting {setting})"
