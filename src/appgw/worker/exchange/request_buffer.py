"""Request and response buffers, and the per-worker bounds on them.

Application Gateway buffers both ways by default (globalConfiguration's
enableRequestBuffering and enableResponseBuffering); so does appgw
(`gateway.limits.request_buffering` / `response_buffering`). The rules:

- Request buffering: a request body is read from the client, and checked
  by llhttp as it comes, before anything of the request (its head
  included) is written to a backend: the whole body when it fits in
  `request_buffer_bytes`, else that much of it, and the rest is streamed
  after (a body that turns bad there aborts the backend connection). A
  body that is malformed, too short or cut off inside its first buffer
  costs the backend nothing, and a slow upload holds no backend connection
  while its buffer fills. Whatever the client already sent past the bound
  (the pieces read and queued) is checked too.
- All requests of a worker share `worker_request_buffer_bytes`: a request
  reserves its bound (or its Content-Length, or what is left) before it
  reads; a request that
  finds the budget spent checks only what has already arrived, and
  streams the rest.
- Response buffering (bodies.py, readahead.py): a response is read ahead
  of a client that is slower than its backend, up to
  `response_buffer_bytes` per response and `worker_response_buffer_bytes`
  per worker; once the backend's response is read whole, its connection
  goes back to the pool (or is closed) while the client is still served.
  A read-ahead never waits to fill: every byte goes to the client as soon
  as the client takes it, so streams without an end (text/event-stream, a
  chunked response that never finishes) flow as before, and WebSocket
  tunnels do not pass through here at all.

With both off, bodies stream byte for byte as they arrive.
"""

from __future__ import annotations

from appgw.errors import GatewayError
from appgw.worker.exchange.budgets import Budget
from appgw.worker.exchange.downstream import Downstream


class BufferedBody:
    """What was read of a request body before the backend was reached."""

    __slots__ = ("pieces", "size", "complete", "_budget", "_granted")

    def __init__(self, budget: Budget, granted: int) -> None:
        self.pieces: list[bytes] = []
        self.size = 0
        self.complete = False  # the whole body is here
        self._budget = budget
        self._granted = granted

    def framed(self, chunked: bool) -> bytes:
        """The pieces as the backend gets them (one chunk, and its end if complete)."""
        data = b"".join(self.pieces)
        if chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data) if data else b""
            if self.complete:
                data += b"0\r\n\r\n"
        return data

    def release(self) -> None:
        """The pieces went out (or never will): their room goes back to the budget."""
        self.pieces = []
        self._budget.give(self._granted)
        self._granted = 0


async def read_ahead(client: Downstream, budget: Budget, length: int | None) -> BufferedBody:
    """Read a request body, up to the per-request bound, before the backend is reached.

    `length` is the body's Content-Length (None: chunked); no more room
    than the body needs is taken from the budget. Raises what
    `receive_body` raises (400 for a malformed body or a client that closed
    mid-body, 408 for one too slow) and 413 past `max_body_bytes`: then
    nothing of the request went anywhere.
    """
    limits = client.limits
    bound = limits.request_buffer_bytes
    granted = budget.take(bound if length is None else min(bound, length))
    body = BufferedBody(budget, granted)
    limit = limits.max_body_bytes
    try:
        while body.size < granted or client.body_pending:
            piece = await client.receive_body()
            if piece is None:
                body.complete = True
                break
            body.pieces.append(piece)
            body.size += len(piece)
            if limit and body.size > limit:
                raise GatewayError("request body too large", status=413)
    except BaseException:
        body.release()
        raise
    return body
