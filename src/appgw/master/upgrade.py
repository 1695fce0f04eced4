"""Binary upgrade (USR2): a new master on new code, with the same sockets.

The running master starts a fresh `appgw run` with its original command
line. The listening sockets go along as inherited file descriptors named in
APPGW_LISTEN_FDS, so they are never closed and no connection is refused.
The new master takes over the pid file, starts its workers and prober, and
once they are ready sends TERM to the old master, which drains its workers
and exits. If the new master fails, the old one simply keeps serving.
"""

from __future__ import annotations

import os
import subprocess
import sys

from appgw import logs
from appgw.master.sockets import ENV_FDS, SocketSet

log = logs.log

ENV_UPGRADE_FROM = "APPGW_UPGRADE_FROM"


def new_master_command() -> list[str]:
    """This master's command line, less the start command's ready pipe."""
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    command: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == "--ready-fd":
            skip = True
            continue
        if item.startswith("--ready-fd="):
            continue
        command.append(item)
    return command


def start_successor(sockets: SocketSet) -> int | None:
    """Start the new master with `sockets`; its pid, None if it could not start."""
    env = dict(os.environ)
    env[ENV_FDS] = sockets.export()
    env[ENV_UPGRADE_FROM] = str(os.getpid())
    fds = tuple(s.sock.fileno() for s in sockets.sockets.values())
    command = new_master_command()
    try:
        process = subprocess.Popen(command, env=env, pass_fds=fds, stdin=subprocess.DEVNULL)
    except OSError as exc:
        log.error("binary upgrade failed to start %s: %s", command[0], exc)
        return None
    finally:
        for fd in fds:
            os.set_inheritable(fd, False)
    log.info(
        "binary upgrade: new master %d started; this master drains once it is ready", process.pid
    )
    return process.pid


def predecessor() -> int | None:
    """The old master's pid when this master was started by a binary upgrade."""
    try:
        return int(os.environ.pop(ENV_UPGRADE_FROM, ""))
    except ValueError:
        return None
