"""What both sides of the proxy do with a stream: read size, reset, errors.

Shared by the client connection, the backend connections and the tunnels,
so none of them reaches into another for it.
"""

from __future__ import annotations

import socket
import struct

import trio

from appgw.errors import STREAM_ERRORS

RECEIVE_SIZE = 64 * 1024

__all__ = ["RECEIVE_SIZE", "STREAM_ERRORS", "abort", "raw_socket"]


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
