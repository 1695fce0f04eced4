"""A slowloris flood in a process of its own: `python -m tests.support.flood_process`.

A test that times normal clients during a flood runs the flood here, so
that its thousands of connection tasks do not share the test's event loop:
in one process, a normal request's latency would include the time the
test's own loop spent on the flood (over a second on a busy machine when
the whole flood is cut off and reconnects at once), not only the
gateway's. The flood's counts go to a JSON file, replaced ten times a
second; open_flood runs the process and reads them back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio

from tests.support.hostile import FloodStats, slowloris
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
STARTED = 60.0  # seconds the flood may take to attempt all its connections


@attrs.define(eq=False)
class Flood:
    """A running flood process and its stats file."""

    process: trio.Process
    stats_path: Path

    def stats(self) -> FloodStats:
        """The counts the flood last wrote (zeros before the first write)."""
        try:
            data = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return FloodStats()
        data.pop("started", None)
        return FloodStats(**data)

    def started(self) -> bool:
        try:
            return bool(json.loads(self.stats_path.read_text()).get("started"))
        except (OSError, ValueError):
            return False


@asynccontextmanager
async def open_flood(
    host: str, port: int, count: int, *, interval: float, directory: Path
) -> AsyncIterator[Flood]:
    """Run a slowloris flood of `count` connections until the block ends.

    Returns once every connection was attempted. The process inherits this
    one's descriptor limit (raise it first, see hostile.raise_nofile).
    """
    stats_path = directory / "flood-stats.json"
    command = [sys.executable, "-m", "tests.support.flood_process"]
    command += [host, str(port), str(count), str(interval), str(stats_path)]
    process = await trio.lowlevel.open_process(
        command, cwd=str(ROOT), stdin=subprocess.DEVNULL, start_new_session=True
    )
    flood = Flood(process, stats_path)
    try:
        await wait_until(
            lambda: flood.started() or process.poll() is not None,
            STARTED,
            lambda: f"the flood attempts its {count} connections ({flood.stats()})",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the flood process exited ({process.returncode})")
        yield flood
    finally:
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.kill()
            await process.wait()


def _write(path: Path, stats: FloodStats, started: bool) -> None:
    part = path.with_suffix(".part")
    part.write_text(json.dumps({**attrs.asdict(stats), "started": started}))
    os.replace(part, path)


async def _main(host: str, port: int, count: int, interval: float, path: Path) -> None:
    stats = FloodStats()
    started = False

    async def report() -> None:
        while True:
            _write(path, stats, started)
            await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(report)
        await nursery.start(partial(slowloris, host, port, count, interval=interval, stats=stats))
        started = True


if __name__ == "__main__":
    host, port, count, interval, path = sys.argv[1:6]
    trio.run(_main, host, int(port), int(count), float(interval), Path(path))
