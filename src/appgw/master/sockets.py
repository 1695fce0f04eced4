"""Listening sockets: bound by the master, shared by every worker.

The master binds each (address, port) once, before forking, so ports 80 and
443 can be bound as root while workers run as an unprivileged user, and so
all workers share one accept queue (a worker that stops accepting strands
nothing). Sockets survive reloads: a reload keeps every socket whose
address, port and protocol are unchanged and binds only new ones. For a
binary upgrade they are passed to the new master through exec, their file
descriptors named in APPGW_LISTEN_FDS.
"""

from __future__ import annotations

import os
import socket

import attrs

from appgw.config.model import Config

ENV_FDS = "APPGW_LISTEN_FDS"
BACKLOG = 1024

SocketKey = tuple[str, int, str]  # (address, port, protocol)


@attrs.define
class ListeningSocket:
    address: str
    port: int
    protocol: str
    sock: socket.socket

    @property
    def key(self) -> SocketKey:
        return (self.address, self.port, self.protocol)

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        if self.protocol == "admin":
            return f"http://{host}:{self.port}/ (admin)"
        return f"{self.protocol}://{host}:{self.port}"


def wanted(config: Config) -> list[SocketKey]:
    """The sockets a configuration needs, one per (address, port)."""
    keys: dict[tuple[str, int], str] = {}
    for listener in config.listeners.values():
        keys.setdefault((listener.address, listener.port), listener.protocol)
    admin = config.gateway.admin
    if admin is not None:  # served by the workers' admin server (admin/server.py)
        keys.setdefault((admin.address, admin.port), "admin")
    return [(address, port, protocol) for (address, port), protocol in keys.items()]


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def inherited() -> dict[tuple[str, int], socket.socket]:
    """Sockets handed over by a previous master (binary upgrade)."""
    found: dict[tuple[str, int], socket.socket] = {}
    spec = os.environ.pop(ENV_FDS, "")
    for item in filter(None, spec.split(",")):
        fd_text, _, _ = item.partition("=")
        try:
            sock = socket.socket(fileno=int(fd_text))
        except (OSError, ValueError):
            continue
        name = sock.getsockname()
        found[(str(name[0]), int(name[1]))] = sock
        sock.setblocking(False)
    return found


class SocketSet:
    """The master's listening sockets, kept across reloads."""

    def __init__(self) -> None:
        self.sockets: dict[SocketKey, ListeningSocket] = {}
        self._spare = inherited()

    def ensure(self, config: Config) -> list[str]:
        """Bind what `config` needs and is not bound yet; errors as messages."""
        errors = []
        for key in wanted(config):
            if key in self.sockets:
                continue
            address, port, protocol = key
            # A socket whose protocol changed is rebound in place.
            for other in list(self.sockets.values()):
                if (other.address, other.port) == (address, port):
                    self.sockets[key] = ListeningSocket(address, port, protocol, other.sock)
                    del self.sockets[other.key]
                    break
            else:
                sock = self._spare.pop((address, port), None)
                if sock is None:
                    try:
                        sock = bind(address, port)
                    except OSError as exc:
                        errors.append(f"cannot listen on {address}:{port}: {exc.strerror or exc}")
                        continue
                self.sockets[key] = ListeningSocket(address, port, protocol, sock)
        return errors

    def for_config(self, config: Config) -> list[ListeningSocket]:
        return [self.sockets[key] for key in wanted(config) if key in self.sockets]

    def fds_except(self, keep: list[ListeningSocket]) -> list[int]:
        """Every listening fd but those of `keep` (what a new child must close)."""
        kept = {s.sock.fileno() for s in keep}
        return [s.sock.fileno() for s in self.sockets.values() if s.sock.fileno() not in kept]

    def retire_unused(self, configs: list[Config]) -> None:
        """Close the sockets no running configuration uses any more."""
        used = {key for config in configs for key in wanted(config)}
        for key in list(self.sockets):
            if key not in used:
                self.sockets.pop(key).sock.close()
        for sock in self._spare.values():
            sock.close()
        self._spare.clear()

    def export(self) -> str:
        """APPGW_LISTEN_FDS for a new master; makes the fds inheritable."""
        items = []
        for listening in self.sockets.values():
            fd = listening.sock.fileno()
            os.set_inheritable(fd, True)
            items.append(f"{fd}={listening.address}:{listening.port}")
        return ",".join(items)

    def close(self) -> None:
        for listening in self.sockets.values():
            listening.sock.close()
        self.sockets.clear()
