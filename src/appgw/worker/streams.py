"""What both sides of the proxy do with a stream: read size, reset, errors.

Shared by the client connection, the backend connections and the tunnels,
so none of them reaches into another for it.

Plain TCP connections (no TLS) are read and written with non-blocking
system calls on their socket, as the tunnels are (tunnel_io.py), rather
than through trio's stream API, whose generality costs several
microseconds per call (a small exchange makes four):

- `read_some` (and `read_now`, which never waits): a read that finds
  bytes waiting returns them after one schedule point (other tasks run, as
  with trio's own receive); one that finds none waits for the socket to
  become readable. A read that is known to wait (a response just asked
  for, the next request of an idle connection) waits first, saving a
  failing system call.
- `write_now`: as much as the socket takes at once, with no await at all;
  only what it did not take needs `write_rest`, and a deadline. A write is
  thus neither a schedule point nor a cancellation point when the socket
  takes it whole: every caller reads next, and the read is both.

The socket's descriptor is asked for on every call, never kept: a socket
closed in the meantime reports -1, and the call fails with EBADF instead of
reaching whatever socket took its number.
"""

from __future__ import annotations

import os
import socket
import struct

import trio
from trio.lowlevel import (
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    wait_readable,
    wait_writable,
)

from appgw.errors import STREAM_ERRORS

RECEIVE_SIZE = 64 * 1024

__all__ = [
    "RECEIVE_SIZE",
    "STREAM_ERRORS",
    "abort",
    "plain_socket",
    "raw_socket",
    "read_now",
    "read_some",
    "write_now",
    "write_rest",
]


def plain_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket of a plain TCP stream (no TLS), read and written directly."""
    return stream.socket if type(stream) is trio.SocketStream else None


def read_now(sock: trio.socket.SocketType) -> bytes | None:
    """What a plain socket has waiting, without waiting: None if nothing.

    Not a schedule point: a caller that goes on without awaiting anything
    else gives other tasks their turn (`cancel_shielded_checkpoint`).
    """
    try:
        return os.read(sock.fileno(), RECEIVE_SIZE)
    except BlockingIOError:
        return None


async def read_some(sock: trio.socket.SocketType, wait_first: bool = False) -> bytes:
    """Up to RECEIVE_SIZE bytes from a plain socket; b"" at its end of stream."""
    if not wait_first:
        await checkpoint_if_cancelled()
        data = read_now(sock)
        if data is not None:
            await cancel_shielded_checkpoint()
            return data
    while True:
        await wait_readable(sock)
        try:
            return os.read(sock.fileno(), RECEIVE_SIZE)
        except BlockingIOError:
            continue


def write_now(sock: trio.socket.SocketType, data: bytes | bytearray | memoryview) -> int:
    """Write what the socket takes now, without waiting: how many bytes it took."""
    try:
        return os.write(sock.fileno(), data)
    except BlockingIOError:
        return 0


async def write_rest(sock: trio.socket.SocketType, data: bytes | bytearray | memoryview) -> None:
    """Write all of `data`, waiting for room as needed (the caller's deadline)."""
    view = memoryview(data)
    while view:
        await wait_writable(sock)
        sent = write_now(sock, view)
        view = view[sent:]


def raw_socket(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


def abort(stream: trio.abc.Stream) -> None:
    """Close a connection with a reset, so the peer cannot take it for a clean end."""
    sock = raw_socket(stream)
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    try:
        if sock is not None:
            sock.close()
    except OSError:
        pass
