"""Listeners that `--bind` and `--port` bring onto one socket.

Validation checks the configured addresses; the command line's overrides
can put listeners that were apart onto the same address and port. Those
pairs are checked again, and the messages speak of the address actually
bound. An IPv4 and an IPv6 frontend on one port (dual stack) become one
socket under `--bind` and are not a conflict: they are the same listener
twice, as Azure serves both families.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from appgw.config.model import Config, Listener
from appgw.config.naming import ARM_NAMING, TOML_NAMING
from appgw.config.validate import GatewayChecks


def _family(address: str) -> int:
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return 0


def bound_conflicts(config: Config, before: Mapping[str, Listener], flags: str) -> list[str]:
    """Conflicts among `config`'s listeners that share an (address, port) only
    since the overrides (`before`: the listeners as configured)."""
    naming = TOML_NAMING if config.source.endswith(".toml") else ARM_NAMING
    checks = GatewayChecks(config, naming)
    listeners = list(config.listeners.values())
    for i, b in enumerate(listeners):
        for a in listeners[:i]:
            if (a.address, a.port) != (b.address, b.port):
                continue
            was_a, was_b = before[a.name], before[b.name]
            if (was_a.address, was_a.port) == (was_b.address, was_b.port):
                continue  # validation saw this pair already
            twins = was_a.port == was_b.port and _family(was_a.address) != _family(was_b.address)
            if twins and a.protocol == b.protocol and a.host_names == b.host_names:
                continue  # dual stack: one socket serves both
            checks._conflict(a, b, b.port)
    return [f"{error} (with {flags})" for error in checks.errors]
