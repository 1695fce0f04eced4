"""How long each rule's WebSocket traffic may be silent (pure).

A backend setting's request timeout also bounds a tunnel's silence: no
byte either way for that long and the gateway closes it (Application
Gateway's semantics, kept). Applications keep their sockets alive with
heartbeats of their own, and one slower than the timeout has its idle
sessions cut again and again. `silence_limits` names, for each rule (and
each path rule of a path map), the silence after which its WebSocket
traffic is cut, and the common heartbeats that are slower; `appgw check`
prints it and the master logs it when it starts and reloads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import attrs

from appgw.config.model import Config

# Heartbeat intervals of common WebSocket applications with their defaults,
# in seconds (docs/configuration.md gives the sources and the knobs).
HEARTBEATS: tuple[tuple[str, int], ...] = (
    ("graphql-ws", 12),  # the server's WebSocket Ping (useServer for ws)
    ("SignalR", 15),  # the server's keep-alive message
    ("Socket.IO", 25),  # pingInterval, the server's ping
    ("Jupyter", 30),  # the server's WebSocket Ping to kernel sockets
    ("Streamlit", 30),  # server.websocketPingInterval (Tornado 6.5 and later)
)


@attrs.frozen
class SilenceLimit:
    """Where WebSocket traffic of a rule is cut after `seconds` of silence."""

    rule: str  # "rule 'chat'" or "rule 'site', path rule 'live'"
    setting: str
    seconds: int
    slower: tuple[tuple[str, int], ...]  # heartbeats that do not come within it

    def describe(self) -> str:
        line = (
            f"{self.rule}: WebSocket traffic is cut after {self.seconds} s of silence "
            f"(requestTimeout of settings '{self.setting}')"
        )
        if self.slower:
            names = ", ".join(f"{name} ({interval} s)" for name, interval in self.slower)
            line += (
                f"; slower heartbeats, whose idle sessions will be cut: {names}; "
                f"raise settings.{self.setting}.request_timeout above them if those run here"
            )
        return line


def silence_limits(config: Config) -> list[SilenceLimit]:
    """Each rule's (or path rule's) silence limit, in the rules' order by name."""
    targets: list[tuple[str, str]] = []
    for name in sorted(config.rules):
        rule = config.rules[name]
        path_map = config.path_maps.get(rule.path_map or "")
        if rule.kind == "path" and path_map is not None:
            if path_map.default_setting:
                targets.append(
                    (
                        f"rule '{name}', default of path map '{path_map.name}'",
                        path_map.default_setting,
                    )
                )
            for path_rule in path_map.rules:
                if path_rule.setting:
                    targets.append(
                        (f"rule '{name}', path rule '{path_rule.name}'", path_rule.setting)
                    )
        elif rule.setting:
            targets.append((f"rule '{name}'", rule.setting))
    limits = []
    for where, setting_name in targets:
        setting = config.settings.get(setting_name)
        if setting is None:
            continue
        seconds = setting.request_timeout
        slower = tuple((app, every) for app, every in HEARTBEATS if every >= seconds)
        limits.append(SilenceLimit(where, setting_name, seconds, slower))
    return limits


def config_notes(config: Config) -> Iterator[tuple[int, str]]:
    """What the master logs about a configuration it loaded: (logging level, line).

    Its warnings, and each rule's silence limit (a warning where common
    heartbeats are slower).
    """
    for warning in config.warnings:
        yield logging.WARNING, f"{config.source}: {warning}"
    for limit in silence_limits(config):
        yield (logging.WARNING if limit.slower else logging.INFO), limit.describe()
