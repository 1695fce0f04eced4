"""A backend's responses on the wire, read with llhttp (httptools): pure, no I/O.

`ResponseReader` (backend side, one per response) turns bytes into events,
in order: interim responses (100 Continue, 103) are dropped, the final
`ResponseHead` comes out. llhttp is fed each head up to its end and no
further: the bytes after the final head wait in `rest`, unparsed, for the
body's relay, which takes them as they are (a Content-Length body is
relayed by count) or feeds them on (`feed_rest`: chunked, or until close),
and then come body pieces and `END`. After a 101 or the head of a response
to HEAD the reader stops for good. Anything that arrives after the response
ended marks it `trailing`: such a connection is never reused.

llhttp keeps no limit on head size; the reader counts what it was fed
while a head is incomplete and gives up past the limit.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import httptools

from appgw.errors import BadGateway, GatewayError
from appgw.worker.codec.request_reader import END, End, Headers, release_parser


class ResponseHead(NamedTuple):
    status: int
    reason: bytes
    headers: Headers
    size: int
    keep_alive: bool  # llhttp: HTTP/1.1 without Connection: close (or 1.0 with keep-alive)


ResponseEvent = ResponseHead | bytes | End


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
        release_parser(self)

    def release(self) -> bytes:
        """The bytes after a 101's head, for its tunnel; the reader is done.

        Its parser, buffers and the head go at once: an open tunnel keeps
        nothing of the HTTP that came before it.
        """
        rest = bytes(self.rest)
        release_parser(self)
        self.final = None
        self.rest = b""
        return rest


class _Stop(Exception):
    """Raised in a callback to stop llhttp after a head it must not read past."""
