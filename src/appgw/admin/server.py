"""The admin listener inside a worker: a tiny HTTP/1.1 server for operators.

Every worker accepts on the admin socket (bound by the master, like the
listeners'), and answers from the master's run files (views.py), so any
worker gives the same answer and nothing is routed to a backend. Serving it
in the workers, rather than in the master or a process of its own, keeps
the master free of sockets it must serve (it never blocks) and needs no
extra child to supervise; reading files keeps the workers free of any
state they would have to share.

The admin server runs beside the worker's accept loops, not inside them, so
a draining worker still answers (/healthz then says 503). One request per
connection, a few at a time, each within a short deadline: a slow or
hostile client of this port costs the worker nothing.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

import h11
import trio

from appgw import logs
from appgw.accept_pause import PAUSING_ERRNOS, RETRY, AcceptPause
from appgw.admin.views import Views
from appgw.config.model import Config
from appgw.errors import STREAM_ERRORS


class Served(Protocol):
    """What the admin listener needs of the process serving it (a worker)."""

    @property
    def config(self) -> Config: ...
    @property
    def generation(self) -> int: ...

log = logs.log

DEADLINE = 10.0  # seconds for one admin request and its answer
MAX_CONNECTIONS = 16  # admin connections served at once, per worker
MAX_HEAD = 16 * 1024


async def serve_admin(
    worker: Served, sock: socket.socket, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    views = Views(worker.config, worker.generation)
    listener = trio.socket.from_stdlib_socket(sock)
    slots = trio.Semaphore(MAX_CONNECTIONS)
    pause = AcceptPause("the admin listener")
    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            await slots.acquire()
            try:
                conn, _ = await listener.accept()
            except OSError as exc:
                slots.release()
                if exc.errno not in PAUSING_ERRNOS:
                    log.warning("admin listener: accept: %s", exc)
                elif (began := pause.refused(exc, trio.current_time())) is not None:
                    log.warning("%s", began)
                await trio.sleep(RETRY)
                continue
            except BaseException:
                slots.release()
                raise
            if pause.since is not None:
                log.warning("%s", pause.accepted(trio.current_time()))
            nursery.start_soon(_serve_one, views, trio.SocketStream(conn), slots)


async def _serve_one(views: Views, stream: trio.SocketStream, slots: trio.Semaphore) -> None:
    try:
        with trio.move_on_after(DEADLINE):
            await _exchange(views, stream)
    except STREAM_ERRORS:
        pass
    except Exception:  # noqa: BLE001 - an admin request must not end the worker
        log.exception("admin request failed")
    finally:
        slots.release()
        with trio.move_on_after(1) as scope:
            scope.shield = True
            try:
                await stream.aclose()
            except STREAM_ERRORS:
                pass


async def _exchange(views: Views, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            await _send(stream, conn, 400, "text/plain", b"bad request\n", head_only=False)
            return
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data:
                return
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            method = event.method.decode("ascii", "replace")
            target = event.target.decode("ascii", "replace")
            answer = views.answer(method, target)
            await _send(
                stream,
                conn,
                answer.status,
                answer.content_type,
                answer.body,
                head_only=method == "HEAD",
            )
        return


async def _send(
    stream: trio.SocketStream,
    conn: h11.Connection,
    status: int,
    content_type: str,
    body: bytes,
    *,
    head_only: bool,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
        (b"x-content-type-options", b"nosniff"),
    ]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    if not head_only:
        data += conn.send(h11.Data(data=body))
    await stream.send_all(data)
