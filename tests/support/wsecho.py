"""A WebSocket echo server for tests, on trio-websocket.

It echoes every text and binary message back. It accepts the first
subprotocol the client offers that is in its own list, and the text message
"close:CODE:REASON" makes it close the connection with that code and reason
(so tests can check that a backend's close code reaches the client).

`echo_session` is the handler on its own, so the HTTP test backend can hand
it the WebSocket upgrades it receives on an ordinary HTTP port.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio
import trio_websocket

# Messages of 16 MiB and more must pass; the library's default is 1 MiB.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
RECEIVE_BUFFER = 64 * 1024
DEFAULT_SUBPROTOCOLS = ("superchat",)


@attrs.frozen
class Handshake:
    """One opening handshake the echo server received."""

    path: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased
    subprotocol: str | None  # what the server picked

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


@attrs.define
class WsEchoServer:
    """A running echo server: where it listens and what it has seen."""

    host: str
    port: int
    subprotocols: tuple[str, ...]
    handshakes: list[Handshake] = attrs.Factory(list)
    messages: int = 0  # messages echoed, all connections together


def pick_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first subprotocol the client offered that the server supports."""
    return next((p for p in offered if p in supported), None)


async def echo_session(
    request: trio_websocket.WebSocketRequest,
    subprotocols: Sequence[str],
    server: WsEchoServer | None = None,
) -> None:
    """Accept `request` and echo messages until either side closes."""
    chosen = pick_subprotocol(request.proposed_subprotocols, subprotocols)
    if server is not None:
        headers = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers
        )
        server.handshakes.append(Handshake(request.path, headers, chosen))
    ws = await request.accept(subprotocol=chosen)
    try:
        while True:
            try:
                message = await ws.get_message()
            except trio_websocket.ConnectionClosed:
                return
            if isinstance(message, str) and message.startswith("close:"):
                _, code, reason = message.split(":", 2)
                await ws.aclose(int(code), reason)
                return
            try:
                await ws.send_message(message)
            except trio_websocket.ConnectionClosed:
                return
            if server is not None:
                server.messages += 1
    finally:
        with trio.move_on_after(2):
            await ws.aclose()


async def serve_ws_echo(
    host: str,
    port: int = 0,
    *,
    subprotocols: Sequence[str] = DEFAULT_SUBPROTOCOLS,
    ssl_context: object | None = None,
    task_status: trio.TaskStatus[WsEchoServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the echo on host:port (0: any free port) until cancelled.

    `await nursery.start(serve_ws_echo, host, port)` returns a WsEchoServer
    once it is listening.
    """
    server: WsEchoServer | None = None

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        assert server is not None
        await echo_session(request, server.subprotocols, server)

    async with trio.open_nursery() as nursery:
        ws_server = await nursery.start(
            lambda task_status: trio_websocket.serve_websocket(
                handler,
                host,
                port,
                ssl_context,  # type: ignore[arg-type]
                max_message_size=MAX_MESSAGE_SIZE,
                receive_buffer_size=RECEIVE_BUFFER,
                task_status=task_status,
            )
        )
        server = WsEchoServer(host, ws_server.port, tuple(subprotocols))
        task_status.started(server)
