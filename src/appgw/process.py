"""Process hygiene a forked child needs, shared by the master and its children.

The master forks with the signals it sends its children blocked
(CHILD_SIGNALS), so a TERM that arrives while a child boots waits for the
child's own handling instead of killing it with the default action. The
child calls unblock_signals() once that handling is in place.

A child that needs root for something (TLS keys readable only by root)
does it first and then calls drop_privileges(). A child that cannot start
at all raises BootError; it then exits with BOOT_ERROR, which tells the
master to stop (or roll a reload back) rather than respawn it forever.
"""

from __future__ import annotations

import grp
import importlib
import os
import pwd
import signal

__all__ = ["BOOT_ERROR", "CHILD_SIGNALS", "BootError", "drop_privileges", "unblock_signals"]

BOOT_ERROR = 3  # the exit code of a child that could not start

# What the master sends its children; blocked in a child until it is ready
# to handle them.
CHILD_SIGNALS = frozenset(
    {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGHUP}
)


class BootError(Exception):
    """A child cannot start; the message says why."""


def unblock_signals() -> None:
    """Let the signals blocked across fork in (a child calls this once ready)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_SIGNALS)


# Modules a child may import lazily later (codecs looked up on first use,
# imports inside functions). After a drop to an unprivileged user the Python
# installation may no longer be readable, so they are loaded before.
PRELOAD = (
    "encodings.idna",
    "appgw.prober.health",
    "appgw.worker.exchange.handler",
    "appgw.worker.policy.rewrite",
)


def drop_privileges(user: str | None, group: str | None) -> None:
    """Become `user` (and `group`, else the user's own) when running as root.

    Not root: nothing to drop (the master warned at start). An unknown user
    or group is a BootError.
    """
    if not user and not group:
        return
    for module in PRELOAD:
        importlib.import_module(module)
    if os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam(group).gr_gid if group else None
        entry = pwd.getpwnam(user) if user else None
    except KeyError as exc:
        raise BootError(f"no such user or group: {exc}") from None
    if entry is not None:
        gid = gid if gid is not None else entry.pw_gid
        os.initgroups(entry.pw_name, gid)
    if gid is not None:
        os.setgid(gid)
    if entry is not None:
        os.setuid(entry.pw_uid)
