"""HTTP/1.1 on the wire, read with llhttp (httptools): pure, no I/O.

Two readers turn bytes into events, in order:

- `RequestReader` (client side, one per connection): a `RequestHead` per
  request, then its body pieces (bytes), then `END`. Pipelined requests
  simply queue up behind each other. llhttp skips empty lines before a
  request line (RFC 9112 §2.2). A head that breaks a rule or a limit
  becomes a `GatewayError` event (400, 414, 431, 505) and the reader stops.
  A head that asks for an upgrade ends the HTTP stream for llhttp: the
  bytes after it are held in `upgrade_rest`, for the tunnel, or handed
  back with `resume` if no tunnel starts.
- `ResponseReader` (backend side, one per response): interim responses
  (100 Continue, 103) are dropped, the final `ResponseHead` comes out.
  llhttp is fed each head up to its end and no further: the bytes after
  the final head wait in `rest`, unparsed, for the body's relay, which
  takes them as they are (a Content-Length body is relayed by count) or
  feeds them on (`feed_rest`: chunked, or until close), and then come body
  pieces and `END`. After a 101 or the head of a response to HEAD the
  reader stops for good. Anything that arrives after the response ended
  marks it `trailing`: such a connection is never reused.

llhttp keeps no limit on head size; the readers count what they were fed
while a head is incomplete and give up past the limit.
"""

from __future__ import annotations

import re
from collections import deque
from typing import NamedTuple

import httptools

from appgw.errors import BadGateway, BadRequest, GatewayError, VersionNotSupported

Headers = list[tuple[bytes, bytes]]


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END = _End()


class RequestHead(NamedTuple):
    """A request head as llhttp read it (names lowercased)."""

    method: bytes
    target: bytes
    version: str
    headers: Headers
    upgrade: bool  # llhttp saw Connection: upgrade with Upgrade (or CONNECT)
    size: int  # bytes of request line and fields, about


class ResponseHead(NamedTuple):
    status: int
    reason: bytes
    headers: Headers
    size: int
    keep_alive: bool  # llhttp: HTTP/1.1 without Connection: close (or 1.0 with keep-alive)


RequestEvent = RequestHead | bytes | _End | GatewayError
ResponseEvent = ResponseHead | bytes | _End


# A well-formed request line whose version is one the gateway does not speak.
_OTHER_VERSION = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ ]+ HTTP/[0-9]\.[0-9]\r\n")


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

    # -- llhttp's callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
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
        self._events.append(
            RequestHead(
                parser.get_method(),
                url,
                parser.get_http_version(),
                self._headers,
                parser.should_upgrade(),
                size,
            )
        )

    def on_body(self, body: bytes) -> None:
        self._events.append(body)

    def on_message_complete(self) -> None:
        self._events.append(END)

    # -- feeding and reading ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.failed or self.upgrade_rest is not None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_rest = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            self._fail(_error_for(exc, data))
            return
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
        _release(self)

    def release(self) -> bytes:
        """The bytes after an upgrade request, for its tunnel; the reader is done.

        Its parser and buffers go at once: an open tunnel keeps nothing of
        the HTTP that came before it.
        """
        rest = self.upgrade_rest or b""
        _release(self)
        return rest


