"""TLS sessions resume on any worker and across a reload.

Real clients (Python's ssl module, `session=` reuse) against a gateway with
two workers: the listener contexts are built by the master before it forks,
so a session ticket issued by one worker is accepted by the other; a TLS 1.2
session ID is found by either in the session store the master made before
forking. A reload with the certificate and policy unchanged keeps the
contexts (and the store). Which worker served a connection is read from
/proc while it is open.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import trio
import trustme

from tests.support.backends import start_http_backends
from tests.support.gateway import (
    GatewayProcess,
    connection_holder,
    gateway_toml,
    open_gateway,
    run_cli,
    write_certificates,
)
from tests.support.load import generation_workers

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
CONNECTIONS = 40  # returning connections, at least
MOST = 200  # and at most, while waiting for both workers to have resumed one
# How clients resume: TLS 1.3 and TLS 1.2 tickets (stateless), and TLS 1.2
# session IDs from a client that takes no tickets (the shared session store).
CLIENTS = {
    "TLS 1.3": (ssl.TLSVersion.TLSv1_3, 0),
    "TLS 1.2": (ssl.TLSVersion.TLSv1_2, 0),
    "TLS 1.2 session IDs": (ssl.TLSVersion.TLSv1_2, ssl.OP_NO_TICKET),
}


def client_context(ca: trustme.CA, version: ssl.TLSVersion, options: int) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.maximum_version = version
    context.options |= options
    return context


def one_connection(
    context: ssl.SSLContext, port: int, session: ssl.SSLSession | None, pids: list[int]
) -> tuple[ssl.SSLSession | None, bool, int | None, str | None]:
    """A request on a fresh connection offering `session`: (the session to
    offer next, whether this one resumed, the worker that served it, the TLS version)."""
    with socket.create_connection((GATEWAY, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            # Keep-alive: the connection stays open while /proc is read.
            tls.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            holder = connection_holder(pids, (GATEWAY, port), tls.getsockname()[:2])
            # TLS 1.3 tickets arrive after the handshake: the session to
            # offer next is taken once the answer has been read.
            return tls.session, tls.session_reused, holder, tls.version()


async def returning_clients(
    gw: GatewayProcess, context: ssl.SSLContext, port: int, session: ssl.SSLSession | None
) -> tuple[int, int, set[int], set[str | None]]:
    """Connections offering the last session, until CONNECTIONS have been
    made and both workers served a resumed one: (made, resumed, workers that
    resumed, versions)."""
    made = resumed = 0
    resumers: set[int] = set()
    versions: set[str | None] = set()
    while made < CONNECTIONS or (len(resumers) < 2 and made < MOST):
        pids = gw.worker_pids(GATEWAY, port)
        offered = session
        session, reused, holder, version = await trio.to_thread.run_sync(
            one_connection, context, port, offered, pids
        )
        made += 1
        versions.add(version)
        if reused:
            resumed += 1
            if holder is not None:
                resumers.add(holder)
        else:
            assert offered is not None or made == 1
    return made, resumed, resumers, versions


@pytest.mark.parametrize("client", list(CLIENTS), ids=list(CLIENTS))
async def test_sessions_resume_on_either_worker_and_across_a_reload(
    nursery: trio.Nursery, tmp_path: Path, https_port: int, backend_port: int, client: str
) -> None:
    ca = trustme.CA()
    certs = write_certificates(ca, tmp_path / "certs")
    config = gateway_toml(servers=[A], backend_port=backend_port, https_port=https_port, cert=certs)
    version, options = CLIENTS[client]
    context = client_context(ca, version, options)
    with trio.fail_after(120):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2) as gw:
            first, reused, _, _ = await trio.to_thread.run_sync(
                one_connection, context, https_port, None, gw.worker_pids(GATEWAY, https_port)
            )
            assert not reused
            assert first is not None and first.has_ticket == (not options)
            made, resumed, resumers, versions = await returning_clients(
                gw, context, https_port, first
            )
            assert versions == {"TLSv" + client.split()[1]}
            assert resumed >= 0.95 * made, f"{resumed} of {made} resumed"
            assert len(resumers) == 2, f"only worker(s) {resumers} resumed sessions"

            # A reload with the same certificate and policy: the new
            # generation's workers resume the sessions the old one issued.
            before = generation_workers(gw.log(), 1)
            result = await run_cli("reload", "--pid-file", str(gw.pid_file), cwd=tmp_path)
            assert result.returncode == 0, result.output
            after = generation_workers(gw.log(), 2)
            assert after and not set(after) & set(before)
            pids = after
            session, reused, holder, _ = await trio.to_thread.run_sync(
                one_connection, context, https_port, first, pids
            )
            assert reused, "a session from before the reload was not resumed"
            assert holder in after
            made, resumed, resumers, _ = await returning_clients(gw, context, https_port, session)
            assert resumed >= 0.95 * made, f"after the reload: {resumed} of {made} resumed"
            assert resumers <= set(after) and len(resumers) == 2
