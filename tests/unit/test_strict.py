"""The engine's refusals: llhttp (wire.py) plus strict.py, on raw heads."""

from __future__ import annotations

import pytest

from appgw.errors import GatewayError
from appgw.worker.codec.request import Request, read
from appgw.worker.codec.request_reader import END, RequestHead, RequestReader
from appgw.worker.codec.strict import host_problem, inspect


def head(*fields: str, line: str = "POST / HTTP/1.1") -> bytes:
    return ("\r\n".join([line, *fields]) + "\r\n\r\n").encode()


def engine(raw: bytes) -> Request | GatewayError:
    """What the gateway makes of a raw head: the request, or the error it answers."""
    reader = RequestReader(32 * 1024, 32 * 1024)
    reader.feed(raw)
    event = reader.next_event()
    if isinstance(event, GatewayError):
        return event
    assert isinstance(event, RequestHead), event
    try:
        return read(event)
    except GatewayError as exc:
        return exc


@pytest.mark.parametrize(
    "fields",
    [
        ("Host: a", "Content-Length: 5"),
        ("Host: a", "Transfer-Encoding: chunked"),
        ("Host: a", "Transfer-Encoding:  Chunked "),
        ("Host: a", "X-Content-Length-Hint: 5", "Content-Length: 0"),
        ("Host: a",),
    ],
)
def test_clean_heads_pass(fields):
    request = engine(head(*fields))
    assert isinstance(request, Request) and request.reuse_backend


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n",  # bare LF
        head("Host: a", "X-A: b", " folded"),
        head("Host: a", "Transfer_Encoding: chunked"),
        head("Host: a", "Content_Length: 5"),
        head("Host: a", "Transfer---Encoding: chunked"),
        head("Host: a", "Content-Length: 5", "Content-Length: 5"),
        head("Host: a", "Content-Length: 5,5"),
        head("Host: a", "Content-Length: +5"),
        head("Host: a", "Content-Length: 18446744073709551616"),
        head("Host: a", "Transfer-Encoding: gzip, chunked"),
        head("Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
        head("Host: a", "Transfer-Encoding: chunked", "Content-Length: 5"),
        head("Host : a"),  # whitespace before the colon
    ],
)
def test_ambiguous_framing_is_refused(raw):
    answer = engine(raw)
    assert isinstance(answer, GatewayError) and answer.status == 400
    assert not answer.keep_alive


def test_transfer_encoding_in_http_1_0_and_odd_versions_are_refused():
    answer = engine(head("Transfer-Encoding: chunked", line="POST / HTTP/1.0"))
    assert isinstance(answer, GatewayError) and answer.status == 400
    # A body framed in an unknown version is a smuggling attempt: 400, not 505.
    answer = engine(head("Content-Length: 1", line="POST / HTTP/0.9"))
    assert isinstance(answer, GatewayError) and answer.status == 400
    assert inspect(b"POST", "2.0", [(b"content-length", b"1")]).status == 400


@pytest.mark.parametrize(
    "line", ["GET / HTTP/1.2", "GET / HTTP/1.9", "GET / HTTP/0.9", "GET / HTTP/2.0"]
)
def test_versions_other_than_1_0_and_1_1_get_505(line):
    answer = engine(head("Host: a", line=line))
    assert isinstance(answer, GatewayError) and answer.status == 505 and not answer.keep_alive


def test_get_with_a_body_passes_but_spoils_the_backend_connection():
    request = engine(head("Host: a", "Content-Length: 3", line="GET / HTTP/1.1"))
    assert isinstance(request, Request) and not request.reuse_backend
    request = engine(head("Host: a", "Transfer-Encoding: chunked", line="HEAD / HTTP/1.1"))
    assert isinstance(request, Request) and not request.reuse_backend
    plain = engine(head("Host: a", "Content-Length: 0", line="GET / HTTP/1.1"))
    assert isinstance(plain, Request) and plain.reuse_backend


@pytest.mark.parametrize("value", ["a\x01b", "a\x7fb", "a\x1bb", "a\x00b"])
def test_control_characters_in_values_are_refused(value):
    answer = engine(head("Host: a", f"X-Note: {value}", line="GET / HTTP/1.1"))
    assert isinstance(answer, GatewayError) and answer.status == 400


def test_a_tab_in_a_value_is_fine():
    assert isinstance(engine(head("Host: a", "X-Note: a\tb", line="GET / HTTP/1.1")), Request)


@pytest.mark.parametrize(
    "host", [b"loc\x07al", b"loc al", b"a b:80", b"a:b:c", b"host:8o", b"a/b", b"a@b"]
)
def test_hosts_that_are_not_hosts_are_refused(host):
    assert host_problem(host)


@pytest.mark.parametrize(
    "host", [b"example.com", b"example.com:8080", b"127.0.0.1", b"[::1]", b"[::1]:443", b""]
)
def test_valid_hosts_pass(host):
    assert host_problem(host) is None


def test_host_rules_end_to_end():
    assert isinstance(engine(head("Host: loc al", line="GET / HTTP/1.1")), GatewayError)
    assert isinstance(engine(head(line="GET / HTTP/1.1")), GatewayError)  # no Host
    assert isinstance(engine(head("Host: a", "Host: b", line="GET / HTTP/1.1")), GatewayError)
    assert isinstance(engine(head(line="GET / HTTP/1.0")), Request)  # 1.0 may omit it


def test_one_empty_line_before_a_request_line_is_ignored():
    reader = RequestReader(32 * 1024, 32 * 1024)
    reader.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok\r\nGET /2 HTTP/1.1\r\n")
    reader.feed(b"Host: a\r\n\r\n")
    events = []
    while (event := reader.next_event()) is not None:
        events.append(event)
    assert [type(e).__name__ for e in events] == [
        "RequestHead",
        "bytes",
        "End",
        "RequestHead",
        "End",
    ]
    assert events[-2].target == b"/2" and events[-1] is END


def test_uri_over_the_limit_is_414_whatever_the_header_size():
    reader = RequestReader(1000, 100)
    reader.feed(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    answer = reader.next_event()
    assert isinstance(answer, GatewayError) and answer.status == 414
    reader = RequestReader(1000, 100)
    reader.feed(b"GET /" + b"a" * 2000)  # still in the request line, past the head limit
    answer = reader.next_event()
    assert isinstance(answer, GatewayError) and answer.status == 414
    reader = RequestReader(1000, 100)
    reader.feed(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2000)
    answer = reader.next_event()
    assert isinstance(answer, GatewayError) and answer.status == 431
