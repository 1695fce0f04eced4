"""*pure*: the PROXY protocol header (versions 1 and 2), as balancers send it.

A balancer that passes TCP through (HAProxy in TCP mode with `send-proxy` or
`send-proxy-v2`, an AWS NLB, MetalLB, Envoy) may put one header at the very
start of the connection, before anything of the client's (TLS included),
naming the client's address and port. The specification is HAProxy's
`doc/proxy-protocol.txt`. The rules this module keeps:

- `parse(data)` looks at the bytes read so far from a connection's start:
  None while they are a proper beginning of a header (read more), a
  `ProxyHeader` once they hold a whole one (its `length` says how many bytes
  it took; what follows is the client's), `Malformed` as soon as they cannot
  be one. The first bytes decide the version: `PROXY ` for version 1, the
  12-byte signature for version 2; anything else is refused at once (an
  HTTP request or a TLS hello sent straight to the listener, for one).
- Incomplete means every byte given belongs to the header, so a reader may
  consume all it has read and ask for more without ever reading past it.
- Version 1: one line of at most 107 bytes ending in CRLF, fields separated
  by single spaces: `PROXY TCP4|TCP6 <source> <destination> <source port>
  <destination port>`, addresses in their family's form, ports decimal
  0..65535 without leading zeros; `PROXY UNKNOWN` (anything after it up to
  the CRLF is ignored) carries no address.
- Version 2: the signature, version 2 with command LOCAL (0) or PROXY (1),
  a family (UNSPEC, INET, INET6, UNIX) and transport (UNSPEC or STREAM; a
  datagram source cannot be a stream connection), a length, the addresses,
  then TLVs, each framed exactly to the end and skipped. At most
  MAX_V2_LENGTH bytes after the fixed part. LOCAL's family and block are
  ignored, as the specification says.
- A header without a usable client address (v1 UNKNOWN, v2 LOCAL, UNSPEC or
  UNIX) has `source` None: the connection's own address stands (the
  balancer's health checks come so).
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest version 1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version and command, family and transport, length
MAX_V2_LENGTH = 4096  # address block and TLVs: more is refused

_V2_FAMILIES = {0x0: "UNSPEC", 0x1: "INET", 0x2: "INET6", 0x3: "UNIX"}
_V2_ADDRESS_SIZE = {"UNSPEC": 0, "INET": 12, "INET6": 36, "UNIX": 216}
_V2_TRANSPORTS = {0x0: "UNSPEC", 0x1: "STREAM", 0x2: "DGRAM"}

__all__ = [
    "MAX_V2_LENGTH",
    "V1_MAX",
    "V2_SIGNATURE",
    "Malformed",
    "ProxyHeader",
    "parse",
]


class Malformed(ValueError):
    """The bytes are not a PROXY protocol header; the message says why."""


@attrs.frozen
class ProxyHeader:
    """A whole header: what it says of the client, and how long it was."""

    version: int  # 1 or 2
    length: int  # bytes the header took, from the connection's start
    source: tuple[str, int] | None = None  # the client; None: the connection's own
    destination: tuple[str, int] | None = None  # the address the client connected to
    local: bool = False  # v2 LOCAL: the balancer's own connection (health checks)


def parse(data: bytes | bytearray | memoryview) -> ProxyHeader | None:
    """The header at the start of `data`, None if more bytes are needed.

    Raises Malformed as soon as `data` cannot begin a valid header.
    """
    data = bytes(data)
    if not data:
        return None
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    raise Malformed("no PROXY protocol header")


# -- version 1 ------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    head = data[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(head):
        raise Malformed("no PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise Malformed(f"version 1 header without CRLF in {V1_MAX} bytes")
        bare = data.find(b"\n")
        if bare >= 0 or b"\r" in data[:-1]:
            raise Malformed("version 1 header with a bare CR or LF")
        return None
    line = data[:end]
    if b"\n" in line or b"\r" in line:
        raise Malformed("version 1 header with a bare CR or LF")
    if len(line) < len(V1_PREFIX):
        raise Malformed("no PROXY protocol header")
    length = end + 2
    rest = line[len(V1_PREFIX) :]
    if rest == b"UNKNOWN" or rest.startswith(b"UNKNOWN "):
        return ProxyHeader(version=1, length=length)
    fields = rest.split(b" ")
    if len(fields) != 5:
        raise Malformed("version 1 header needs a protocol, two addresses and two ports")
    protocol, source, destination, source_port, destination_port = fields
    if protocol == b"TCP4":
        kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = ipaddress.IPv4Address
    elif protocol == b"TCP6":
        kind = ipaddress.IPv6Address
    else:
        raise Malformed(f"version 1 protocol {_show(protocol)} is not TCP4, TCP6 or UNKNOWN")
    return ProxyHeader(
        version=1,
        length=length,
        source=(_v1_address(source, kind), _v1_port(source_port)),
        destination=(_v1_address(destination, kind), _v1_port(destination_port)),
    )


def _v1_address(
    text: bytes, kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
) -> str:
    family = "TCP4" if kind is ipaddress.IPv4Address else "TCP6"
    try:
        decoded = text.decode("ascii")
        if "%" in decoded:  # a scope is no part of an address on the wire
            raise ValueError(decoded)
        return str(kind(decoded))
    except (UnicodeDecodeError, ValueError):
        raise Malformed(f"{_show(text)} is not a {family} address") from None


def _v1_port(text: bytes) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 5 or text[:1] == b"0" != text:
        raise Malformed(f"{_show(text)} is not a port")
    port = int(text)
    if port > 65535:
        raise Malformed(f"{_show(text)} is not a port")
    return port


def _show(text: bytes) -> str:
    return repr(text.decode("latin-1")[:40])


# -- version 2 ------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    signature = data[: len(V2_SIGNATURE)]
    if not V2_SIGNATURE.startswith(signature):
        raise Malformed("no PROXY protocol header")
    if len(data) > 12:
        version, command = data[12] >> 4, data[12] & 0x0F
        if version != 2:
            raise Malformed(f"version 2 signature with version {version}")
        if command not in (0, 1):
            raise Malformed(f"version 2 command {command} is not LOCAL or PROXY")
    local = len(data) > 12 and data[12] & 0x0F == 0
    if len(data) > 13 and not local:  # LOCAL: the family is ignored
        family = _V2_FAMILIES.get(data[13] >> 4)
        transport = _V2_TRANSPORTS.get(data[13] & 0x0F)
        if family is None or transport is None:
            raise Malformed(f"version 2 address family and transport 0x{data[13]:02x} unknown")
        if transport == "DGRAM":
            raise Malformed("version 2 header for a datagram source on a stream listener")
    if len(data) < V2_FIXED:
        return None
    (size,) = struct.unpack_from("!H", data, 14)
    if size > MAX_V2_LENGTH:
        raise Malformed(f"version 2 header of {size} bytes is longer than {MAX_V2_LENGTH}")
    length = V2_FIXED + size
    if len(data) < length:
        return None
    if local:  # the balancer's own connection: its address block is discarded
        return ProxyHeader(version=2, length=length, local=True)
    body = data[V2_FIXED:length]
    family = _V2_FAMILIES[data[13] >> 4]
    needed = _V2_ADDRESS_SIZE[family]
    if len(body) < needed:
        raise Malformed(f"version 2 {family} addresses need {needed} bytes, the header has {size}")
    _check_tlvs(body[needed:])
    if family in ("UNSPEC", "UNIX"):
        return ProxyHeader(version=2, length=length)
    if family == "INET":
        source = str(ipaddress.IPv4Address(body[0:4]))
        destination = str(ipaddress.IPv4Address(body[4:8]))
        ports = struct.unpack_from("!HH", body, 8)
    else:
        source = str(ipaddress.IPv6Address(body[0:16]))
        destination = str(ipaddress.IPv6Address(body[16:32]))
        ports = struct.unpack_from("!HH", body, 32)
    return ProxyHeader(
        version=2, length=length, source=(source, ports[0]), destination=(destination, ports[1])
    )


def _check_tlvs(tlvs: bytes) -> None:
    """TLVs are skipped, but each must be framed whole within the header."""
    at = 0
    while at < len(tlvs):
        if len(tlvs) - at < 3:
            raise Malformed("version 2 TLV cut short")
        (size,) = struct.unpack_from("!H", tlvs, at + 1)
        at += 3 + size
        if at > len(tlvs):
            raise Malformed("version 2 TLV longer than the header")
