"""The demo's WebSocket chat: one port serves the page and the chat room.

    python -m appgw.demo.chat --bind 127.0.0.4 --port 9002

Plain HTTP: `/`, `/chat` and `/chat/` answer the page (static/chat.html),
`/healthz` "ok". A WebSocket upgrade to `/chat/ws` (or `/ws`) joins the room;
the name comes from the query (`/chat/ws?name=Ada`).

The room speaks JSON text messages. A client sends `{"name": ..., "text": ...}`
(a plain text message works too); every member then receives
`{"type": "message", "from": ..., "text": ..., "time": ..., "online": n}`.
Joins, leaves and renames arrive the same way with type "join", "leave" and
"rename". Each member has a bounded queue: one that cannot keep up is dropped
instead of slowing the room down. A member that hears nothing for a while
gets a pong frame, so a gateway's idle timeout does not close a quiet chat.
On SIGTERM or SIGINT every member is closed with code 1001 (going away); the
page then reconnects, which is what makes a gateway reload invisible.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
from functools import partial
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import attrs
import trio
import trio_websocket

from appgw.demo.http_server import (
    Request,
    Response,
    hostport,
    page,
    run_main,
    serve_http,
    text,
)

WEBSOCKET_PATHS = ("/chat/ws", "/ws")
PAGE_PATHS = ("/", "/chat", "/chat/")
MAX_TEXT = 2000  # characters of one message
MAX_NAME = 40
MAX_MESSAGE_BYTES = 16 * 1024  # a bigger WebSocket message closes the connection (1009)
QUEUE_SIZE = 64  # messages waiting for one member before it is dropped
HEARTBEAT = 20.0  # seconds of silence towards a member before a pong frame
SEND_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0

GOING_AWAY = 1001
POLICY = 1008  # used for members dropped for not keeping up


def chat_page() -> bytes:
    """The chat page, from the package's static files."""
    return resources.files("appgw.demo").joinpath("static/chat.html").read_bytes()


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def clean_name(name: str | None) -> str:
    name = " ".join((name or "").split())[:MAX_NAME]
    return name or "guest"


@attrs.define
class Member:
    name: str
    outbox: trio.MemorySendChannel[str]
    close_code: int = GOING_AWAY
    close_reason: str = "server going away"


class Room:
    """Who is online, and the fan-out of every message to all of them."""

    def __init__(self) -> None:
        self._members: dict[int, Member] = {}
        self._ids = itertools.count(1)
        self._empty = trio.Event()
        self._empty.set()
        self.closing = False

    @property
    def online(self) -> int:
        return len(self._members)

    def join(self, name: str) -> tuple[int, trio.MemoryReceiveChannel[str]]:
        outbox, inbox = trio.open_memory_channel[str](QUEUE_SIZE)
        member_id = next(self._ids)
        self._members[member_id] = Member(name, outbox)
        self._empty = trio.Event()
        self.broadcast("join", name, f"{name} joined")
        return member_id, inbox

    def leave(self, member_id: int) -> None:
        member = self._members.pop(member_id, None)
        if member is None:
            return
        member.outbox.close()
        if not self._members:
            self._empty.set()
        if not self.closing:
            self.broadcast("leave", member.name, f"{member.name} left")

    def say(self, member_id: int, message: str | bytes) -> None:
        """Handle one message from a member: a chat line or a new name."""
        member = self._members.get(member_id)
        if member is None:
            return
        name, line = _parse(message)
        if name is not None:
            name = clean_name(name)
            if name != member.name:
                old, member.name = member.name, name
                self.broadcast("rename", name, f"{old} is now {name}")
        line = line.strip()[:MAX_TEXT]
        if line:
            self.broadcast("message", member.name, line)

    def broadcast(self, kind: str, sender: str, line: str) -> None:
        message = json.dumps(
            {"type": kind, "from": sender, "text": line, "time": now(), "online": self.online}
        )
        for member_id, member in list(self._members.items()):
            try:
                member.outbox.send_nowait(message)
            except trio.WouldBlock:
                member.close_code, member.close_reason = POLICY, "too slow to keep up"
                self.leave(member_id)
            except trio.ClosedResourceError:
                pass

    def close(self) -> None:
        """Ask every member to go (code 1001); they leave as their sockets close."""
        self.closing = True
        for member in self._members.values():
            member.outbox.close()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    async def serve_member(self, ws: trio_websocket.WebSocketConnection, name: str) -> None:
        """Relay between one WebSocket and the room until either side ends."""
        member_id, inbox = self.join(name)
        member = self._members[member_id]
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, ws, inbox, member, nursery.cancel_scope)
                await self._read(ws, member_id)
                nursery.cancel_scope.cancel()
        finally:
            self.leave(member_id)
            with trio.move_on_after(2) as scope:
                scope.shield = True
                await ws.aclose(member.close_code, member.close_reason)

    async def _read(self, ws: trio_websocket.WebSocketConnection, member_id: int) -> None:
        try:
            while True:
                self.say(member_id, await ws.get_message())
        except trio_websocket.ConnectionClosed:
            pass

    async def _write(
        self,
        ws: trio_websocket.WebSocketConnection,
        inbox: trio.MemoryReceiveChannel[str],
        member: Member,
        done: trio.CancelScope,
    ) -> None:
        try:
            async with inbox:
                while True:
                    with trio.move_on_after(HEARTBEAT) as quiet:
                        message = await inbox.receive()
                    with trio.fail_after(SEND_TIMEOUT):
                        if quiet.cancelled_caught:
                            await ws.pong(b"appgw-demo")
                        else:
                            await ws.send_message(message)
        except trio.EndOfChannel:
            # Dropped by the room, or the server is closing.
            with trio.move_on_after(2):
                await ws.aclose(member.close_code, member.close_reason)
        except (trio_websocket.ConnectionClosed, trio.TooSlowError):
            pass
        done.cancel()


