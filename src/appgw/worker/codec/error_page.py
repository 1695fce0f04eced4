"""The gateway's own small error pages."""

from __future__ import annotations

from http import HTTPStatus

_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{code} {phrase}</title></head>\n"
    '<body style="font-family:sans-serif;text-align:center">'
    "<h1>{code} {phrase}</h1><p>{explanation}</p><hr><p>appgw</p></body></html>\n"
)

_EXPLANATIONS = {
    400: "The request could not be understood.",
    404: "No listener or rule serves this host.",
    408: "The request was not received in time.",
    413: "The request body is larger than this gateway accepts.",
    414: "The request URI is longer than this gateway accepts.",
    426: "This endpoint needs WebSocket version 13.",
    431: "The request headers are larger than this gateway accepts.",
    502: "The backend could not be reached or sent an invalid response.",
    503: "The gateway is shutting down.",
    504: "The backend did not respond in time.",
}


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def body(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    text = _EXPLANATIONS.get(status, "")
    return _PAGE.format(code=status, phrase=phrase, explanation=text).encode()


def head(
    status: int,
    length: int,
    close: bool,
    extra: tuple[tuple[bytes, bytes], ...],
    content_type: bytes = b"text/html; charset=utf-8",
) -> bytes:
    """The head of the gateway's own answer: `length` bytes of page, `extra`
    headers, and Connection: close when the connection ends with it."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason(status))]
    lines += [name + b": " + value + b"\r\n" for name, value in extra]
    lines.append(b"content-type: " + content_type + b"\r\n")
    lines.append(b"content-length: %d\r\ncache-control: no-store\r\n" % length)
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
