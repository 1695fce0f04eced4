"""Response bodies from a backend to a client.

The response's framing is decided once from its head (`framing`): none
(HEAD, 204, 304), a Content-Length, chunked, or until the backend closes.
A Content-Length body is relayed by byte count: once the head is parsed,
bytes go from one socket to the other without passing through a parser.
A chunked body is decoded by llhttp (which checks every chunk size) and
framed again as one chunk per read; a body that ends at the backend's close
is relayed as it comes. Towards an HTTP/1.0 client, chunked and
close-delimited bodies go out unframed and the connection closes after.

The bytes for the client go through readahead.py, which reads ahead of a
client slower than its backend when response buffering is on.

Every wait on the backend has the setting's request timeout; once the
response has started, a backend that breaks off or stalls aborts the client
connection (BackendAborted), the only honest signal left.
"""

from __future__ import annotations

from collections.abc import Callable

from appgw.errors import BackendAborted, BadGateway
from appgw.worker.codec.request_reader import END
from appgw.worker.codec.response_reader import ResponseReader
from appgw.worker.exchange import readahead
from appgw.worker.exchange.budgets import Budget
from appgw.worker.exchange.downstream import Downstream
from appgw.worker.io.endpoint import Expired
from appgw.worker.upstream.connections import BackendConnection

NO_BODY = 0
LENGTH = 1
CHUNKED = 2
UNTIL_CLOSE = 3


