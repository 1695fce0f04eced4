"""Free TCP ports on loopback addresses, and waiting for a port to accept."""

from __future__ import annotations

import errno
import socket
from functools import partial

import trio

from tests.support.waiting import wait_until


def free_port(*hosts: str, attempts: int = 50) -> int:
    """A TCP port that is free, at this moment, on every one of `hosts`.

    Binds port 0 on the first host to let the kernel pick, then checks that
    the same port also binds on the other hosts (127.0.0.2, 127.0.0.3 ... for
    several backends on one port). Defaults to 127.0.0.1.
    """
    hosts = hosts or ("127.0.0.1",)
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
            if all(_bindable(host, port) for host in hosts[1:]):
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
