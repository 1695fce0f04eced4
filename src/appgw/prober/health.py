"""Backend health: the state of every probed server, kept as a table of rules.

The rules:

- Every server starts Unknown, and an Unknown server receives traffic: until
  a probe says otherwise, a server is presumed able to serve.
- One successful probe makes a server Healthy, whatever its state.
- A server turns Unhealthy when its probe has failed unhealthy_threshold
  times in a row. Failures count from the start, so an Unknown server whose
  first probes fail turns Unhealthy after as many failures as a Healthy one.
  Fewer failures leave the state as it was.
- `since` is the time of the last change of state; `reason` is what the
  latest probe found, in Application Gateway's words (`reason` changes with
  every probe that finds something new, `since` only with the state).
- A server is routable unless it is Unhealthy, except for min_servers: per
  (pool, setting), while fewer than the probe's min_servers servers are
  routable, Unhealthy servers are routable too, up to that count. The ones
  chosen are those with the most recent successful probe first, then those
  never healthy, in pool order.

The transitions are data (_TRANSITIONS). HealthTable applies them and keeps
the counts; HealthView is the worker's side, built from a published
snapshot. Nothing here does I/O or reads a clock: callers pass `now`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from appgw.prober.results import PENDING, ProbeResult

if TYPE_CHECKING:
    from appgw.prober.targets import Target, TargetKey


class State(enum.StrEnum):
    UNKNOWN = "Unknown"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"


class _Event(enum.Enum):
    SUCCESS = enum.auto()
    FAILURE = enum.auto()  # a failure below the threshold
    THRESHOLD = enum.auto()  # a failure that reaches (or passes) the threshold


_TRANSITIONS: dict[State, dict[_Event, State]] = {
    State.UNKNOWN: {
        _Event.SUCCESS: State.HEALTHY,
        _Event.FAILURE: State.UNKNOWN,
        _Event.THRESHOLD: State.UNHEALTHY,
    },
    State.HEALTHY: {
        _Event.SUCCESS: State.HEALTHY,
        _Event.FAILURE: State.HEALTHY,
        _Event.THRESHOLD: State.UNHEALTHY,
    },
    State.UNHEALTHY: {
        _Event.SUCCESS: State.HEALTHY,
        _Event.FAILURE: State.UNHEALTHY,
        _Event.THRESHOLD: State.UNHEALTHY,
    },
}


class Change(enum.Flag):
    """What a probe result changed, as far as anyone outside can see."""

    NONE = 0
    REASON = enum.auto()  # the reason text of the probed server
    STATE = enum.auto()  # the state of the probed server
    ROUTING = enum.auto()  # whether some server of the (pool, setting) is routable


# ---------------------------------------------------------------------------
# The prober's side: every server's state.


@attrs.define
class _Server:
    key: TargetKey
    threshold: int
    since: float
    state: State = State.UNKNOWN
    reason: str = PENDING
    failures: int = 0  # consecutive
    last_success: float | None = None
    routable: bool = True


@attrs.define
class _Group:
    """The servers of one (pool, setting), in pool order."""

    min_servers: int
    servers: list[_Server] = attrs.Factory(list)


class HealthTable:
    """Every probed server's health; fed probe results, read as snapshots."""

    def __init__(self, targets: Iterable[Target], now: float) -> None:
        self._servers: dict[TargetKey, _Server] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        for target in targets:
            if target.key in self._servers:
                continue
            server = _Server(target.key, target.probe.unhealthy_threshold, since=now)
            self._servers[target.key] = server
            group = self._groups.setdefault(
                (target.pool, target.setting), _Group(target.probe.min_servers)
            )
            group.servers.append(server)

    def carry_over(self, snapshot: Mapping[str, Any] | None) -> None:
        """Start from a previous prober's results (after a reload or restart).

        A server known before keeps its state, reason and since; an
        Unhealthy one stays out of rotation until a probe succeeds, instead
        of getting traffic again as Unknown while failures pile up anew.
        """
        if not snapshot:
            return
        for entry in snapshot.get("servers", ()):
            try:
                key = (entry["pool"], entry["setting"], entry["host"], int(entry["port"]))
                server = self._servers.get(key)
                if server is None:
                    continue
                server.state = State(entry["state"])
                server.since = float(entry["since"])
                server.reason = str(entry["reason"])
            except (KeyError, TypeError, ValueError):
                continue
            if server.state is State.UNHEALTHY:
                server.failures = server.threshold
        for group in self._groups.values():
            self._update_routing(group)

    def __len__(self) -> int:
        return len(self._servers)

    def __contains__(self, key: object) -> bool:
        return key in self._servers

    def state(self, key: TargetKey) -> State:
        return self._servers[key].state

    def reason(self, key: TargetKey) -> str:
        return self._servers[key].reason

    def is_routable(self, key: TargetKey) -> bool:
        return self._servers[key].routable

    def record(self, key: TargetKey, result: ProbeResult, now: float) -> Change:
        """Apply one probe result of the server `key`; say what it changed."""
        server = self._servers[key]
        if result.ok:
            server.failures = 0
            server.last_success = now
            event = _Event.SUCCESS
        else:
            server.failures += 1
            event = _Event.THRESHOLD if server.failures >= server.threshold else _Event.FAILURE
        change = Change.NONE
        new_state = _TRANSITIONS[server.state][event]
        if new_state is not server.state:
            server.state = new_state
            server.since = now
            change |= Change.STATE
        if result.reason != server.reason:
            server.reason = result.reason
            change |= Change.REASON
        if self._update_routing(self._groups[key[:2]]):
            change |= Change.ROUTING
        return change

    def snapshot(self, now: float) -> dict[str, Any]:
        """Every server's health as plain JSON-ready data, in target order."""
        return {
            "time": now,
            "servers": [
                {
                    "pool": s.key[0],
                    "setting": s.key[1],
                    "host": s.key[2],
                    "port": s.key[3],
                    "state": str(s.state),
                    "routable": s.routable,
                    "since": s.since,
                    "reason": s.reason,
                }
                for s in self._servers.values()
            ],
        }

    @staticmethod
    def _update_routing(group: _Group) -> bool:
        routable = [s.state is not State.UNHEALTHY for s in group.servers]
        missing = group.min_servers - sum(routable)
        if missing > 0:
            down = [i for i, ok in enumerate(routable) if not ok]
            down.sort(key=lambda i: _keep_order(group.servers[i], i))
            for i in down[:missing]:
                routable[i] = True
        changed = False
        for server, ok in zip(group.servers, routable, strict=True):
            if server.routable is not ok:
                server.routable = ok
                changed = True
        return changed


