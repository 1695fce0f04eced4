"""A listener whose accepts a resource limit holds back, told once each way.

When accept() fails for want of a descriptor (EMFILE: this process's
limit; ENFILE: the system's) or of kernel memory (ENOBUFS, ENOMEM), the
connection stays queued in the listening socket's backlog and the worker
tries again a moment later (RETRY), as nginx and HAProxy do; it serves again
as soon as connections end. What an operator needs is when that started
and when it ended, not a line per retry: AcceptPause keeps one listener's
pause (since when, why, how many accepts it deferred) and words the two
log lines. No I/O here: the accept loop passes the clock and logs.
"""

from __future__ import annotations

import errno

import attrs

# accept() errors that mean "not now": the connection waits in the backlog.
PAUSING_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RETRY = 0.1  # seconds between two tries while paused
# A pause ends once accepts have gone on this long without a refusal: right
# after descriptors free up, the backlog's connections may use them up again
# for a moment, and that is still the same pause.
SETTLE = 0.5


@attrs.define
class AcceptPause:
    """One listener's pause; `since` is None while it accepts normally."""

    where: str  # "127.0.0.1:8080", as the log names the listener
    since: float | None = None
    deferred: int = 0  # accepts refused (and retried) since the pause began
    last_refused: float = 0.0

    def refused(self, exc: OSError, now: float) -> str | None:
        """An accept was refused by a limit; the log line when this begins a pause."""
        self.deferred += 1
        self.last_refused = now
        if self.since is not None:
            return None
        self.since = now
        what = "descriptors are" if exc.errno in (errno.EMFILE, errno.ENFILE) else "memory is"
        return (
            f"accept on {self.where}: {exc}; pausing accepts until {what} free"
            f" (retrying every {RETRY:g} s)"
        )

    def accepted(self, now: float) -> str | None:
        """An accept succeeded; the log line when this ends a pause."""
        if self.since is None or now - self.last_refused < SETTLE:
            return None
        seconds, deferred = self.last_refused + RETRY - self.since, self.deferred
        self.since, self.deferred = None, 0
        return (
            f"accept on {self.where}: accepting again after {seconds:.1f} s paused;"
            f" {deferred} accept(s) deferred"
        )


__all__ = ["PAUSING_ERRNOS", "RETRY", "AcceptPause"]
