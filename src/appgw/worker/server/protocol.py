"""Which protocol a client connection speaks, and the connection that speaks it.

An HTTPS listener of a gateway with HTTP/2 on offers `h2` first in the TLS
handshake (ALPN, tls.py); a client that takes it gets an HTTP/2 connection
(http2.py), any other an HTTP/1.1 one (http1.py). So the handshake is done
here, before the first byte of HTTP, within the header timeout; without
HTTP/2, nothing changes (the handshake happens on the first read). Plain
HTTP listeners speak HTTP/1.1 only: h2c is never offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from appgw.worker.io.tls_stream import TlsStream
from appgw.worker.server.http1 import ClientConnection, Served
from appgw.worker.server.http2 import Http2Connection

if TYPE_CHECKING:
    from appgw.mtls import ClientCertificate
    from appgw.worker.exchange.downstream import ListeningSocket

Connection = ClientConnection | Http2Connection

H2 = "h2"
HTTP1 = "http/1.1"


async def open_client(
    services: Served,
    stream: trio.abc.Stream,
    socket: ListeningSocket,
    peer: tuple[str, int],
    certificate: ClientCertificate | None,
) -> Connection | None:
    """The connection for the protocol the client chose; None when its TLS
    handshake failed or took longer than a request head may."""
    connection: Connection
    if type(stream) is TlsStream and services.config.gateway.http2.enabled:
        with trio.move_on_after(services.limits.header_timeout) as scope:
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
        if scope.cancelled_caught:
            return None
        if stream.selected_alpn_protocol() == H2:
            connection = Http2Connection(services, stream, socket, peer)
            connection.client_certificate = certificate
            services.metrics.protocol_connection(H2)
            return connection
    connection = ClientConnection(services, stream, socket, peer)
    connection.client_certificate = certificate
    services.metrics.protocol_connection(HTTP1)
    return connection


__all__ = ["H2", "HTTP1", "Connection", "open_client"]
