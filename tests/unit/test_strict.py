from __future__ import annotations

import pytest

from appgw.worker.strict import head_of, inspect


def head(*fields: str, line: str = "POST / HTTP/1.1") -> bytes:
    return ("\r\n".join([line, *fields]) + "\r\n").encode()


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
    verdict = inspect(head(*fields), b"POST", b"1.1")
    assert verdict.problem is None and verdict.reuse_backend


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n",  # bare LF
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
    ],
)
def test_ambiguous_framing_is_refused(raw):
    assert inspect(raw, b"POST", b"1.1").problem


def test_transfer_encoding_in_http_1_0_and_odd_versions_are_refused():
    assert inspect(
        head("Transfer-Encoding: chunked", line="POST / HTTP/1.0"), b"POST", b"1.0"
    ).problem
    assert inspect(head("Content-Length: 1", line="POST / HTTP/0.9"), b"POST", b"0.9").problem
    assert inspect(head("Host: a", line="GET / HTTP/1.2"), b"GET", b"1.2").problem is None


def test_get_with_a_body_passes_but_spoils_the_backend_connection():
    verdict = inspect(head("Host: a", "Content-Length: 3", line="GET / HTTP/1.1"), b"GET", b"1.1")
    assert verdict.problem is None and not verdict.reuse_backend
    plain = inspect(head("Host: a", "Content-Length: 0", line="GET / HTTP/1.1"), b"GET", b"1.1")
    assert plain.reuse_backend


def test_head_of_skips_leading_empty_lines_and_stops_at_the_blank_line():
    data = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nBODY"
    assert head_of(data) == b"GET / HTTP/1.1\r\nHost: a\r\n"
    assert head_of(b"GET / HTTP/1.1\nHost: a\n\nX") == b"GET / HTTP/1.1\nHost: a\n"
