"""Free TCP ports on loopback addresses, and waiting for a port to accept.

Ports for listeners are taken from below the kernel's ephemeral range
(net.ipv4.ip_local_port_range), so no client socket of this or another
test (a flood opens thousands) can take a chosen port between the moment
it was found free and the moment the gateway binds it. When the suite runs
in several processes (pytest-xdist), each process draws from a slice of its
own, so two tests running at once never pick the same port.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import trio

from tests.support.waiting import wait_until

LOWEST = 10000  # below: well-known services a machine may run
SLICES = 8  # xdist processes with a slice of their own (more share the slices)


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return 32768


def _slice() -> range:
    """The ports this process may hand out: its slice of LOWEST .. the ephemeral range."""
    top = max(_ephemeral_start(), LOWEST + 2000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1 ... under xdist
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (top - LOWEST) // SLICES
    start = LOWEST + (index % SLICES) * size
    return range(start, start + size)


def _candidates() -> Iterator[int]:
    ports = _slice()
    first = ports.start + (os.getpid() * 7919) % len(ports)  # fresh runs start elsewhere
    return itertools.cycle([*range(first, ports.stop), *range(ports.start, first)])


_next_candidate = _candidates()


def free_port(*hosts: str, attempts: int = 500) -> int:
    """A TCP port that is free, at this moment, on every one of `hosts`.

    Every call gives another port (the next free one of this process's
    slice), on every host (127.0.0.2, 127.0.0.3 ... for several backends on
    one port). Defaults to 127.0.0.1.
    """
    hosts = hosts or ("127.0.0.1",)
    for _ in range(attempts):
        port = next(_next_candidate)
        if all(_bindable(host, port) for host in hosts):
            return port
    raise RuntimeError(f"no common free port on {hosts} after {attempts} attempts")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


async def port_accepts(host: str, port: int) -> bool:
    """True if a TCP connection to host:port succeeds right now."""
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def port_refuses(host: str, port: int) -> bool:
    return not await port_accepts(host, port)


async def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Wait until host:port accepts TCP connections; TooSlowError after `timeout` s."""
    await wait_until(
        partial(port_accepts, host, port), timeout, f"{host}:{port} accepts connections"
    )


async def wait_for_port_closed(host: str, port: int, timeout: float) -> None:
    """Wait until host:port refuses TCP connections; TooSlowError after `timeout` s."""
    await wait_until(
        partial(port_refuses, host, port), timeout, f"{host}:{port} refuses connections"
    )
