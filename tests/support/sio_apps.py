"""Socket.IO programs from PyPI's python-socketio, each run as its own process.

    python -m tests.support.sio_apps server HOST PORT NAME
        An aiohttp web server with a Socket.IO server on it (async_mode
        "aiohttp"): `whoami` answers (by acknowledgement) the backend's NAME
        and the session's id; `GET /` answers 200 for health probes.
        Prints "listening" once it accepts.

    python -m tests.support.sio_apps client URL COUNT
        COUNT Socket.IO clients (python-socketio's AsyncClient on aiohttp,
        polling then the WebSocket upgrade, reconnecting on their own),
        each with its own cookie jar that keeps cookies for IP addresses too
        (the gateway's affinity cookie). Each asks `whoami` every 0.2 s and
        prints one JSON object a line: {"client", "event": "connected" |
        "disconnected" | "whoami" | "error", "backend", "sid", "transport",
        "time"}. Runs until its standard input closes.

Both are asyncio programs; the trio tests drive them as processes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import socketio
from aiohttp import web

WHOAMI_EVERY = 0.2


async def serve(host: str, port: int, name: str) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def whoami(sid: str, data: Any) -> dict[str, str]:
        return {"backend": name, "sid": sid}

    async def health(request: web.Request) -> web.Response:
        return web.Response(text=name)

    app.router.add_get("/", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print("listening", flush=True)
    await asyncio.Event().wait()


def report(client: int, event: str, **fields: Any) -> None:
    line = {"client": client, "event": event, "time": time.monotonic(), **fields}
    print(json.dumps(line), flush=True)


async def one_client(url: str, n: int, stop: asyncio.Event) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keep the affinity cookie of 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        sio = socketio.AsyncClient(
            http_session=session, reconnection_delay=0.2, reconnection_delay_max=1
        )

        @sio.event
        async def connect() -> None:
            report(n, "connected", transport=sio.transport())

        @sio.event
        async def disconnect(reason: Any = None) -> None:
            report(n, "disconnected", reason=str(reason))

        await sio.connect(url, transports=["polling", "websocket"], wait_timeout=10)
        while not stop.is_set():
            if sio.connected:
                try:
                    answer = await sio.call("whoami", {}, timeout=5)
                    report(n, "whoami", transport=sio.transport(), **answer)
                except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                    report(n, "error", what="no answer to whoami")
                except socketio.exceptions.SocketIOError as exc:
                    report(n, "error", what=str(exc))
            try:
                await asyncio.wait_for(stop.wait(), WHOAMI_EVERY)
            except TimeoutError:
                pass
        await sio.disconnect()


async def clients(url: str, count: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
    await asyncio.gather(*(one_client(url, n, stop) for n in range(count)))


def main(argv: list[str]) -> None:
    if argv[0] == "server":
        asyncio.run(serve(argv[1], int(argv[2]), argv[3]))
    elif argv[0] == "client":
        asyncio.run(clients(argv[1], int(argv[2])))
    else:
        raise SystemExit(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
