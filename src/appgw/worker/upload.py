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
from typing import TYPE_CHECKING

import trio

from appgw.errors import BadGateway, GatewayError, GatewayTimeout, first_error
from appgw.worker.backends import BackendConnection
from appgw.worker.request import Request
from appgw.worker.response_wire import ResponseHead
from appgw.worker.streams import Expired

if TYPE_CHECKING:
    from appgw.config.model import Server
    from appgw.worker.connection import ClientConnection
    from appgw.worker.exchange import Exchange
    from appgw.worker.response_wire import ResponseReader

# Seconds a response waits, at most, for the last bytes of a request body
# that the client already sent in full (a backend that answered early and
# does not read them costs a closed connection, not a stalled response).
BODY_TAIL_WAIT = 1.0


class Upload:
    def __init__(
        self,
        client: ClientConnection,
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
                backend.endpoint.read_within(self.timeout)

    async def head(self, read_head: Callable[[], Awaitable[ResponseHead]]) -> ResponseHead:
        """The response head, within the request timeout of the last piece sent."""
        backend = self.backend
        backend.endpoint.read_within(self.timeout)
        self.head_wait = True
        try:
            return await read_head()
        except Expired:
            raise GatewayTimeout(
                f"{backend.label} did not respond within {self.timeout:g}s"
            ) from None
        finally:
            self.head_wait = False


async def stream_beside(
    exchange: Exchange, server: Server, backend: BackendConnection, reader: ResponseReader
) -> bool:
    """Stream the request body beside the wait for the response, and relay that.

    The request head (with what request buffering read of the body) is out;
    returns whether the backend connection may serve again.
    """
    client = exchange.client
    buffered = exchange.buffered
    if exchange.request.expect_continue and buffered is None:
        await client.send_continue()
    reusable = False
    received = 0 if buffered is None else buffered.size
    upload = exchange.upload = Upload(client, backend, exchange.request, exchange.timeout, received)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(upload.send)
            response = await upload.head(lambda: exchange.head_from(backend, reader))
            if response.status == 101:
                exchange.status = 502  # no tunnel: the backend connection is dropped
                raise BadGateway(f"{backend.label} switched protocols mid-request")
            exchange.status = response.status
            if not upload.done and client.body_received:
                # The client sent it all and its last bytes are on their
                # way: let them arrive, so both connections stay usable.
                with trio.move_on_after(min(exchange.timeout, BODY_TAIL_WAIT)):
                    await upload.sent.wait()
            reusable = await exchange.respond(server, backend, reader, response)
            if not upload.done:
                # The backend answered before the request body ended:
                # the rest of the body has nowhere to go, and neither
                # side of this exchange can be reused.
                nursery.cancel_scope.cancel()
                client.closing = True
                reusable = False
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return reusable
