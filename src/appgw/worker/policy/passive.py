"""Passive health: servers that refuse or time out connections step aside (pure).

Probes find a dead server only after their interval and threshold (the
default probe: up to 90 s). Meanwhile every request that tried it first
would pay a refused or timed-out connect. So a worker also learns from its
own traffic, in the spirit of nginx's `max_fails`/`fail_timeout`:

- A connect that fails (refused, unreachable, timed out, TLS handshake
  failed) puts the server in back-off for BACKOFF seconds; each further
  failure restarts it. A connect that succeeds ends it.
- A server in back-off goes to the end of the balancer's order: it gets no
  request while another routable server remains, and is still tried when
  no other can be reached (so a pool whose servers all failed once is not
  shut off until the probes say so).
- Failures are logged once per server per LOG_INTERVAL: the first at once,
  the rest counted and reported as one line when the interval has passed
  ("... failed 57 more times in the last 10 s"), not one line per request.
- `snapshot` lists the servers in back-off with their reason, for
  `appgw health` (sent to the master with the worker's heartbeat).

Times are the caller's (`trio.current_time()` on the request path; wall
time only for the snapshot), so the rules are tested without a clock.
"""

from __future__ import annotations

import attrs

BACKOFF = 10.0  # seconds a server that failed a connect is passed over
LOG_INTERVAL = 10.0  # seconds between log lines about one server's connect failures

ServerKey = tuple[str, int]  # (host, port)


@attrs.define
class _Failing:
    reason: str
    until: float  # end of the back-off, on the caller's clock
    failures: int = 1  # since the server last connected
    unlogged: int = 0  # failures since the last log line
    logged_at: float = 0.0


class PassiveHealth:
    """One worker's memory of connect failures."""

    def __init__(self, backoff: float = BACKOFF, log_interval: float = LOG_INTERVAL) -> None:
        self.backoff = backoff
        self.log_interval = log_interval
        self._failing: dict[ServerKey, _Failing] = {}

    @property
    def any_failing(self) -> bool:
        """Whether any server failed a connect since it last connected (cheap)."""
        return bool(self._failing)

    def backed_off(self, host: str, port: int, now: float) -> bool:
        """Whether the server is in back-off (the balancer tries it last)."""
        state = self._failing.get((host, port))
        return state is not None and now < state.until

    def connect_failed(self, host: str, port: int, reason: str, now: float) -> str | None:
        """Record a failed connect; the log line that is due now, if any."""
        key = (host, port)
        state = self._failing.get(key)
        if state is None:
            self._failing[key] = _Failing(reason, now + self.backoff, logged_at=now)
            return f"{reason}; passed over for {self.backoff:g}s"
        state.reason = reason
        state.until = now + self.backoff
        state.failures += 1
        state.unlogged += 1
        return self._due(state, now)

    def connected(self, host: str, port: int, now: float) -> str | None:
        """Record a successful connect; a closing log line if failures went unlogged."""
        state = self._failing.pop((host, port), None)
        if state is None:
            return None
        if state.unlogged:
            return (
                f"{_label(host, port)}: connected again after {state.failures} failed "
                f"connects ({state.unlogged} not logged: {state.reason})"
            )
        return f"{_label(host, port)}: connected again"

    def _due(self, state: _Failing, now: float) -> str | None:
        if now - state.logged_at < self.log_interval:
            return None
        seconds = now - state.logged_at
        line = (
            f"{state.reason}; failed {state.unlogged} more "
            f"time{'s' if state.unlogged != 1 else ''} in the last {seconds:.0f}s"
        )
        state.unlogged = 0
        state.logged_at = now
        return line

    def snapshot(self, now: float, wall: float) -> list[dict[str, object]]:
        """The servers in back-off now: host, port, reason, failures, until (wall time)."""
        return [
            {
                "host": host,
                "port": port,
                "reason": state.reason,
                "failures": state.failures,
                "until": wall + (state.until - now),
            }
            for (host, port), state in self._failing.items()
            if now < state.until
        ]


def _label(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
