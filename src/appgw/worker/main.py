"""A worker process: accepts on the shared sockets and serves connections.

Runs trio once, fresh, after the master forked it. The listening sockets
were bound by the master and are shared by every worker (a connection is
taken by whichever worker accepts first). Each client connection runs in
the handler nursery; the accept loops run in their own cancel scope so that
a drain is two steps: cancel the accept scope, then give the handler
nursery a deadline (the longest drain timeout) after which whatever is left
is cancelled.

The control channel to the master carries health snapshots in, and
readiness and a heartbeat out (appgw.ipc's messages); drain and stop come
as signals. The heartbeat is sent from inside the event loop, so a loop
that stalls stops beating and the master replaces the worker. When the
channel closes (the master is gone), the worker drains and exits.
"""

from __future__ import annotations

import gc
import signal
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from appgw import logs
from appgw.accept_pause import PAUSING_ERRNOS, RETRY, AcceptPause
from appgw.admin.server import serve_admin
from appgw.config.model import Config, Setting
from appgw.ipc import ChildChannel, Heartbeat, Ready
from appgw.ipc import Health as HealthMessage
from appgw.metrics import WorkerMetrics
from appgw.mtls import ClientAuthSetup, ClientCertificate
from appgw.mtls import inspect as inspect_client
from appgw.ocsp import OcspChecker
from appgw.process import unblock_signals
from appgw.titles import set_title, worker_title
from appgw.tls import SocketTls, backend_context
from appgw.worker.exchange import firewall_step
from appgw.worker.exchange.handler import handle_request
from appgw.worker.io.proxy_header import Refused, Trust, read_header, trust_for
from appgw.worker.io.timer import Timer
from appgw.worker.io.tls_stream import TlsStream
from appgw.worker.policy.balancer import Balancer, EveryoneHealthy, Health
from appgw.worker.policy.custom_error_pages import CustomErrorPages
from appgw.worker.policy.rewrite import compile_rule_set
from appgw.worker.policy.routing import Router
from appgw.worker.server.protocol import Connection, open_client
from appgw.worker.services import Services
from appgw.worker.tunnel.registry import drain_tunnels
from appgw.worker.tunnel.tunnel import CLOSE_REPLY_BUDGET, FINISH_FRAME_BUDGET, Tunnel
from appgw.worker.upstream.connections import BackendConnections

log = logs.log

HEARTBEAT_INTERVAL = 1.0


@attrs.define
class Socket:
    """A listening socket as a worker serves it."""

    sock: socket.socket
    address: str
    port: int
    protocol: str  # "http" | "https"
    tls: ssl.SSLContext | None = None
    client_auth: ClientAuthSetup | None = None  # mutual TLS (its listeners' SSL profile)
    proxy: Trust | None = None  # a PROXY protocol header required first (proxy_accept.py)

    @property
    def bound(self) -> tuple[str, int]:
        return (self.address, self.port)


def tls_for_sockets(sockets: list[Socket], contexts: Mapping[tuple[str, int], SocketTls]) -> None:
    """Give every HTTPS socket its context, built by the master before it
    forked (tls.py: `listener_contexts`), so sessions resume on any worker."""
    for sock in sockets:
        built = contexts.get(sock.bound) if sock.protocol == "https" else None
        if built is not None:
            sock.tls = built.context
            sock.client_auth = built.client_auth


def proxy_for_sockets(config: Config, sockets: list[Socket]) -> None:
    """The PROXY protocol of every socket whose listeners have it on (they agree)."""
    timeout = config.gateway.limits.header_timeout
    for sock in sockets:
        for listener in config.listeners.values():
            if (listener.address, listener.port) == sock.bound and listener.proxy_protocol:
                sock.proxy = trust_for(listener.proxy_protocol_trusted, timeout)
                break