class ResponseReader:
    """Backend bytes in, response events out (see the module's docstring)."""

    __slots__ = (
        "_parser",
        "_events",
        "_reason",
        "_headers",
        "_size",
        "_raw",
        "_fed",
        "_head_start",
        "_heads",
        "_head_request",
        "_max_head",
        "_label",
        "final",
        "complete",
        "stopped",
        "trailing",
        "rest",
    )

    def __init__(self, head_request: bool, max_head: int, label: str) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._events: deque[ResponseEvent] = deque()
        self._reason = b""
        self._headers: Headers = []
        self._size = 0
        # Everything read until the final head is complete: usually the one
        # read that brought the head, kept as it is (no copy).
        self._raw = b""
        self._fed = 0  # how much of _raw llhttp has been fed
        self._head_start = 0  # where in _raw the head being read begins
        self._heads = 0  # heads completed within _raw
        self._head_request = head_request
        self._max_head = max_head
        self._label = label
        self.final: ResponseHead | None = None
        self.complete = False  # the response ended (END was queued)
        self.stopped = False  # the reader stopped after the head (101, HEAD)
        self.trailing = False  # bytes arrived after the response ended
        # Bytes past the final head, not parsed: a view of the read that
        # brought the head (a body is not copied out of it).
        self.rest: bytes | memoryview = b""

    # -- llhttp's callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.trailing = True
        self._reason = b""
        self._headers = []
        self._size = 0

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))
        self._size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self._heads += 1
        if self.complete:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim: 100 Continue is answered by the gateway itself
        head = ResponseHead(
            status,
            self._reason,
            self._headers,
            self._size + len(self._reason),
            self._parser.should_keep_alive(),
        )
        if head.size > self._max_head:
            raise BadGateway(f"{self._label} sent a response head of {head.size} bytes")
        self.final = head
        self._events.append(head)
        if status == 101 or self._head_request:
            self.stopped = True
            raise _Stop

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self._events.append(body)

    def on_message_complete(self) -> None:
        if self.final is not None and not self.complete:
            self.complete = True
            self._events.append(END)

    # -- feeding and reading ---------------------------------------------------

    def feed(self, data: bytes | memoryview) -> None:
        """Parse backend bytes; raises BadGateway for a response llhttp refuses.

        While a head is incomplete, llhttp is fed up to the end of each head
        (the first empty line) and no further; what follows the final head
        is kept in `rest`. (A head that ends otherwise, if llhttp takes one,
        is fed whole, body and all, and its body comes out as events.)
        """
        if self.stopped or self.complete:
            if data:
                self.trailing = True
            return
        if self.final is not None:
            self._parse(data)
            return
        raw = self._raw = self._raw + data if self._raw else bytes(data)
        fed = self._fed
        while self.final is None and not self.stopped:
            end = raw.find(b"\r\n\r\n", max(fed - 3, self._head_start))
            stop = len(raw) if end < 0 else end + 4
            if stop > fed:
                self._parse(raw if fed == 0 and stop == len(raw) else raw[fed:stop])
                fed = stop
            if end < 0:
                break
            self._head_start = stop
        if self.final is None:
            self._fed = fed
            if len(raw) > self._max_head + 1024:
                raise BadGateway(f"{self._label} sent a response head over {self._max_head} bytes")
            return
        if not self.stopped:
            self.rest = memoryview(raw)[fed:] if fed < len(raw) else b""
        self._raw = b""

    def feed_rest(self) -> None:
        """Parse the bytes that came after the final head (a body llhttp reads)."""
        rest, self.rest = self.rest, b""
        if rest:
            self.feed(rest)

    def _parse(self, data: bytes | memoryview) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._stop()
        except httptools.HttpParserCallbackError as exc:
            if not self.stopped:
                cause = exc.__context__
                if isinstance(cause, GatewayError):
                    raise cause from None
                raise BadGateway(f"{self._label} sent an invalid response: {exc}") from None
            self._stop()
        except httptools.HttpParserError as exc:
            if self.complete:
                self.trailing = True
            else:
                raise BadGateway(f"{self._label} sent an invalid response: {exc}") from None

    def _stop(self) -> None:
        """Stopped after the final head: keep what followed it."""
        raw = self._raw
        position = 0
        for _ in range(self._heads):
            while raw[position : position + 1] in (b"\r", b"\n"):
                position += 1
            position = raw.find(b"\r\n\r\n", position) + 4
        self.rest = raw[position:]
        self.stopped = True
        if self._head_request and self.final is not None and self.final.status != 101:
            self.complete = True
            self.trailing = bool(self.rest)
            self._events.append(END)
        self._raw = b""

    def next_event(self) -> ResponseEvent | None:
        """The next event, or None when more bytes are needed."""
        if not self._events:
            return None
        return self._events.popleft()

    def take_events(self) -> deque[ResponseEvent]:
        """Every queued event at once (the body pieces of one read, and maybe END)."""
        events, self._events = self._events, deque()
        return events

    def close(self) -> None:
        """The response is relayed: the reader lets go of its parser."""
        _release(self)

    def release(self) -> bytes:
        """The bytes after a 101's head, for its tunnel; the reader is done.

        Its parser, buffers and the head go at once: an open tunnel keeps
        nothing of the HTTP that came before it.
        """
        rest = bytes(self.rest)
        _release(self)
        self.final = None
        self.rest = b""
        return rest


_SPENT: deque[object] = deque(maxlen=0)  # what a released reader holds: nothing


def _release(reader: RequestReader | ResponseReader) -> None:
    """Drop a reader's parser (and the cycle it makes with the reader) and buffers.

    The parser holds the reader's callbacks and the reader holds the
    parser: a reader that is just dropped is freed by the cyclic garbage
    collector only, which is what made most of its work under load.
    """
    try:
        del reader._parser  # any later use fails loudly
    except AttributeError:
        return  # released already
    reader._events = _SPENT  # type: ignore[assignment]
    reader._headers = []


class _Stop(Exception):
    """Raised in a callback to stop llhttp after a head it must not read past."""
