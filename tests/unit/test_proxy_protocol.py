"""The PROXY protocol header parser (proxy_protocol.py) and a listener's trust."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
import trio

from appgw.worker.io.proxy_header import Refused, read_header, trust_for
from appgw.worker.io.proxy_protocol import (
    MAX_V2_LENGTH,
    V1_MAX,
    V2_SIGNATURE,
    Malformed,
    ProxyHeader,
    parse,
)

# -- version 1 ------------------------------------------------------------------

TCP4 = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n"
TCP6 = b"PROXY TCP6 2001:db8::10 2001:db8::1 56324 443\r\n"


def test_v1_tcp4() -> None:
    header = parse(TCP4 + b"GET / HTTP/1.1\r\n")
    assert header == ProxyHeader(
        version=1,
        length=len(TCP4),
        source=("192.0.2.10", 56324),
        destination=("198.51.100.1", 443),
    )


def test_v1_tcp6() -> None:
    header = parse(TCP6)
    assert header is not None
    assert header.source == ("2001:db8::10", 56324)
    assert header.destination == ("2001:db8::1", 443)
    assert header.length == len(TCP6)


def test_v1_tcp6_addresses_come_out_in_their_short_form() -> None:
    header = parse(b"PROXY TCP6 2001:0db8:0000::0010 ::ffff:127.0.0.1 1 2\r\n")
    assert header is not None and header.source == ("2001:db8::10", 1)
    assert header.destination == ("::ffff:7f00:1", 2)


@pytest.mark.parametrize(
    "line", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", b"PROXY UNKNOWN x\r\n"]
)
def test_v1_unknown_names_no_client(line: bytes) -> None:
    assert parse(line + b"rest") == ProxyHeader(version=1, length=len(line))


def test_v1_ports_at_their_limits() -> None:
    header = parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n")
    assert header is not None and header.source == ("1.2.3.4", 0)
    assert header.destination == ("5.6.7.8", 65535)


def test_v1_longest_lines_are_accepted() -> None:
    addresses = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " * 2 + b"65535 65535\r\n"
    header = parse(b"PROXY TCP6 " + addresses)
    assert header is not None and header.length == 104
    assert header.source == ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
    unknown = b"PROXY UNKNOWN " + addresses
    assert len(unknown) == V1_MAX
    assert parse(unknown) == ProxyHeader(version=1, length=V1_MAX)


def test_v1_every_prefix_is_incomplete() -> None:
    for cut in range(1, len(TCP4)):
        assert parse(TCP4[:cut]) is None, TCP4[:cut]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
        (b"\x16\x03\x01\x02\x00", "no PROXY protocol header"),  # a TLS ClientHello
        (b"PROXZ", "no PROXY protocol header"),
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "no PROXY protocol header"),
        (b"PROXY\r\n", "no PROXY protocol header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "two addresses and two ports"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "two addresses and two ports"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "two addresses and two ports"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "two addresses and two ports"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "'UDP4' is not TCP4, TCP6 or UNKNOWN"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "not TCP4, TCP6 or UNKNOWN"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "'1.2.3' is not a TCP4 address"),
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "is not a TCP4 address"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "is not a TCP4 address"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "'::1' is not a TCP4 address"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "'1.2.3.4' is not a TCP6 address"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "is not a TCP6 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n", "is not a TCP4 address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "'65536' is not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 099\r\n", "'099' is not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "'-1' is not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "'+1' is not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n", "is not a port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa1\r\n", "is not a port"),  # an Arabic-Indic 1
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare CR or LF"),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "bare CR or LF"),
        (b"PROXY TCP4 1.2.3.4\n", "bare CR or LF"),
        (b"PROXY TCP4 1.2.\r3.4", "bare CR or LF"),
        (b"PROXY " + b"x" * 200, "without CRLF in 107 bytes"),
        (b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n", "without CRLF in 107 bytes"),
    ],
)
def test_v1_malformed(data: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=message.replace("(", r"\(").replace("+", r"\+")):
        parse(data)


def test_v1_malformed_line_is_refused_however_it_is_cut() -> None:
    """A bad line is refused once its CRLF is there, never taken for incomplete forever."""
    bad = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"
    for cut in range(1, len(bad) - 1):
        assert parse(bad[:cut]) is None
    with pytest.raises(Malformed):
        parse(bad)


# -- version 2 ------------------------------------------------------------------


def v2(
    command: int = 1,
    family: int = 0x11,
    addresses: bytes = b"",
    tlvs: bytes = b"",
    version: int = 2,
    length: int | None = None,
) -> bytes:
    body = addresses + tlvs
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + body


def inet(source: str = "192.0.2.10", sport: int = 56324) -> bytes:
    return (
        ipaddress.IPv4Address(source).packed
        + ipaddress.IPv4Address("198.51.100.1").packed
        + struct.pack("!HH", sport, 443)
    )


def inet6(source: str = "2001:db8::10") -> bytes:
    return (
        ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address("2001:db8::1").packed
        + struct.pack("!HH", 56324, 443)
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def test_v2_proxy_inet() -> None:
    data = v2(addresses=inet())
    assert parse(data + b"\x16\x03\x01") == ProxyHeader(
        version=2,
        length=len(data),
        source=("192.0.2.10", 56324),
        destination=("198.51.100.1", 443),
    )


def test_v2_proxy_inet6() -> None:
    data = v2(family=0x21, addresses=inet6())
    header = parse(data)
    assert header is not None and header.length == 16 + 36
    assert header.source == ("2001:db8::10", 56324)
    assert header.destination == ("2001:db8::1", 443)


def test_v2_transport_unspec_is_accepted() -> None:
    header = parse(v2(family=0x10, addresses=inet()))
    assert header is not None and header.source == ("192.0.2.10", 56324)


def test_v2_local_names_no_client_and_ignores_its_block() -> None:
    data = v2(command=0, family=0x00)
    assert parse(data) == ProxyHeader(version=2, length=16, local=True)
    # LOCAL with addresses (HAProxy's health checks send some), even an
    # unknown family: the block is discarded.
    with_block = v2(command=0, family=0xFF, addresses=b"\x01" * 7)
    assert parse(with_block) == ProxyHeader(version=2, length=23, local=True)


def test_v2_unspec_and_unix_proxy_name_no_client() -> None:
    assert parse(v2(family=0x00)) == ProxyHeader(version=2, length=16)
    unix = v2(family=0x31, addresses=b"/run/a".ljust(108, b"\0") + b"/run/b".ljust(108, b"\0"))
    assert parse(unix) == ProxyHeader(version=2, length=16 + 216)


def test_v2_tlvs_are_skipped() -> None:
    tlvs = (
        tlv(0x01, b"h2")  # ALPN
        + tlv(0x02, b"example.com")  # authority
        + tlv(0x04, b"")  # NOOP
        + tlv(0xEA, b"vpce-0123456789abcdef0")  # AWS VPC endpoint
        + tlv(0x20, b"\x05" + b"\0\0\0\0" + tlv(0x21, b"TLSv1.3"))  # SSL, with a sub-TLV
    )
    data = v2(addresses=inet(), tlvs=tlvs)
    header = parse(data + b"GET")
    assert header is not None and header.length == len(data)
    assert header.source == ("192.0.2.10", 56324)


def test_v2_every_prefix_is_incomplete() -> None:
    data = v2(addresses=inet(), tlvs=tlv(0x02, b"example.com"))
    for cut in range(1, len(data)):
        assert parse(data[:cut]) is None, cut


def test_v2_longest_header_is_accepted() -> None:
    filler = tlv(0x04, b"\0" * (MAX_V2_LENGTH - 12 - 3))
    data = v2(addresses=inet(), tlvs=filler)
    assert len(data) == 16 + MAX_V2_LENGTH
    header = parse(data)
    assert header is not None and header.length == len(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (V2_SIGNATURE[:5] + b"X", "no PROXY protocol header"),
        (b"\r\n\r\n\x00\r\nQUIT\r", "no PROXY protocol header"),
        (b"\r\nGET", "no PROXY protocol header"),
        (v2(version=1, addresses=inet()), "version 2 signature with version 1"),
        (v2(version=3, addresses=inet()), "with version 3"),
        (v2(command=2, addresses=inet()), "command 2 is not LOCAL or PROXY"),
        (v2(command=0xF), "command 15 is not LOCAL or PROXY"),
        (v2(family=0x41, addresses=inet()), "family and transport 0x41 unknown"),
        (v2(family=0x13, addresses=inet()), "family and transport 0x13 unknown"),
        (v2(family=0x12, addresses=inet()), "datagram source on a stream listener"),
        (v2(addresses=inet()[:11]), "INET addresses need 12 bytes, the header has 11"),
        (v2(family=0x21, addresses=inet()), "INET6 addresses need 36 bytes"),
        (v2(family=0x31, addresses=inet6()), "UNIX addresses need 216 bytes"),
        (v2(addresses=inet(), length=MAX_V2_LENGTH + 1), "4097 bytes is longer than 4096"),
        (v2(addresses=inet(), length=0xFFFF), "is longer than 4096"),
        (v2(addresses=inet(), tlvs=b"\x01"), "TLV cut short"),
        (v2(addresses=inet(), tlvs=b"\x01\x00"), "TLV cut short"),
        (v2(addresses=inet(), tlvs=b"\x01\x00\x05abc"), "TLV longer than the header"),
        (v2(addresses=inet(), tlvs=tlv(0x04, b"") + b"\x02\x00\x09x"), "TLV longer"),
    ],
)
def test_v2_malformed(data: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=message):
        parse(data)


def test_v2_bad_fixed_part_is_refused_before_its_length_arrives() -> None:
    """A wrong version, command or family is refused at its byte, not at the timeout."""
    with pytest.raises(Malformed):
        parse(V2_SIGNATURE + b"\x31")
    with pytest.raises(Malformed):
        parse(V2_SIGNATURE + b"\x21\x12")
    assert parse(V2_SIGNATURE + b"\x21\x11") is None


def test_v2_header_then_v1_text_is_taken_as_the_client_bytes() -> None:
    """Only one header: what follows a whole one is the client's, whatever it is."""
    data = v2(addresses=inet())
    header = parse(data + TCP4)
    assert header is not None and header.length == len(data)


