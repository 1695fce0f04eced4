"""Fixtures for integration tests: ports for the gateway and its backends.

The gateway listens on 127.0.0.1; the backends of a pool listen on
127.0.0.2 and 127.0.0.3 (same port), so the gateway's own addresses and the
backends' never collide. Process inspection reads /proc: Linux only.
"""

from __future__ import annotations

import pytest

from tests.support.ports import free_port

BACKEND_HOSTS = ("127.0.0.2", "127.0.0.3")


@pytest.fixture
def gateway_port() -> int:
    """A free port on 127.0.0.1 for the gateway's http listener."""
    return free_port("127.0.0.1")


@pytest.fixture
def https_port(gateway_port: int) -> int:
    """Another free port on 127.0.0.1, for an https listener."""
    while (port := free_port("127.0.0.1")) == gateway_port:
        pass
    return port


@pytest.fixture
def backend_port() -> int:
    """A port free on both 127.0.0.2 and 127.0.0.3, for a pool's servers."""
    return free_port(*BACKEND_HOSTS)