def _keep_order(server: _Server, index: int) -> tuple[bool, float, int]:
    # Most recently successful first; never successful last; then pool order.
    last = server.last_success
    return (last is None, -(last or 0.0), index)


# ---------------------------------------------------------------------------
# The worker's side: answers "may this server get a request?" per request.


class HealthView:
    """Routability of servers, from a published snapshot; O(1) per lookup.

    `HealthView(snapshot)` takes HealthTable.snapshot() output (as decoded
    from JSON) and raises ValueError if it is malformed. A server the snapshot
    does not list is routable, and so is every server of `HealthView()`.
    """

    __slots__ = ("_unroutable", "time")

    def __init__(self, snapshot: Mapping[str, Any] | None = None) -> None:
        self._unroutable: frozenset[TargetKey] = frozenset()
        self.time: float | None = None  # when the snapshot was taken; None: no snapshot
        if snapshot is None:
            return
        try:
            unroutable = []
            for entry in snapshot["servers"]:
                routable = entry.get("routable")
                if routable is None:
                    routable = entry["state"] != State.UNHEALTHY
                if not routable:
                    pool, setting = str(entry["pool"]), str(entry["setting"])
                    unroutable.append((pool, setting, str(entry["host"]), int(entry["port"])))
            when = snapshot.get("time")
            self.time = None if when is None else float(when)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed health snapshot: {exc!r}") from exc
        self._unroutable = frozenset(unroutable)

    def is_routable(self, pool: str, setting: str, host: str, port: int) -> bool:
        return (pool, setting, host, port) not in self._unroutable

    def is_routable_key(self, key: TargetKey) -> bool:
        return key not in self._unroutable

    @property
    def unroutable(self) -> frozenset[TargetKey]:
        return self._unroutable
