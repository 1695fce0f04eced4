"""A listener's PROXY protocol: who may send a header, and reading it.

On a listener with `proxy_protocol` on, every connection must come from one
of the trusted sources (addresses or networks) and begin with a PROXY
protocol header (proxy_protocol.py parses it); the client it names is then
the connection's peer for everything after (X-Forwarded-For, the access
log, server variables). Anything else is refused: the connection is closed,
one log line says why, and `appgw_proxy_protocol_refused_total` counts it.

The header is read before anything else, TLS included, and never past its
end: the socket is peeked at, and only the header's bytes are taken from
it, so what follows (a TLS hello, a request) is read by the connection as
if the header had never been there. The read is bounded in size (the
parser refuses what cannot be a header, and a whole one is short) and in
time (the listener's header timeout): a slow or garbage header holds
nothing but its own connection, and not for long.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import attrs
import trio

from appgw.worker.io.proxy_protocol import MAX_V2_LENGTH, V2_FIXED, Malformed, ProxyHeader, parse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PEEK_SIZE = V2_FIXED + MAX_V2_LENGTH  # the longest header either version allows

__all__ = ["Refused", "Trust", "read_header", "trust_for"]


class Refused(Exception):
    """A connection that may not pass: `reason` is the metric's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # "untrusted" | "malformed" | "timeout" | "closed"
        self.detail = detail


@attrs.frozen
class Trust:
    """A listening socket's PROXY protocol: the sources allowed to send a header."""

    networks: tuple[Network, ...]
    timeout: float  # seconds for the whole header

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket's IPv4 client
        return any(ip in network for network in self.networks)


def trust_for(sources: Iterable[str], timeout: float) -> Trust:
    """The trusted sources as networks (an address alone is its own network).

    The configuration was validated: every entry parses.
    """
    return Trust(tuple(ipaddress.ip_network(s, strict=False) for s in sources), timeout)


async def read_header(
    conn: trio.socket.SocketType, peer: tuple[str, int], trust: Trust
) -> tuple[str, int]:
    """The client's address and port for this connection, from its header.

    The connection's own address when the header names none (v1 UNKNOWN, v2
    LOCAL). Raises Refused for a source that is not trusted, a malformed
    header, none within the timeout, or a connection closed before its end.
    """
    if not trust.allows(peer[0]):
        raise Refused("untrusted", f"{peer[0]} is not a trusted source")
    header: ProxyHeader | None = None
    taken = bytearray()
    with trio.move_on_after(trust.timeout):
        while header is None:
            try:
                seen = await conn.recv(PEEK_SIZE - len(taken), socket.MSG_PEEK)
            except OSError as exc:
                raise Refused("closed", f"connection failed before its header: {exc}") from None
            if not seen:
                raise Refused("closed", "connection closed before its header")
            try:
                header = parse(taken + seen)
            except Malformed as exc:
                raise Refused("malformed", str(exc)) from None
            # Incomplete: all of it is header. Whole: take exactly its bytes.
            want = len(seen) if header is None else header.length - len(taken)
            taken += await _take(conn, want)
    if header is None:
        raise Refused("timeout", f"no whole header within {trust.timeout:g} s")
    return header.source or peer


async def _take(conn: trio.socket.SocketType, size: int) -> bytes:
    """`size` bytes already peeked at: they are there, one read takes them."""
    try:
        data = await conn.recv(size)
    except OSError as exc:
        raise Refused("closed", f"connection failed in its header: {exc}") from None
    if len(data) != size:  # the kernel kept what it showed: never happens
        raise Refused("closed", "connection lost its header")
    return data
