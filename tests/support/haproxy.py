"""A real HAProxy (Debian's `haproxy`) in TCP mode, in front of gateway instances.

open_haproxy writes a configuration with one TCP frontend and a round-robin
backend whose servers get a PROXY protocol version 2 header
(`send-proxy-v2`), connecting from a source address of its own so that the
gateways can tell the balancer from its clients. It runs `haproxy -db` in
its own session, returns once the frontend accepts, and kills the group on
the way out.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from tests.support.gateway import kill_group
from tests.support.ports import wait_for_port


class HaproxyMissing(Exception):
    """No haproxy executable on PATH."""


@attrs.frozen
class Haproxy:
    process: trio.Process
    config: Path
    log: Path
    frontend: tuple[str, int]
    source: str  # the address it connects to the servers from


def haproxy_config(
    frontend: tuple[str, int], servers: Sequence[tuple[str, int]], source: str
) -> str:
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "frontend www",
        f"    bind {frontend[0]}:{frontend[1]}",
        "    default_backend appgw",
        "backend appgw",
        "    balance roundrobin",
        f"    source {source}",
    ]
    for n, (host, port) in enumerate(servers, 1):
        # Health checks send the PROXY header too (a LOCAL one).
        lines.append(f"    server appgw{n} {host}:{port} send-proxy-v2 check inter 1s")
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def open_haproxy(
    directory: Path,
    frontend: tuple[str, int],
    servers: Sequence[tuple[str, int]],
    source: str,
    timeout: float = 15,
) -> AsyncIterator[Haproxy]:
    executable = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if executable is None:
        raise HaproxyMissing("haproxy is not installed (Debian: apt-get install haproxy)")
    config = directory / "haproxy.cfg"
    config.write_text(haproxy_config(frontend, servers, source))
    log = directory / "haproxy.log"
    check = await trio.run_process(
        [executable, "-c", "-f", str(config)], capture_stdout=True, capture_stderr=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c: {(check.stdout + check.stderr).decode(errors='replace')}")
    with log.open("ab") as out:
        process = await trio.lowlevel.open_process(
            [executable, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        await wait_for_port(frontend[0], frontend[1], timeout)
        yield Haproxy(process, config, log, frontend, source)
    finally:
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(5):
                    await process.wait()
            kill_group(process.pid)
            await process.wait()