@attrs.frozen
class ChatServer:
    """The HTTP side (page, health) and the WebSocket side of the chat."""

    room: Room
    page: bytes

    def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return attrs.evolve(text(405, "only GET and HEAD\n"), headers=(("Allow", "GET, HEAD"),))
        if request.path == "/healthz":
            return text(200, "ok")
        if request.path in PAGE_PATHS:
            return Response(200, self.page, "text/html; charset=utf-8")
        if request.path in WEBSOCKET_PATHS:
            return text(426, "this is a WebSocket endpoint\n")
        return page(
            "<!doctype html><title>not found</title><p>Not found. "
            'The chat is at <a href="/chat/">/chat/</a>.',
            status=404,
        )

    async def upgrade(self, request: Request, stream: trio.abc.Stream) -> None:
        ws: trio_websocket.WebSocketConnection | None = None
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(HANDSHAKE_TIMEOUT) as handshake:
                ws_request = await trio_websocket.wrap_server_stream(
                    nursery, stream, max_message_size=MAX_MESSAGE_BYTES
                )
                if request.path not in WEBSOCKET_PATHS:
                    await ws_request.reject(404, body=b"no WebSocket here\n")
                elif self.room.closing:
                    await ws_request.reject(503, body=b"the chat is stopping\n")
                else:
                    ws = await ws_request.accept()
            if handshake.cancelled_caught or ws is None:
                nursery.cancel_scope.cancel()
                return
            name = parse_qs(urlsplit(request.target).query).get("name", [""])[0]
            await self.room.serve_member(ws, clean_name(name))
            nursery.cancel_scope.cancel()


async def serve_chat(
    host: str,
    port: int,
    *,
    room: Room | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the chat until cancelled; reports the bound port."""
    server = ChatServer(room or Room(), chat_page())
    await serve_http(server.respond, host, port, upgrade=server.upgrade, task_status=task_status)


def _parse(message: str | bytes) -> tuple[str | None, str]:
    """A client message: (new name or None, text)."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    try:
        value = json.loads(message)
    except ValueError:
        return None, message
    if not isinstance(value, dict):
        return None, message
    name = value.get("name")
    line = value.get("text")
    return (name if isinstance(name, str) else None), (line if isinstance(line, str) else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appgw.demo.chat", description="The appgw demo's WebSocket chat."
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9002, help="port to listen on (0: any)")
    args = parser.parse_args(argv)
    room = Room()

    async def say_goodbye() -> None:
        room.close()
        with trio.move_on_after(3):
            await room.wait_empty()

    return run_main(
        partial(serve_chat, args.bind, args.port, room=room),
        lambda port: f"chat listening on http://{hostport(args.bind, port)}/chat/",
        f"chat: cannot listen on {hostport(args.bind, args.port)}",
        say_goodbye,
    )


if __name__ == "__main__":
    raise SystemExit(main())
