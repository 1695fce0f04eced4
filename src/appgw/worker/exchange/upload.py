"""A request body, streamed to the backend beside the wait for the response.

The exchange (exchange.py) sends the request head, then runs
`Upload.send` in a task of its own while it waits for the response head
(`Upload.head`): a backend that answers early is heard at once. Each piece
of the body goes out as it arrives, framed as chunks again when the client
sent it chunked, and each write has the setting's request timeout (504 for
a backend that stops reading). Every piece that goes out moves the
response head's deadline on, so a long upload is not taken for a backend
that does not answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from appgw.errors import GatewayError, GatewayTimeout
from appgw.worker.codec.request import Request
from appgw.worker.codec.response_reader import ResponseHead
from appgw.worker.exchange.downstream import Downstream
from appgw.worker.io.endpoint import Expired
from appgw.worker.upstream.connections import BackendConnection


class Upload:
    def __init__(
        self,
        client: Downstream,
        backend: BackendConnection,
        request: Request,
        timeout: float,
        received: int = 0,
    ) -> None:
        self.client = client
        self.backend = backend
        self.chunked = request.chunked
        self.timeout = timeout
        self.sent = trio.Event()  # set once the whole body went out
        self.head_wait = False  # the response head is awaited: its deadline moves on
        self.received = received  # body bytes read before (request buffering)

    @property
    def done(self) -> bool:
        """Whether the whole body went out."""
        return self.sent.is_set()

    async def send(self) -> None:
        """Stream the client's body to the backend (runs beside the head wait)."""
        client = self.client
        backend = self.backend
        chunked = self.chunked
        limit = client.limits.max_body_bytes
        received = self.received
        while True:
            piece = await client.receive_body()
            if piece is None:
                if chunked:
                    await backend.send(b"0\r\n\r\n", self.timeout)
                self.sent.set()
                return
            if not piece:
                continue
            received += len(piece)
            if limit and received > limit:
                raise GatewayError("request body too large", status=413)
            await backend.send(
                b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece, self.timeout
            )
            if self.head_wait:
                backend.answer_within(self.timeout)

    async def head(self, read_head: Callable[[], Awaitable[ResponseHead]]) -> ResponseHead:
        """The response head, within the request timeout of the last piece sent."""
        backend = self.backend
        backend.answer_within(self.timeout)
        self.head_wait = True
        try:
            return await read_head()
        except Expired:
            raise GatewayTimeout(
                f"{backend.label} did not respond within {self.timeout:g}s"
            ) from None
        finally:
            self.head_wait = False