def framing(status: int, head_request: bool, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """How a response's body is delimited: (kind, length for LENGTH)."""
    if head_request or status in (204, 304) or status < 200:
        return NO_BODY, 0
    length = -1
    for name, value in headers:
        if name == b"transfer-encoding":
            if value.strip(b" \t").lower() != b"chunked":
                # A coding the gateway cannot undo: the client could not
                # tell what the bytes are once the header is gone.
                raise BadGateway(f"unsupported response Transfer-Encoding {value!r}")
            return CHUNKED, 0
        if name == b"content-length":
            length = int(value.strip(b" \t"))  # llhttp checked it is a number
    if length >= 0:
        return LENGTH, length
    return UNTIL_CLOSE, 0


class ResponseBody:
    """Relays one response body; `reusable` says if the backend connection may serve again."""

    __slots__ = (
        "client",
        "backend",
        "reader",
        "timeout",
        "chunk_out",
        "reusable",
        "ahead",
        "bound",
        "on_read",
        "_remaining",
        "_ended",
    )

    def __init__(
        self,
        client: Downstream,
        backend: BackendConnection,
        reader: ResponseReader,
        timeout: float,
        chunk_out: bool,
        ahead: Budget | None = None,
        on_read: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.backend = backend
        self.reader = reader
        self.timeout = timeout
        self.chunk_out = chunk_out  # frame the body as chunked towards the client
        self.reusable = False
        self.ahead = ahead  # response buffering: the worker's budget (None: off)
        self.bound = client.limits.response_buffer_bytes
        # Called once the body was read whole ahead of the client (`reusable`):
        # the backend connection can go while the client is still written to.
        self.on_read = on_read
        self._remaining = 0  # LENGTH: body bytes still to read
        self._ended = False  # CHUNKED, UNTIL_CLOSE: the end was produced

    async def _receive(self) -> bytes:
        backend = self.backend
        backend.answer_within(self.timeout)
        try:
            return await backend.receive()
        except BadGateway as exc:
            raise BackendAborted(f"{backend.label} broke off the response: {exc}") from None
        except Expired:
            raise BackendAborted(
                f"{backend.label} stalled for {self.timeout:g}s mid-response"
            ) from None

    def _feed(self, data: bytes | None) -> None:
        """Bytes through llhttp (None: what came with the head)."""
        try:
            if data is None:
                self.reader.feed_rest()
            else:
                self.reader.feed(data)
        except BadGateway as exc:
            raise BackendAborted(str(exc)) from None

    def _finished(self, ahead: bool) -> None:
        if ahead and self.on_read is not None:
            self.on_read(self.reusable)

    async def _stream(
        self,
        head: bytes | bytearray,
        body: bytes | memoryview,
        produce: readahead.Produce,
        bound: int,
    ) -> None:
        """The response's start (`head` and the `body` bytes that came with
        it), then the rest as `produce` reads it; with response buffering,
        a client that does not take the start at once is read ahead of too."""
        client = self.client
        pending = b""
        if self.ahead is None:
            await client.send_head(head, body)
        else:
            taken = client.send_head_now(head, body)
            if taken < len(head) + len(body):
                pending = (bytes(head) + bytes(body))[taken:]
        # What the client did not take of the start is held beside the bound.
        bound += len(pending)
        await readahead.relay(client, produce, self.ahead, bound, self._finished, pending)

    async def relay(self, kind: int, length: int, head: bytes) -> None:
        if kind == NO_BODY:
            await self.client.send_head(head)
            reader = self.reader
            self.reusable = reader.complete and not reader.trailing and not reader.rest
        elif kind == LENGTH:
            await self._by_count(length, head)
        elif kind == CHUNKED:
            await self._chunked(head)
        else:
            await self._until_close(head)

    # -- by Content-Length ---------------------------------------------------

    async def _by_count(self, length: int, head: bytes) -> None:
        client = self.client
        reader = self.reader
        out = bytearray(head)
        remaining = length
        for event in reader.take_events():
            if isinstance(event, bytes):
                out += event
                remaining -= len(event)
        rest = reader.rest  # what came with the head, unparsed
        reader.rest = b""
        if len(rest) > remaining:
            reader.trailing = True  # bytes past the response: not for any request
            rest = rest[:remaining]
        self._remaining = remaining - len(rest)
        client.sent += len(out) + len(rest) - len(head)
        if self._remaining > 0:
            # No more read ahead than the body has left.
            await self._stream(out, rest, self._counted, min(self.bound, self._remaining))
        else:
            await client.send_head(out, rest)  # one write, the body not copied behind the head
            self.reusable = not reader.trailing

    async def _counted(self) -> bytes | None:
        remaining = self._remaining
        if remaining <= 0:
            self.reusable = not self.reader.trailing
            return None
        data = await self._receive()
        if not data:
            raise BackendAborted(f"{self.backend.label} closed mid-response")
        if len(data) > remaining:
            self.reader.trailing = True  # bytes past the response: not for any request
            data = data[:remaining]
        self._remaining = remaining - len(data)
        self.client.sent += len(data)
        return data

    # -- chunked -------------------------------------------------------------

    def _chunks(self, out: bytearray) -> bytearray:
        """The decoded chunks read so far, framed for the client, added to `out`."""
        framed = self.chunk_out
        client = self.client
        for event in self.reader.take_events():
            if isinstance(event, bytes):
                if event:
                    client.sent += len(event)
                    out += b"%x\r\n%b\r\n" % (len(event), event) if framed else event
            elif event is END:
                self._ended = True
                if framed:
                    out += b"0\r\n\r\n"
        return out

    async def _chunked(self, head: bytes) -> None:
        self._feed(None)
        out = self._chunks(bytearray(head))
        if self._ended:
            await self.client.send_head(out)
            self.reusable = not self.reader.trailing
        else:
            await self._stream(out, b"", self._next_chunks, self.bound)

    async def _next_chunks(self) -> bytes | bytearray | None:
        while not self._ended:
            data = await self._receive()
            if not data:
                raise BackendAborted(f"{self.backend.label} closed mid-response")
            self._feed(data)
            out = self._chunks(bytearray())
            if out:
                return out
        self.reusable = not self.reader.trailing
        return None

    # -- until the backend closes --------------------------------------------

    async def _until_close(self, head: bytes) -> None:
        client = self.client
        framed = self.chunk_out
        out = bytearray(head)
        self._feed(None)
        for event in self.reader.take_events():
            if isinstance(event, bytes) and event:
                client.sent += len(event)
                out += b"%x\r\n%b\r\n" % (len(event), event) if framed else event
        self.reusable = False  # the backend closes: that is how the body ends
        await self._stream(out, b"", self._until_closed, self.bound)

    async def _until_closed(self) -> bytes | None:
        if self._ended:
            return None
        data = await self._receive()
        if not data:
            self._ended = True
            return b"0\r\n\r\n" if self.chunk_out else None
        self.client.sent += len(data)
        return b"%x\r\n%b\r\n" % (len(data), data) if self.chunk_out else data


__all__ = ["CHUNKED", "LENGTH", "NO_BODY", "UNTIL_CLOSE", "ResponseBody", "framing"]
