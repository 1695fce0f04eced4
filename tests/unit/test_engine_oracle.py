"""h11 as an oracle for the engine (llhttp + strict.py), with hypothesis.

Generated and mutated request heads go to both. They must agree on accept
or reject and, when both accept, on framing (Content-Length or chunked).
Every way they may disagree is listed in DISAGREEMENTS with the reason the
engine's answer is the safer one; each is a case where the engine refuses
what h11 would take. A head the engine takes and h11 refuses fails the test.
"""

from __future__ import annotations

import re

import h11
from hypothesis import example, given, settings
from hypothesis import strategies as st

from appgw.errors import GatewayError
from appgw.worker.codec.request import Request, read
from appgw.worker.codec.request_reader import RequestHead, RequestReader

settings.register_profile("oracle", deadline=500, max_examples=400)
settings.load_profile("oracle")


def _names(raw: bytes) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in raw.split(b"\n")[1:] if b":" in line]


def _version(raw: bytes) -> bytes:
    return raw.split(b"\n", 1)[0].rstrip(b"\r").rpartition(b"/")[2]


# (why the engine refuses what h11 takes, how to recognise such a head)
DISAGREEMENTS = [
    (
        "a control character (DEL too) in a field value: RFC 9110 §5.5 excludes it",
        lambda raw: re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", raw) is not None,
    ),
    (
        "a version other than 1.0 and 1.1: 505, never forwarded as HTTP/1.1",
        lambda raw: _version(raw) not in (b"1.0", b"1.1"),
    ),
    (
        "a bare LF ends a line: a backend may split lines differently",
        lambda raw: re.search(rb"[^\r]\n", raw) is not None,
    ),
    (
        "obsolete line folding: backends unfold it differently (RFC 9112 §5.2)",
        lambda raw: re.search(rb"\n[ \t]", raw) is not None,
    ),
    (
        "a header name imitating a framing header: some servers normalise _ to -",
        lambda raw: any(
            n.replace(b"_", b"-") in (b"content-length", b"transfer-encoding")
            and n not in (b"content-length", b"transfer-encoding")
            for n in _names(raw)
        ),
    ),
    (
        "a Content-Length that is not one plain number (h11 merges 5,5): ambiguous",
        lambda raw: (
            any(
                not m.strip(b" \t").isdigit() or len(m.strip(b" \t")) > 15
                for m in re.findall(rb"(?im)^content-length:([^\r\n]*)", raw)
            )
            or len(re.findall(rb"(?im)^content-length:", raw)) > 1
        ),
    ),
    (
        "Transfer-Encoding in HTTP/1.0: 1.0 has no chunked framing",
        lambda raw: _version(raw) == b"1.0" and b"transfer-encoding:" in raw.lower(),
    ),
    (
        "a Host that is not a host (spaces, controls, junk): routing and backends disagree",
        lambda raw: any(
            re.search(rb"[^A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]", v.strip(b" \t"))
            for v in re.findall(rb"(?im)^host:([^\r\n]*)", raw)
        ),
    ),
]


def engine(raw: bytes) -> Request | None:
    reader = RequestReader(32 * 1024, 32 * 1024)
    reader.feed(raw)
    event = reader.next_event()
    if not isinstance(event, RequestHead):
        return None
    try:
        return read(event)
    except GatewayError:
        return None


def oracle(raw: bytes) -> h11.Request | None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    return event if isinstance(event, h11.Request) else None


def framing_of(request: h11.Request) -> tuple[int, bool]:
    chunked = any(name == b"transfer-encoding" for name, _ in request.headers)
    length = 0
    for name, value in request.headers:
        if name == b"content-length" and not chunked:
            length = int(value)
    return length, chunked


methods = st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS"])
versions = st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0", b"1.2", b"0.9", b"2.0"])
header_names = st.sampled_from(
    [
        b"Host",
        b"Content-Length",
        b"Transfer-Encoding",
        b"X-Note",
        b"Connection",
        b"Expect",
        b"Transfer_Encoding",
        b"Content_Length",
        b"Cookie",
    ]
)
header_values = st.one_of(
    st.sampled_from(
        [
            b"5",
            b"0",
            b" 7 ",
            b"5,5",
            b"+5",
            b"chunked",
            b"Chunked",
            b"gzip, chunked",
            b"chunked, gzip",
            b"identity",
            b"example.com",
            b"example.com:8080",
            b"exa mple.com",
            b"keep-alive",
            b"close",
            b"100-continue",
            b"a\tb",
        ]
    ),
    st.binary(max_size=12).map(lambda v: bytes(c for c in v if c not in b"\r\n")),
)
separators = st.sampled_from([b": ", b":", b": ", b" : ", b":\t"])


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    method = draw(methods)
    version = draw(versions)
    lines = [method + b" /path?q=1 HTTP/" + version]
    if draw(st.booleans()):
        lines.append(b"Host: example.com")
    for _ in range(draw(st.integers(0, 4))):
        lines.append(draw(header_names) + draw(separators) + draw(header_values))
    if draw(st.integers(0, 9)) == 0:
        lines.append(b" folded")
    ending = b"\n" if draw(st.integers(0, 9)) == 0 else b"\r\n"
    return ending.join(lines) + b"\r\n\r\n"


def known_disagreement(raw: bytes) -> str | None:
    for reason, applies in DISAGREEMENTS:
        if applies(raw):
            return reason
    return None


@given(heads())
@example(b"GET / HTTP/1.1\r\nHost: loc\x07al\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n")
@example(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n")
@example(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
@example(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: a\x7fb\r\n\r\n")
def test_engine_agrees_with_h11_or_is_the_safer_one(raw: bytes) -> None:
    ours = engine(raw)
    theirs = oracle(raw)
    if ours is not None and theirs is not None:
        assert (ours.content_length or 0, ours.chunked) == framing_of(theirs), raw
        return
    if ours is None and theirs is None:
        return
    assert ours is None, f"the engine takes a head h11 refuses: {raw!r}"
    assert known_disagreement(raw), (
        f"the engine refuses a head h11 takes, for no listed reason: {raw!r}"
    )


def test_every_listed_disagreement_happens() -> None:
    samples = [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: a\x7fb\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n",
    ]
    for (reason, applies), raw in zip(DISAGREEMENTS, samples, strict=True):
        assert applies(raw), reason
        assert engine(raw) is None, reason
        assert oracle(raw) is not None, reason
