"""The descriptor limit (RLIMIT_NOFILE): raised at start, checked against the configuration.

Every client connection a worker serves holds a descriptor, and one more
for its backend connection while an exchange or a tunnel runs. A soft
limit left at a shell's 1024 (or a container's) makes a worker refuse
accepts long before `gateway.limits.max_connections`. So the master, like
nginx's `worker_rlimit_nofile` and HAProxy, raises its soft limit to the
hard one before it forks (children inherit it), logs the limit in force,
and warns when it is below what the configuration may need (`needed`):

    2 x gateway.limits.max_connections   (a client and a backend connection each)
    + the listening sockets              (every worker holds them all)
    + 64                                 (logs, pipes, the event loop, a few idle
                                          backend connections, TLS files)

That is per process: the limit applies to each worker on its own.
"""

from __future__ import annotations

import resource

from appgw import logs
from appgw.config.model import Config

log = logs.log

BASE = 64  # descriptors a worker holds besides connections and listening sockets


def needed(config: Config) -> int:
    """Descriptors one worker may need under this configuration (the rule above)."""
    listening = {(listener.address, listener.port) for listener in config.listeners.values()}
    admin = 1 if config.gateway.admin is not None else 0
    return 2 * config.gateway.limits.max_connections + len(listening) + admin + BASE


def raise_soft_limit() -> tuple[int, int, int]:
    """Soft limit up to the hard one: (soft before, soft now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        target = _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("descriptors: cannot raise the limit from %d to %d: %s", soft, target, exc)
            return soft, soft, hard
        return soft, target, hard
    return soft, soft, hard


def _nr_open() -> int:
    """The kernel's ceiling for one process (a hard limit of "unlimited" means this)."""
    try:
        with open("/proc/sys/fs/nr_open") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 1024 * 1024


def check(config: Config, *, start: bool) -> None:
    """At start: raise the soft limit and log it. Always: warn if it is too low."""
    if start:
        before, now, hard = raise_soft_limit()
        raised = f" (raised from {before})" if now != before else ""
        log.info("descriptors: limit %d per process%s, hard limit %s", now, raised, _text(hard))
    else:
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    want = needed(config)
    if now != resource.RLIM_INFINITY and now < want:
        log.warning(
            "descriptors: the limit of %d per process is below the %d this configuration"
            " may need (2 x gateway.limits.max_connections %d, the listening sockets, %d more);"
            " a worker pauses accepting when it runs out: raise the hard limit (ulimit -Hn,"
            " systemd LimitNOFILE=) or lower gateway.limits.max_connections",
            now,
            want,
            config.gateway.limits.max_connections,
            BASE,
        )


def _text(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


__all__ = ["check", "needed", "raise_soft_limit"]
