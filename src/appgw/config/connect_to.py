"""`--connect-to HOST[:PORT]=HOST[:PORT]`: where a backend is really reached.

curl's meaning: a connection to the first address goes to the second one
instead, and nothing else changes: the Host header, the TLS server name
(SNI) and the certificate name checks keep the configured names, and so do
probes, health keys and logs. A template's 10.0.0.4:80 is then served by a
local process (`--connect-to 10.0.0.4:80=127.0.0.2:8080`). Without a port
on the left every port of that host is redirected; without a port on the
right the port is kept. Host names match case-insensitively.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

ConnectTo = Mapping[tuple[str, int | None], tuple[str, int | None]]


def parse_connect_to(
    items: Iterable[str], flag: str = "--connect-to"
) -> dict[tuple[str, int | None], tuple[str, int | None]]:
    """["10.0.0.4:80=127.0.0.2:8080"] -> {("10.0.0.4", 80): ("127.0.0.2", 8080)};
    ValueError names the bad item."""
    table: dict[tuple[str, int | None], tuple[str, int | None]] = {}
    for item in items:
        left, sep, right = item.partition("=")
        try:
            if not sep:
                raise ValueError
            table[_address(left)] = _address(right)
        except ValueError:
            raise ValueError(
                f"{flag} {item}: expected HOST[:PORT]=HOST[:PORT] "
                "(for example 10.0.0.4:80=127.0.0.2:8080)"
            ) from None
    return table


def _address(text: str) -> tuple[str, int | None]:
    text = text.strip()
    port: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError
        port = rest[1:] or None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text
        if ":" in host:
            ipaddress.IPv6Address(host)  # a bare IPv6 address, else ValueError
    if not host:
        raise ValueError
    number = None
    if port is not None:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    return host.lower(), number


def dial(table: ConnectTo, host: str, port: int) -> tuple[str, int]:
    """Where a connection to host:port really goes."""
    if not table:
        return host, port
    key = host.lower().strip("[]")
    target = table.get((key, port)) or table.get((key, None))
    if target is None:
        return host, port
    return target[0], port if target[1] is None else target[1]
