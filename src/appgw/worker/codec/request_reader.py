"""HTTP/1.1 on the wire, read with llhttp (httptools): pure, no I/O.

Two readers turn bytes into events, in order: `RequestReader` here, and
`ResponseReader` in response_wire.py.

- `RequestReader` (client side, one per connection): a `RequestHead` per
  request, then its body pieces (bytes), then `END`. Pipelined requests
  simply queue up behind each other. llhttp skips empty lines before a
  request line (RFC 9112 §2.2); a bare CR there is refused (400) where a
  read begins between two requests (behind a pipelined request in the same
  read, llhttp skips it), and so is a request line without a version
  (HTTP/0.9's `GET /x`). A head that breaks a rule or a limit becomes a
  `GatewayError` event (400, 414, 431, 505) and the reader stops.
  A head that asks for an upgrade ends the HTTP stream for llhttp: the
  bytes after it are held in `upgrade_rest`, for the tunnel, or handed
  back with `resume` if no tunnel starts.

llhttp keeps no limit on head size; the readers count what they were fed
while a head is incomplete and give up past the limit.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, NamedTuple, Protocol

import httptools

from appgw.errors import BadRequest, GatewayError, VersionNotSupported

Headers = list[tuple[bytes, bytes]]


class End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = End()


class RequestHead(NamedTuple):
    """A request head as llhttp read it (names lowercased)."""

    method: bytes
    target: bytes
    version: str
    headers: Headers
    upgrade: bool  # llhttp saw Connection: upgrade with Upgrade (or CONNECT)
    size: int  # bytes of request line and fields, about


RequestEvent = RequestHead | bytes | End | GatewayError


# A well-formed request line whose version is one the gateway does not speak.
_OTHER_VERSION = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ ]+ HTTP/[0-9]\.[0-9]\r\n")


def _versioned(data: bytes, url: bytes) -> bool:
    """Whether the request line of `url` in `data` carries a version (HTTP/0.9
    written out), as opposed to none at all; True when it cannot be told."""
    at = data.find(url) if url else -1
    return at < 0 or data[at + len(url) : at + len(url) + 6] == b" HTTP/"


def _bare_cr(data: bytes, open_cr: bool) -> tuple[bool, bool]:
    """Before a request line only empty lines (CRLF, LF) may come: (whether a
    bare CR came, whether `data` ends in a CR whose LF is still to come)."""
    for byte in data:
        if open_cr:
            if byte != 10:
                return True, False
            open_cr = False
        elif byte == 13:
            open_cr = True
        elif byte != 10:
            return False, False  # the request line begins
    return False, open_cr


def _error_for(exc: httptools.HttpParserError, data: bytes) -> GatewayError:
    text = str(exc) or type(exc).__name__
    if "version" in text.lower() and _OTHER_VERSION.match(data.lstrip(b"\r\n")):
        return VersionNotSupported(f"HTTP version not supported: {text}")
    return BadRequest(f"malformed request: {text}")


class RequestReader:
    """Client bytes in, request events out (see the module's docstring)."""

    __slots__ = (
        "_parser",
        "_events",
        "_url",
        "_headers",
        "_size",
        "_in_head",
        "_fed",
        "_max_head",
        "_max_uri",
        "failed",
        "upgrade_rest",
        "_between",
        "_open_cr",
        "_data",
    )

    def __init__(self, max_head: int, max_uri: int) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._events: deque[RequestEvent] = deque()
        self._url = b""
        self._headers: Headers = []
        self._size = 0
        self._in_head = False
        self._fed = 0  # bytes fed since the current head began (while incomplete)
        self._max_head = max_head
        self._max_uri = max_uri
        self.failed = False  # a head was refused; nothing more is read
        self.upgrade_rest: bytes | None = None  # bytes after an upgrade request
        self._between = True  # no request begun since the last one ended
        self._open_cr = False  # a CR before a request line, its LF not read yet
        self._data = b""  # the bytes being fed (for a request line's version)

    # -- llhttp's callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._between = False
        self._in_head = True
        self._url = b""
        self._headers = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._fed = 0
        parser = self._parser
        url = self._url
        size = self._size + len(url) + 14
        version = parser.get_http_version()
        if version == "0.9" and not _versioned(self._data, url):
            self._fail(BadRequest("request line without an HTTP version"))
            return
        self._events.append(
            RequestHead(
                parser.get_method(),
                url,
                version,
                self._headers,
                parser.should_upgrade(),
                size,
            )
        )

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._between = True
        self._events.append(END)

    # -- feeding and reading ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.failed or self.upgrade_rest is not None:
            return
        if self._between and (self._open_cr or data[:1] in (b"\r", b"\n")):
            bare, self._open_cr = _bare_cr(data, self._open_cr)
            if bare:
                self._fail(BadRequest("a bare CR before the request line"))
                return
        self._data = data
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_rest = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            self._fail(_error_for(exc, data))
            return
        finally:
            self._data = b""
        if self._in_head:
            self._fed += len(data)
            if len(self._url) > self._max_uri:
                self._fail(GatewayError("request line too long", status=414, keep_alive=False))
            elif self._fed > self._max_head:
                self._fail(GatewayError("request head too large", status=431, keep_alive=False))

    def _fail(self, error: GatewayError) -> None:
        self.failed = True
        self._events.append(error)

    def next_event(self) -> RequestEvent | None:
        """The next event, or None when more bytes are needed."""
        if not self._events:
            return None
        event = self._events.popleft()
        if isinstance(event, RequestHead):
            if len(event.target) > self._max_uri:
                self.failed = True
                self._events.clear()
                return GatewayError("request line too long", status=414, keep_alive=False)
            if event.size > self._max_head:
                self.failed = True
                self._events.clear()
                return GatewayError("request head too large", status=431, keep_alive=False)
        return event

    @property
    def pending(self) -> bool:
        """Whether events are queued (read from the client, not yet taken)."""
        return bool(self._events)

    def has_end(self) -> bool:
        """Whether the end of the current request is already read (queued)."""
        return any(event is END for event in self._events)

    def resume(self) -> None:
        """Go on reading HTTP after an upgrade request that did not become a tunnel."""
        rest, self.upgrade_rest = self.upgrade_rest, None
        if rest:
            self.feed(rest)

    @property
    def idle(self) -> bool:
        """Whether nothing of a next request has been read (no queued event, no partial head)."""
        return not self._events and not self._in_head

    def close(self) -> None:
        """The connection is done: the reader lets go of its parser."""
        release_parser(self)

    def release(self) -> bytes:
        """The bytes after an upgrade request, for its tunnel; the reader is done.

        Its parser and buffers go at once: an open tunnel keeps nothing of
        the HTTP that came before it.
        """
        rest = self.upgrade_rest or b""
        release_parser(self)
        return rest


SPENT: deque[object] = deque(maxlen=0)  # what a released reader holds: nothing


class Parsed(Protocol):
    """A reader with an llhttp parser (RequestReader, ResponseReader)."""

    _parser: Any
    _events: Any
    _headers: Headers


def release_parser(reader: Parsed) -> None:
    """Drop a reader's parser (and the cycle it makes with the reader) and buffers.

    The parser holds the reader's callbacks and the reader holds the
    parser: a reader that is just dropped is freed by the cyclic garbage
    collector only, which is what made most of its work under load.
    """
    try:
        del reader._parser  # any later use fails loudly
    except AttributeError:
        return  # released already
    reader._events = SPENT
    reader._headers = []
