"""A WebSocket handshake through an exchange.

The client's handshake is checked before it goes anywhere (version 13, a
key of 16 bytes); the backend's 101 must answer it (Upgrade: websocket and
the right Sec-WebSocket-Accept) before it is passed on. Then the two
connections become a tunnel (relay.py), with whatever either side had
already sent past its head; nothing of the HTTP exchange stays set on them.
"""

from __future__ import annotations

from appgw.config.model import Setting
from appgw.errors import BadRequest, GatewayError
from appgw.worker.codec import headers as rules
from appgw.worker.codec.request import Request
from appgw.worker.codec.response_reader import ResponseHead, ResponseReader
from appgw.worker.exchange.downstream import Context, Downstream
from appgw.worker.tunnel.registry import relay_tunnel
from appgw.worker.tunnel.tunnel import TunnelEnd
from appgw.worker.upstream.connections import BackendConnection


def check(request: Request) -> None:
    """Refuse a handshake no backend should see: 426 (naming version 13), or 400."""
    problem = rules.websocket_key_problem(request.headers)
    if problem and "Version" in problem:
        # RFC 6455 §4.4: name the version this side speaks.
        raise GatewayError(problem, status=426, headers=((b"sec-websocket-version", b"13"),))
    if problem:
        raise BadRequest(problem)


def switching_problem(request: Request, response: ResponseHead) -> str | None:
    """Why a backend's 101 must not become a tunnel, or None."""
    if not request.websocket:
        return "switched protocols without being asked"
    return rules.switching_problem(request.headers, response.headers)


async def switch(client: Downstream, reader: ResponseReader, response: ResponseHead) -> bytes:
    """Pass a checked 101 on; the bytes past its head (the reader is done)."""
    reason = response.reason or b"Switching Protocols"
    await client.send_head(
        rules.build_head(b"HTTP/1.1 101 %s\r\n" % reason, rules.switching_headers(response.headers))
    )
    client.close_after()
    return reader.release()


async def tunnel(
    services: Context,
    client: Downstream,
    backend: BackendConnection,
    rest: bytes,
    idle_timeout: float,
    setting: Setting,
) -> TunnelEnd:
    """Relay the two connections until the tunnel ends; how it ended."""
    # The tunnel keeps time itself (relay.py): no HTTP deadline stays set.
    backend.no_deadlines()
    client_stream, client_rest = client.hand_over()
    return await relay_tunnel(
        services.tunnels,
        client_stream,
        client_rest,
        backend.stream,
        rest,
        idle_timeout=idle_timeout,
        drain_timeout=float(setting.tunnel_drain_timeout),
        label=f"{client.peer[0]} <-> {backend.label}",
        idle_limit=f"requestTimeout of settings '{setting.name}'",
        close_on_peer_loss=setting.close_on_peer_loss,
    )