def test_nothing_yet_is_incomplete() -> None:
    assert parse(b"") is None
    assert parse(memoryview(b"PRO")) is None
    assert parse(bytearray(V2_SIGNATURE[:3])) is None


# -- trusted sources --------------------------------------------------------------


def test_trust_by_network_and_address() -> None:
    trust = trust_for(["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"], timeout=5)
    assert trust.allows("10.1.2.3")
    assert trust.allows("127.0.0.1")
    assert not trust.allows("127.0.0.2")
    assert not trust.allows("192.168.1.1")
    assert trust.allows("2001:db8::5")
    assert not trust.allows("2001:db9::5")
    assert trust.timeout == 5


def test_trust_sees_the_ipv4_client_of_a_dual_stack_socket() -> None:
    trust = trust_for(["127.0.0.0/8"], timeout=5)
    assert trust.allows("::ffff:127.0.0.5")
    assert not trust.allows("::1")


def test_trust_refuses_what_is_not_an_address() -> None:
    trust = trust_for(["0.0.0.0/0", "::/0"], timeout=5)
    assert trust.allows("203.0.113.9") and trust.allows("fe80::1%eth0")
    assert not trust.allows("-")
    assert not trust.allows("")


# -- the read at a connection's start (proxy_accept.read_header) -------------------


