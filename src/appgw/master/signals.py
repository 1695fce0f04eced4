"""The master's signals: queued by the handler, acted on by the loop.

A signal handler proper only queues the signal number and wakes the loop
through a pipe (SignalQueue); the loop then calls the handler the HANDLERS table names, outside of
signal context, where taking locks, logging and forking are safe. Each
handle_<name> calls one of the arbiter's public verbs:

| signal | verb |
| --- | --- |
| HUP | reload(): a new generation with the configuration read again |
| TERM | stop("graceful"): drain, then exit |
| INT, QUIT | stop("fast") |
| USR1 | reopen_logs(): here and in every child |
| USR2 | upgrade(): a new master on new code with the same sockets |
| TTIN / TTOU | add_worker() / remove_worker() |
| CHLD | nothing here: the loop reaps on every pass |
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Protocol

from appgw import logs

log = logs.log


class Arbiter(Protocol):
    """The master's public verbs, all a signal can ask for (arbiter.Arbiter)."""

    def reload(self) -> object: ...
    def stop(self, how: str) -> None: ...
    def reopen_logs(self) -> None: ...
    def upgrade(self) -> object: ...
    def add_worker(self) -> None: ...
    def remove_worker(self) -> None: ...

class SignalQueue:
    """The master's signals, queued in arrival order, with a pipe to wait on."""

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in HANDLERS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    def fileno(self) -> int:
        """Readable when a signal arrived (select on it, then call clear)."""
        return self._read

    def fds(self) -> list[int]:
        """Both ends of the wakeup pipe: a forked child closes them."""
        return [self._read, self._write]

    def clear(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def take(self) -> list[int]:
        """The signals that arrived since the last call, oldest first."""
        taken, self._pending = self._pending, []
        return taken

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)


# -- signal handlers (called from the loop, never from the signal context) --


def handle_hup(arbiter: Arbiter) -> None:
    arbiter.reload()


def handle_term(arbiter: Arbiter) -> None:
    log.info("TERM: stopping gracefully")
    arbiter.stop("graceful")


def handle_int(arbiter: Arbiter) -> None:
    log.info("INT: stopping now")
    arbiter.stop("fast")


def handle_quit(arbiter: Arbiter) -> None:
    log.info("QUIT: stopping now")
    arbiter.stop("fast")


def handle_usr1(arbiter: Arbiter) -> None:
    arbiter.reopen_logs()


def handle_usr2(arbiter: Arbiter) -> None:
    arbiter.upgrade()


def handle_ttin(arbiter: Arbiter) -> None:
    arbiter.add_worker()


def handle_ttou(arbiter: Arbiter) -> None:
    arbiter.remove_worker()


def handle_chld(arbiter: Arbiter) -> None:
    pass  # reaping happens on every pass of the loop


HANDLERS: dict[int, Callable[[Arbiter], None]] = {
    signal.SIGHUP: handle_hup,
    signal.SIGTERM: handle_term,
    signal.SIGINT: handle_int,
    signal.SIGQUIT: handle_quit,
    signal.SIGUSR1: handle_usr1,
    signal.SIGUSR2: handle_usr2,
    signal.SIGTTIN: handle_ttin,
    signal.SIGTTOU: handle_ttou,
    signal.SIGCHLD: handle_chld,
}


def dispatch(arbiter: Arbiter, signum: int) -> None:
    """Carry out one queued signal (from the loop, never the signal context)."""
    HANDLERS[signum](arbiter)
