"""Tunnel peers in processes of their own, for tests that kill them.

A killed process ends its connections the way the kernel does (a FIN, or a
reset when unread bytes were waiting), with no Close frame: what a crashed
backend or a client that lost power does to a tunnel.

- `open_backend_process(host, port)`: the test HTTP backend with its
  WebSocket echo under /ws (backends.py), serving until killed.
- `open_client_process(url)`: a WebSocket client (the `websockets` library)
  that sends "hello" and then waits.

Each yields the running process once it reported "ready"; the process is
killed at the end of the block if it still runs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import trio

from tests.support.backends import start_http_backends

ROOT = Path(__file__).resolve().parents[2]

_CLIENT = """
import sys, time
import websockets.sync.client
ws = websockets.sync.client.connect(sys.argv[1], proxy=None, open_timeout=10)
ws.send("hello")
print("ready", flush=True)
time.sleep(3600)
"""


@asynccontextmanager
async def _open_python(args: list[str], timeout: float) -> AsyncIterator[trio.Process]:
    process = await trio.lowlevel.open_process(
        [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        cwd=str(ROOT),
    )
    try:
        assert process.stdout is not None
        seen = b""
        with trio.fail_after(timeout):
            while b"ready\n" not in seen:
                data = await process.stdout.receive_some(4096)
                if not data:
                    raise RuntimeError(f"{args[:2]} exited before it was ready: {seen!r}")
                seen += data
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(5):
            await process.wait()


def open_backend_process(
    host: str, port: int, timeout: float = 20
) -> AbstractAsyncContextManager[trio.Process]:
    return _open_python(["-m", "tests.support.peers", host, str(port)], timeout)


def open_client_process(url: str, timeout: float = 20) -> AbstractAsyncContextManager[trio.Process]:
    return _open_python(["-c", _CLIENT, url], timeout)


async def _serve_backend(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        await start_http_backends(nursery, [host], port, websocket=True)
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(_serve_backend, sys.argv[1], int(sys.argv[2]))
