"""Which server of a pool gets the next request (pure).

Round robin over the servers that health allows, in pool order: the next
request goes to the first routable server after the last one chosen, so an
unhealthy server's share spreads over all the others instead of doubling
its neighbour's. The rest of the routable servers follow as failover
candidates, for when a connection cannot be made.

Servers in passive back-off (passive.py: a connect to them just failed) go
to the end of that order, after the pinned server of an affinity cookie
too: they get a request only when no other server can be reached.

Cookie-based affinity: the cookie names a server by an HMAC of the pool and
server under the gateway's affinity secret, so it reveals no address, cannot
be forged to pick an arbitrary host, and any instance sharing the secret
maps it to the same server.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Protocol

from appgw import logs
from appgw.config.model import Config, Pool, Server, Setting
from appgw.worker.policy.passive import PassiveHealth


class Health(Protocol):
    def is_routable(self, pool: str, setting: str, host: str, port: int) -> bool: ...


class EveryoneHealthy:
    """Health before the first snapshot: every server is Unknown, so routable."""

    def is_routable(self, pool: str, setting: str, host: str, port: int) -> bool:
        return True


def server_port(server: Server, setting: Setting) -> int:
    return server.port if server.port is not None else setting.port


def affinity_secret(config: Config) -> bytes:
    if config.gateway.affinity_secret:
        return config.gateway.affinity_secret.encode()
    # Without a configured secret: derived from the pools alone, so changing
    # a setting keeps sessions where they are. Anyone who can read the
    # configuration can compute it; set gateway.affinity_secret to prevent
    # forged cookies.
    material = repr(sorted((name, pool.servers) for name, pool in config.pools.items())).encode()
    return hashlib.sha256(b"appgw-affinity\0" + material).digest()


class Balancer:
    def __init__(
        self,
        config: Config,
        passive: PassiveHealth | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.passive = passive if passive is not None else PassiveHealth()
        self.clock = clock
        self._next: dict[tuple[str, str], int] = {}
        secret = affinity_secret(config)
        self._cookies: dict[tuple[str, str], Server] = {}
        self._values: dict[tuple[str, Server], str] = {}
        for pool in config.pools.values():
            for server in pool.servers:
                value = hmac.new(secret, f"{pool.name}|{server}".encode(), "sha256").hexdigest()
                value = value[:32]
                self._cookies[(pool.name, value)] = server
                self._values[(pool.name, server)] = value

    def candidates(
        self, pool: Pool, setting: Setting, health: Health, sticky: str | None = None
    ) -> list[Server]:
        """Routable servers, the chosen one first, then failover order."""
        servers = pool.servers
        count = len(servers)
        if count == 1:
            server = servers[0]
            routable = health.is_routable(
                pool.name, setting.name, server.host, server_port(server, setting)
            )
            return [server] if routable else []
        if not count:
            return []
        key = (pool.name, setting.name)
        start = self._next.get(key, 0) % count
        order: list[Server] = []
        for step in range(count):
            index = (start + step) % count
            server = servers[index]
            if health.is_routable(
                pool.name, setting.name, server.host, server_port(server, setting)
            ):
                if not order:
                    self._next[key] = index + 1
                order.append(server)
        if sticky is not None:
            pinned = self._cookies.get((pool.name, sticky))
            if pinned is not None and pinned in order:
                order.remove(pinned)
                order.insert(0, pinned)
        if self.passive.any_failing:
            now = self.clock()
            order.sort(key=lambda s: self.passive.backed_off(s.host, server_port(s, setting), now))
        return order

    def connect_failed(self, pool: Pool, host: str, port: int, reason: str) -> None:
        """A connect to a server failed: back-off, and a log line when one is due."""
        line = self.passive.connect_failed(host, port, reason, self.clock())
        if line is not None:
            logs.log.warning("pool %s: %s", pool.name, line)

    def connected(self, pool: Pool, host: str, port: int) -> None:
        """A connect to a server succeeded (or a kept connection was reused)."""
        if self.passive.any_failing:
            line = self.passive.connected(host, port, self.clock())
            if line is not None:
                logs.log.info("pool %s: %s", pool.name, line)

    def cookie_value(self, pool: Pool, server: Server) -> str:
        return self._values[(pool.name, server)]
