"""The HTTPS listeners' TLS contexts, and the session store they share.

The master builds every listener socket's context before it forks (tls.py),
and gives each new context OpenSSL's external session cache on one session
store in shared memory (session_store.py, session_hooks.py), made with the
first HTTPS listener and kept for as long as the master runs: a TLS 1.2
session ID a worker issued resumes on every worker, of this generation and
of those after a reload. A context a reload keeps keeps its namespace in
the store, so its sessions resume across the reload; a new context (a
rotated certificate, a changed policy) starts a new namespace.

Where the store cannot be made or OpenSSL cannot be reached safely, one
warning says so and sessions resume as before (tickets on every worker,
session IDs on the worker that made them).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from appgw import logs
from appgw.config.model import Config
from appgw.session_hooks import attach
from appgw.session_store import SessionStore
from appgw.tls import Bound, SocketTls, listener_contexts

__all__ = ["Bound", "SharedSessions", "SocketTls"]  # what the arbiter needs of TLS

log = logs.log


class SharedSessions:
    """The master's session store, and the contexts it has been attached to."""

    def __init__(self) -> None:
        self.store: SessionStore | None = None
        self.off: str | None = None  # why sessions are not shared, once known

    def contexts(
        self, config: Config, previous: Mapping[Bound, SocketTls]
    ) -> dict[Bound, SocketTls]:
        """listener_contexts (tls.py), each new context on the shared store.
        Raises ValueError for key material that does not load."""
        built = listener_contexts(config, previous)
        for bound, tls in built.items():
            if previous.get(bound) is not tls:
                self._share(bound, tls.context)
        return built

    def _share(self, bound: Bound, context: ssl.SSLContext) -> None:
        if self.off is not None:
            return
        try:
            if self.store is None:
                self.store = SessionStore()
            self.off = attach(context, self.store, os.urandom(16))
        except OSError as exc:
            self.off = f"no shared memory: {exc}"
        if self.off is not None:
            log.warning(
                "TLS session IDs resume only on the worker that made them (%s:%d): %s",
                *bound,
                self.off,
            )
