"""The demo's children: started in their own process groups, watched, stopped in order.

A child is ready when a line of its output says so; one that exits on its own
fails the demo. Stopping sends TERM (a second Ctrl-C: INT to the gateway, a fast
stop), waits for each within its budget, then kills what is left, its process
group included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import TextIO

import attrs
import trio

GATEWAY_STOP_TIMEOUT = 40.0  # beyond the gateway's own drain deadline (30 s)
BACKEND_STOP_TIMEOUT = 5.0
STRAGGLER_TIMEOUT = 3.0


@attrs.define(eq=False)
class Child:
    """One supervised process, and what its output has shown so far."""

    name: str
    process: trio.Process
    is_ready: Callable[[str], bool]
    # Fired when the child is ready, exits, or the demo is stopping.
    changed: trio.Event = attrs.Factory(trio.Event)
    ready: bool = False
    exited: bool = False
    stopping: bool = False  # we asked it to stop

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Starts the children, watches them, stops them all in order."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.children: list[Child] = []
        self.stopping = trio.Event()
        self.reason: str | None = None  # why the demo failed, if it did
        self.signals = 0
        self._last_signal = -float("inf")

    def fail(self, reason: str) -> None:
        if not self.stopping.is_set():
            self.reason = reason
            self._stop_requested()

    def _stop_requested(self) -> None:
        self.stopping.set()
        for child in self.children:
            child.changed.set()

    async def start(
        self,
        name: str,
        command: list[str],
        *,
        ready: Callable[[str], bool],
        ready_on_stderr: bool,
        ready_within: float,
    ) -> Child | None:
        """Start a child and wait until it is ready; None if it could not be."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = await trio.lowlevel.open_process(
            command,
            env=env,
            process_group=0,  # Ctrl-C in the terminal reaches the runner only
            stdout=None if ready_on_stderr else subprocess.PIPE,
            stderr=subprocess.PIPE if ready_on_stderr else None,
        )
        child = Child(name, process, ready)
        self.children.append(child)
        output = process.stderr if ready_on_stderr else process.stdout
        echo = sys.stderr if ready_on_stderr else sys.stdout
        assert output is not None
        self._nursery.start_soon(self._pump, child, output, echo, ready_on_stderr)
        self._nursery.start_soon(self._watch, child)
        with trio.move_on_after(ready_within):
            await child.changed.wait()
        if child.ready and not child.exited and not self.stopping.is_set():
            return child
        if not self.stopping.is_set():
            if child.exited:
                self.fail(f"{name} exited with status {process.returncode} before it was ready")
            else:
                self.fail(f"{name} was not ready within {ready_within:.0f} s")
        return None

    async def _pump(
        self, child: Child, output: trio.abc.ReceiveStream, echo: TextIO, echo_ready: bool
    ) -> None:
        """Pass the child's output through; notice its ready line."""
        lines = LineReader(output)
        while (line := await lines.readline()) is not None:
            if not child.ready and child.is_ready(line):
                child.ready = True
                child.changed.set()
                if not echo_ready:
                    continue
            print(line, file=echo, flush=True)

    async def _watch(self, child: Child) -> None:
        status = await child.process.wait()
        child.exited = True
        child.changed.set()
        if not child.stopping:
            self.fail(f"{child.name} exited with status {status}")

    async def stop_all(self) -> list[str]:
        """Stop the gateway gracefully, then the backends; returns any problems.

        The chat server stops together with the gateway: it closes every chat
        with 1001 (going away), so the gateway's open tunnels end now instead
        of at its drain deadline. The app instances stop once the gateway has
        finished the requests in flight.
        """
        problems: list[str] = []
        first = [c for c in self.children if c.name in ("gateway", "chat")]
        then = [c for c in self.children if c not in first]
        for group in (first, then):
            async with trio.open_nursery() as nursery:
                for child in group:
                    nursery.start_soon(self._stop_into, child, problems)
        return problems

    async def _stop_into(self, child: Child, problems: list[str]) -> None:
        within = GATEWAY_STOP_TIMEOUT if child.name == "gateway" else BACKEND_STOP_TIMEOUT
        problems += await self._stop(child, signal.SIGTERM, within)

    async def _stop(self, child: Child, signum: int, within: float) -> list[str]:
        """Signal one child (its main process) and wait; kill its group if it lingers."""
        child.stopping = True
        problems = []
        if child.process.returncode is None:
            _signal(child.pid, signum)
            with trio.move_on_after(within):
                await child.process.wait()
            if child.process.returncode is None:
                problems.append(f"{child.name} did not stop within {within:.0f} s; killed it")
                _signal_group(child.pid, signal.SIGKILL)
                await child.process.wait()
            status = child.process.returncode
            if status not in (0, -signum) and not problems:
                problems.append(f"{child.name} exited with status {status} while stopping")
        # Whatever is left in the child's process group (a gateway's workers
        # whose master is gone) goes too.
        if _signal_group(child.pid, signal.SIGTERM):
            with trio.move_on_after(STRAGGLER_TIMEOUT):
                # They are not our children: there is no exit to wait for.
                while _signal_group(child.pid, 0):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            if _signal_group(child.pid, signal.SIGKILL):
                problems.append(f"processes of {child.name} outlived it; killed them")
        return problems

    def on_signal(self) -> None:
        """Ctrl-C or TERM: the first stops gracefully, the next one fast.

        Signals within a second of the last one count once: tools like
        timeout(1) send a signal to the process and again to its group.
        """
        now = trio.current_time()
        if now - self._last_signal < 1.0:
            return
        self._last_signal = now
        self.signals += 1
        if self.signals == 1:
            print(
                "\nappgw demo: stopping (Ctrl-C again to stop at once)", file=sys.stderr, flush=True
            )
            self._stop_requested()
        else:
            for child in self.children:
                if child.process.returncode is None:
                    if self.signals == 2:
                        _signal(child.pid, signal.SIGINT)
                    else:
                        _signal_group(child.pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid: int, signum: int) -> bool:
    """Send signum to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class LineReader:
    """Lines of a byte stream, decoded, without their line ends."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""
        self._eof = False

    async def readline(self) -> str | None:
        """The next line; None at the end of the stream."""
        while b"\n" not in self._buffer and not self._eof:
            try:
                data = await self._stream.receive_some(65536)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                data = b""
            self._eof = not data
            self._buffer += data
        if not self._buffer:
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")
