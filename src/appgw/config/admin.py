"""The admin listener's address: where /metrics, /healthz and the status page are served.

It is off unless configured (`[gateway.admin]` or `--admin ADDR:PORT`). It
shows the gateway's backends and traffic, so it stays on a loopback address
unless `gateway.admin.public = true` says otherwise, and it may not share an
address and port with a listener.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from appgw.config.model import Admin, Listener


def admin_problems(admin: Admin, listeners: Iterable[Listener]) -> list[tuple[str, str]]:
    """(key, message) for each problem; key is the last part of gateway.admin.<key>."""
    problems = []
    try:
        address = ipaddress.ip_address(admin.address)
    except ValueError:
        return [("address", f"{admin.address!r} is not an IP address")]
    if not 1 <= admin.port <= 65535:
        problems.append(("port", "must be 1..65535"))
    if not address.is_loopback and not admin.public:
        problems.append(
            (
                "address",
                f"{admin.address} is not a loopback address; the admin listener shows "
                "backends and traffic: set gateway.admin.public = true to serve it there",
            )
        )
    for listener in listeners:
        if listener.port == admin.port and (
            listener.address == admin.address or "0.0.0.0" in (listener.address, admin.address)
        ):
            problems.append(
                ("port", f"{admin.address}:{admin.port} is also listener {listener.name}'s")
            )
    return problems


def parse_admin(text: str) -> tuple[str, int]:
    """ "127.0.0.1:9090" or "[::1]:9090" -> (address, port); ValueError says why not."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        if not sep or not host:
            raise ValueError
        number = int(port)
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--admin {text}: expected ADDRESS:PORT, an IP address") from None
    return host, number
