"""Forking children, their hygiene after fork, and reaping.

A child is forked from the master (which never runs trio), then:
- signal handling goes back to the defaults and the master's wakeup fd is
  dropped, so the child's own trio loop installs what it needs;
- every fd of the master that the child must not hold (other children's
  channels, the master's wakeup pipe, the start command's ready pipe) is
  closed;
- it drops to the configured user and group (appgw.process, shared with
  the worker); a worker's TLS contexts were built by the master, as root,
  before the fork, and every worker inherits the same ones (tls.py);
- it runs its body and leaves with os._exit, never returning into the
  master's code.

Exit codes tell the master what happened: 0 a normal exit, BOOT_ERROR a
child that could not start at all (the master stops rather than respawning
forever), anything else a crash.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from appgw import logs
from appgw.ipc import BootFailure, MasterChannel, encode, socketpair
from appgw.process import BOOT_ERROR, CHILD_SIGNALS, BootError, drop_privileges, unblock_signals
from appgw.titles import PROBER_TITLE, set_title, worker_title

if TYPE_CHECKING:
    from appgw.config.model import Config
    from appgw.master.sockets import ListeningSocket
    from appgw.tls import SocketTls

log = logs.log

_RESET_SIGNALS = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


def spawn(
    name: str,
    body: Callable[[socket.socket], int],
    close_fds: Iterable[int],
) -> tuple[int, MasterChannel]:
    """Fork a child running body(channel_socket); the master gets (pid, channel).

    The body drops privileges itself (drop_privileges) once it has done
    what needs root.
    """
    master_end, child_end = socketpair()
    close_fds = list(close_fds)
    sys.stdout.flush()
    sys.stderr.flush()
    # Signals stay blocked in the child until it has its own handling in
    # place (unblock_signals): a TERM that arrives while a worker boots then
    # waits for it instead of killing it with the default action.
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        child_end.close()
        return pid, MasterChannel(master_end)
    # -- in the child ---------------------------------------------------------
    code = 1
    try:
        master_end.close()
        signal.set_wakeup_fd(-1)
        for signum in _RESET_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        code = body(child_end)
    except BootError as exc:
        log.error("%s cannot start: %s", name, exc)
        _tell(child_end, str(exc))
        code = BOOT_ERROR
    except KeyboardInterrupt:
        code = 0
    except BaseException:  # noqa: BLE001 - whatever happens, never return into the master
        log.error("%s crashed:\n%s", name, traceback.format_exc())
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _tell(sock: socket.socket, error: str) -> None:
    try:
        sock.setblocking(True)
        sock.sendall(encode(BootFailure(error)))
    except OSError:
        pass


def reap() -> list[tuple[int, int]]:
    """Every child that exited: (pid, exit code; -signal when killed)."""
    exited: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exited
        except InterruptedError:
            continue
        if pid == 0:
            return exited
        if os.WIFSIGNALED(status):
            exited.append((pid, -os.WTERMSIG(status)))
        else:
            exited.append((pid, os.WEXITSTATUS(status)))


def kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


# -- what each kind of child runs ----------------------------------------------


def worker_body(
    config: Config,
    listening: list[ListeningSocket],
    generation: int,
    contexts: Mapping[tuple[str, int], SocketTls],
) -> Callable[[socket.socket], int]:
    """A worker: the master's TLS contexts (inherited), privileges dropped, then trio."""

    def body(channel: socket.socket) -> int:
        set_title(worker_title(generation))
        from appgw.worker.main import Socket, run_worker, tls_for_sockets

        sockets = [Socket(s.sock, s.address, s.port, s.protocol) for s in listening]
        tls_for_sockets(sockets, contexts)
        drop_privileges(config.gateway.user, config.gateway.group)
        return run_worker(config, sockets, channel, generation)

    return body


def prober_body(config: Config, previous: Any) -> Callable[[socket.socket], int]:
    """The prober, starting from the previous prober's results if any."""

    def body(channel: socket.socket) -> int:
        set_title(PROBER_TITLE)
        from appgw.prober.main import run_prober

        # The prober has no files of its own to reopen, and HUP is the
        # master's: neither may end it.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        unblock_signals()
        drop_privileges(config.gateway.user, config.gateway.group)
        run_prober(config, channel.fileno(), previous)
        return 0

    return body
