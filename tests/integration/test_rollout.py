"""A rollout across three instances behind a real HAProxy (tests/support/rollout.py).

HAProxy in TCP mode with `send-proxy-v2` in front of three gateways from one
file; HTTP load and 30 WebSockets through it while each instance, one after
another, reloads by itself (`--watch`) onto a new release of the file.
Nothing fails, every WebSocket is open or closed 1001 within its drain window,
the backends see the load generator's address, and one affinity cookie
holds through every instance. `scripts/rollout` runs the same rehearsal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.support.rollout import CLIENT, INSTANCES, WEBSOCKETS, rehearse

BUDGET = 50  # seconds, the whole rehearsal included (about 20 on a quiet machine)


# Heavy load: never at the same time as another load test (pytest-xdist).
@pytest.mark.xdist_group("load")
@pytest.mark.timeout(BUDGET + 10)
async def test_rollout_across_instances_behind_haproxy(tmp_path: Path) -> None:
    with trio.fail_after(BUDGET):
        report = await rehearse(tmp_path)
    print(report.text())
    assert report.problems == [], report.text()
    assert report.requests > 0
    assert report.sessions >= WEBSOCKETS
    assert report.closed_1001 >= 1
    assert report.forwarded_for == {CLIENT}
    assert report.logged_clients == {CLIENT}
    # The first cookie, then through the other two; all three after the
    # rollout; and six times through HAProxy.
    assert len(report.affinity) == 2 * len(INSTANCES) + 2 * len(INSTANCES)
    assert len(set(report.affinity)) == 1
