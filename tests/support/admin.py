"""Reading the gateway's admin listener in tests: Prometheus text, JSON, waits."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import trio

from tests.support.clients import Response, get

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_prometheus(text: str) -> Samples:
    """{(name, labels): value} of every sample line; a malformed line fails the test."""
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match is not None, f"not a Prometheus sample line: {line!r}"
        name, _, labels, value = match.groups()
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 if absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def admin_get(port: int, path: str, host: str = "127.0.0.1") -> Response:
    return await get(host, port, path)


async def admin_json(port: int, path: str) -> Any:
    response = await admin_get(port, path)
    assert response.status == 200, (path, response.status, response.body[:200])
    return json.loads(response.body)


async def wait_for_metrics(
    port: int, ready: Callable[[Samples], bool], timeout: float = 15
) -> Samples:
    """Poll /metrics until `ready(samples)` (the counts travel with a 1 s heartbeat)."""
    with trio.fail_after(timeout):
        while True:
            response = await admin_get(port, "/metrics")
            if response.status == 200:
                samples = parse_prometheus(response.body.decode())
                if ready(samples):
                    return samples
            await trio.sleep(0.2)