class Worker:
    def __init__(
        self, config: Config, sockets: list[Socket], channel: ChildChannel, generation: int
    ) -> None:
        self.config = config
        self.sockets = sockets
        proxy_for_sockets(config, sockets)
        self.channel = channel
        self.generation = generation
        limits = config.gateway.limits
        self.router = Router(config)
        self.error_pages = CustomErrorPages(config, self.router)
        self.rewrites = {
            name: compile_rule_set(rs) for name, rs in config.rewrite_rule_sets.items()
        }
        self.balancer = Balancer(config, clock=trio.current_time)
        self.timer = Timer()
        self.backends = BackendConnections(
            limits.connect_timeout,
            self.timer,
            config.connect_to,
            reuse_idle=limits.backend_reuse_idle,
        )
        self.health: Health = EveryoneHealthy()
        self.draining = trio.Event()
        self.drain_started = 0.0
        self.grace = config.gateway.drain_grace
        self.tunnels: set[Tunnel] = set()
        self.late_tunnels = 0  # tunnels opened after the drain began (tunnels.py)
        self.connections: set[Connection] = set()
        self.slots = trio.Semaphore(limits.max_connections)
        self.metrics = WorkerMetrics()
        self._backend_tls: dict[str, ssl.SSLContext | None] = {}
        self.ocsp = OcspChecker()
        self._accept_scope = trio.CancelScope()
        self._handlers: trio.Nursery | None = None
        # What connections get from the worker (they never see the worker itself).
        self.services = Services(
            config=config,
            limits=limits,
            router=self.router,
            rewrites=self.rewrites,
            balancer=self.balancer,
            backends=self.backends,
            timer=self.timer,
            health=lambda: self.health,
            draining=self.draining,
            grace=self.grace,
            metrics=self.metrics,
            error_pages=self.error_pages,
            backend_tls=self.backend_tls,
            tunnels=self,
            handle=handle_request,
            firewall=firewall_step.build(config),
        )

    # -- per request helpers -------------------------------------------------

    def backend_tls(self, setting: Setting) -> ssl.SSLContext | None:
        if setting.name not in self._backend_tls:
            self._backend_tls[setting.name] = (
                backend_context(setting, self.config.trusted_root_certificates)
                if setting.protocol == "https"
                else None
            )
        return self._backend_tls[setting.name]

    def drain_timeout(self) -> float:
        """How long tunnels may outlive a drain: the longest of the settings'."""
        timeouts = [float(s.tunnel_drain_timeout) for s in self.config.settings.values()]
        return max(timeouts, default=30.0)

    # -- lifecycle -----------------------------------------------------------

    async def serve(self) -> None:
        async with trio.open_nursery() as system:
            system.start_soon(self._control)
            system.start_soon(self._heartbeat)
            system.start_soon(self.timer.run)
            system.start_soon(self._signals)
            for sock in self.sockets:
                if sock.protocol == "admin":  # served through drains too (/healthz: 503)
                    await system.start(serve_admin, self, sock.sock)
            async with trio.open_nursery() as handlers:
                self._handlers = handlers
                with self._accept_scope:
                    async with trio.open_nursery() as acceptors:
                        for sock in self.sockets:
                            if sock.protocol != "admin":
                                await acceptors.start(self._accept_loop, sock, handlers)
                        await self.channel.send(Ready())
                        log.debug("worker ready")
                # Accepting has stopped: the handler nursery ends when the
                # last connection does, or at the drain deadline.
            self.backends.close_all()
            # The last counts, so the master's totals miss nothing of this worker.
            await self.channel.send(self._beat(), timeout=HEARTBEAT_INTERVAL)
            system.cancel_scope.cancel()

    def start_drain(self) -> None:
        """Stop accepting; let exchanges finish and tunnels run to their deadlines."""
        if self.draining.is_set():
            return
        now = trio.current_time()
        self.draining.set()
        self.drain_started = now
        set_title(worker_title(self.generation, draining=True))
        self._accept_scope.cancel()
        log.info(
            "draining: %d connection(s), %d tunnel(s)", len(self.connections), len(self.tunnels)
        )
        grace_ends = time.monotonic() + self.grace
        for connection in self.connections:
            if connection.idle:
                connection.cut_idle(grace_ends)
        drain_tunnels(self.tunnels, now)  # each at its own moment of the window
        if self._handlers is not None:
            budget = self.drain_timeout() + FINISH_FRAME_BUDGET + CLOSE_REPLY_BUDGET + 2
            self._handlers.cancel_scope.deadline = now + max(budget, self.grace + 1)

    def stop_now(self) -> None:
        """Fast stop: everything ends at once."""
        self._accept_scope.cancel()
        if self._handlers is not None:
            self._handlers.cancel_scope.cancel()
        self.draining.set()

    async def _accept_loop(
        self, sock: Socket, handlers: trio.Nursery, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        listener = trio.socket.from_stdlib_socket(sock.sock)
        task_status.started()
        try:
            await self._accept(listener, sock, handlers)
        finally:
            # This worker accepts no more: drop its reference to the socket, so
            # that once every process has, new connections are refused rather
            # than left waiting (a new generation holds its own references).
            listener.close()

    async def _accept(
        self, listener: trio.socket.SocketType, sock: Socket, handlers: trio.Nursery
    ) -> None:
        pause = AcceptPause(f"{sock.address}:{sock.port}")
        while True:
            await self.slots.acquire()
            try:
                conn, address = await listener.accept()
            except OSError as exc:
                self.slots.release()
                if exc.errno in PAUSING_ERRNOS:
                    began = pause.refused(exc, trio.current_time())
                    if began is not None:
                        log.error("%s", began)
                    self.metrics.accept_refused(paused=began is not None)
                    await trio.sleep(RETRY)
                continue
            except BaseException:
                self.slots.release()
                raise
            if pause.since is not None:
                log.warning("%s", pause.accepted(trio.current_time()))
            handlers.start_soon(self._handle, conn, address, sock)

    async def _handle(self, conn: trio.socket.SocketType, address: Any, sock: Socket) -> None:
        try:
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            peer = (str(address[0]), int(address[1])) if isinstance(address, tuple) else ("-", 0)
            if sock.proxy is not None:  # the client's address comes first, before TLS
                try:
                    peer = await read_header(conn, peer, sock.proxy)
                except Refused as refused:
                    self._refuse(sock, peer, refused)
                    conn.close()
                    return
            stream: trio.abc.Stream = trio.SocketStream(conn)
            client_certificate = None
            if sock.tls is not None:
                stream = TlsStream(conn, sock.tls, server_side=True)
                if sock.client_auth is not None:
                    client_certificate = await self._client_certificate(stream, sock.client_auth)
                    if client_certificate is None:
                        await trio.aclose_forcefully(stream)
                        return
            connection = await open_client(self.services, stream, sock, peer, client_certificate)
            if connection is None:  # its TLS handshake failed (protocol.py)
                await trio.aclose_forcefully(stream)
                return
            self.connections.add(connection)
            self.metrics.connections_total += 1
            try:
                await connection.serve()
            finally:
                self.connections.discard(connection)
        except Exception:  # noqa: BLE001 - one connection's bug must not end the worker
            log.exception("connection from %s failed", address)
            conn.close()
        finally:
            self.slots.release()

    def _refuse(self, sock: Socket, peer: tuple[str, int], refused: Refused) -> None:
        """A connection that did not pass its PROXY protocol check: logged, counted."""
        self.metrics.proxy_refused_one(sock.port, refused.reason)
        log.warning(
            "PROXY protocol on %s:%d: refused %s:%d: %s",
            sock.address,
            sock.port,
            peer[0],
            peer[1],
            refused.detail,
        )

    async def _client_certificate(
        self, stream: TlsStream, setup: ClientAuthSetup
    ) -> ClientCertificate | None:
        """Mutual TLS: the handshake now, then the profile's checks (mtls.py).

        None when the handshake failed (a client refused by strict mode) or
        took longer than a request head may.
        """
        with trio.move_on_after(self.config.gateway.limits.header_timeout):
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            return await inspect_client(stream, setup, self.ocsp)
        return None

    async def _control(self) -> None:
        while True:
            messages = await self.channel.receive()
            if messages is None:
                log.warning("master is gone; draining")
                self.start_drain()
                return
            for message in messages:
                if isinstance(message, HealthMessage):
                    self._update_health(message.snapshot)

    def _update_health(self, snapshot: Mapping[str, Any]) -> None:
        from appgw.prober.health import HealthView

        try:
            self.health = HealthView(snapshot)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring a malformed health snapshot: %s", exc)

    def _beat(self) -> Heartbeat:
        metrics = self.metrics.snapshot(len(self.connections), len(self.tunnels))
        metrics["passive_servers"] = self.balancer.passive.snapshot(
            trio.current_time(), time.time()
        )
        return Heartbeat(metrics)

    async def _heartbeat(self) -> None:
        while True:
            await self.channel.send(self._beat(), timeout=HEARTBEAT_INTERVAL)
            await trio.sleep(HEARTBEAT_INTERVAL)

    async def _signals(self) -> None:
        with trio.open_signal_receiver(
            signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGHUP
        ) as signals:
            unblock_signals()  # blocked since fork; handled from here on
            async for signum in signals:
                if signum == signal.SIGTERM:
                    self.start_drain()
                elif signum in (signal.SIGINT, signal.SIGQUIT):
                    self.stop_now()
                elif signum == signal.SIGUSR1:
                    logs.reopen()
                # HUP is the master's business; a worker ignores it.


def run_worker(
    config: Config, sockets: list[Socket], channel_sock: socket.socket, generation: int
) -> int:
    """The worker process body (after fork). Returns the exit code."""

    async def main() -> None:
        channel = ChildChannel(channel_sock)
        worker = Worker(config, sockets, channel, generation)
        # What the worker has built so far (configuration, routes, TLS,
        # code) lives as long as the worker: out of the collector's way.
        # The request path makes no cyclic garbage (readers let go of their
        # parsers), so collections can be far apart.
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        await worker.serve()

    trio.run(main)
    return 0


__all__ = ["Socket", "Worker", "run_worker", "tls_for_sockets"]