async def test_read_header_takes_the_header_and_nothing_after_it() -> None:
    trust = trust_for(["127.0.0.1"], timeout=5)
    ours, theirs = trio.socket.socketpair()
    with ours, theirs:
        await theirs.send(TCP4 + b"GET / HTTP/1.1\r\n")
        with trio.fail_after(5):
            assert await read_header(ours, ("127.0.0.1", 5), trust) == ("192.0.2.10", 56324)
            assert await ours.recv(100) == b"GET / HTTP/1.1\r\n"


async def test_read_header_trickled_byte_by_byte() -> None:
    trust = trust_for(["127.0.0.1"], timeout=5)
    data = v2(addresses=inet(), tlvs=tlv(0x02, b"example.com"))
    ours, theirs = trio.socket.socketpair()
    with ours, theirs:

        async def trickle() -> None:
            for i in range(len(data)):
                await theirs.send(data[i : i + 1])
                await trio.lowlevel.checkpoint()
            await theirs.send(b"\x16\x03\x01")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            with trio.fail_after(5):
                assert await read_header(ours, ("127.0.0.1", 5), trust) == ("192.0.2.10", 56324)
        assert await ours.recv(100) == b"\x16\x03\x01"


async def test_read_header_keeps_the_connection_address_without_a_client() -> None:
    trust = trust_for(["127.0.0.1"], timeout=5)
    ours, theirs = trio.socket.socketpair()
    with ours, theirs:
        await theirs.send(b"PROXY UNKNOWN\r\n")
        assert await read_header(ours, ("127.0.0.1", 5), trust) == ("127.0.0.1", 5)


@pytest.mark.parametrize(
    ("peer", "data", "eof", "reason"),
    [
        ("127.0.0.2", TCP4, False, "untrusted"),
        ("127.0.0.1", b"GET / HTTP/1.1\r\n", False, "malformed"),
        ("127.0.0.1", TCP4[:10], True, "closed"),
        ("127.0.0.1", b"", True, "closed"),
        ("127.0.0.1", TCP4[:10], False, "timeout"),
    ],
)
async def test_read_header_refusals(peer: str, data: bytes, eof: bool, reason: str) -> None:
    trust = trust_for(["127.0.0.1"], timeout=0.2)
    ours, theirs = trio.socket.socketpair()
    with ours, theirs:
        if data:
            await theirs.send(data)
        if eof:
            theirs.shutdown(socket.SHUT_WR)
        with trio.fail_after(5), pytest.raises(Refused) as info:
            await read_header(ours, (peer, 5), trust)
        assert info.value.reason == reason
