"""What the master does on each signal: handle_<name>, called from its loop.

Signal handlers proper only queue the signal number (arbiter.py); the loop
then calls these methods, outside of signal context, where taking locks,
logging and forking are safe.

| signal | effect |
| --- | --- |
| HUP | reload: a new generation with the configuration read again |
| TERM | graceful stop: drain, then exit |
| INT, QUIT | fast stop |
| USR1 | reopen log files, here and in every child |
| USR2 | binary upgrade: a new master on new code with the same sockets |
| TTIN / TTOU | one worker more / fewer |
| CHLD | nothing here: the loop reaps on every pass |
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from appgw import logs, sdnotify
from appgw.config import ConfigError
from appgw.master.children import kill
from appgw.master.generations import worker_count

if TYPE_CHECKING:
    from appgw.master.arbiter import Arbiter

log = logs.log

FAST_STOP_GRACE = 5.0


def begin_stop(arbiter: Arbiter, how: str) -> None:
    signum = signal.SIGTERM if how == "graceful" else signal.SIGQUIT
    if arbiter.stopping == "fast" and how == "graceful":
        return
    arbiter.stopping = how
    arbiter._write_state()  # the admin listener's /healthz answers 503 from here on
    if how == "graceful":
        timeouts = [
            float(s.tunnel_drain_timeout)
            for config in arbiter.configs.values()
            for s in config.settings.values()
        ]
        budget = max(timeouts, default=30.0) + 15
    else:
        budget = FAST_STOP_GRACE
    arbiter.stop_deadline = time.monotonic() + budget
    if not arbiter.successor:
        # (After a binary upgrade the service goes on under the new master.)
        sdnotify.notify("STOPPING=1")
    for child in arbiter.children.values():
        kill(child.pid, signum)
    # Nobody will accept any more: let new connections be refused at
    # once instead of waiting in the backlog (workers close their copies
    # as they drain).
    arbiter.sockets.close()


# -- signal handlers (called from the loop, never from the signal context) --


def handle_hup(arbiter: Arbiter) -> None:
    if arbiter.stopping:
        return
    arbiter.reloads += 1
    sdnotify.notify(
        f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    )
    log.info("reloading %s", arbiter.options.config_path)
    try:
        config = arbiter.options.load()
    except ConfigError as exc:
        log.error("reload refused, still serving the previous configuration:\n%s", exc.report())
        arbiter._reload_result(False, exc.errors)
        sdnotify.notify("READY=1")
        return
    errors = arbiter.sockets.ensure(config)
    if errors:
        for error in errors:
            log.error("reload refused: %s", error)
        arbiter._reload_result(False, errors)
        sdnotify.notify("READY=1")
        return
    for warning in config.warnings:
        log.warning("%s: %s", config.source, warning)
    if arbiter.options.workers is None:
        arbiter.wanted = worker_count(config)
    arbiter._start_generation(config)


def handle_term(arbiter: Arbiter) -> None:
    log.info("TERM: stopping gracefully")
    begin_stop(arbiter, "graceful")


def handle_int(arbiter: Arbiter) -> None:
    log.info("INT: stopping now")
    begin_stop(arbiter, "fast")


def handle_quit(arbiter: Arbiter) -> None:
    log.info("QUIT: stopping now")
    begin_stop(arbiter, "fast")


def handle_usr1(arbiter: Arbiter) -> None:
    logs.reopen()
    for child in arbiter.children.values():
        kill(child.pid, signal.SIGUSR1)


def handle_usr2(arbiter: Arbiter) -> None:
    from appgw.master.upgrade import upgrade

    if arbiter.stopping:
        return
    upgrade(arbiter)


def handle_ttin(arbiter: Arbiter) -> None:
    arbiter.wanted += 1
    log.info("TTIN: %d worker(s)", arbiter.wanted)
    arbiter._write_state()


def handle_ttou(arbiter: Arbiter) -> None:
    arbiter.wanted = max(1, arbiter.wanted - 1)
    log.info("TTOU: %d worker(s)", arbiter.wanted)
    arbiter._write_state()


def handle_chld(arbiter: Arbiter) -> None:
    pass  # reaping happens on every pass of the loop
