"""Command-line overrides applied to a loaded configuration.

An ARM template names Azure's frontend ports (80, 443) and no local bind
address; `--bind` and `--port FRONT=LOCAL` run the same file on this machine
without editing it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from appgw.config.admin import admin_problems, parse_admin
from appgw.config.bound import bound_conflicts
from appgw.config.errors import ConfigError
from appgw.config.model import Admin, Config


def apply(
    config: Config,
    *,
    bind: str | None = None,
    ports: Mapping[int, int] | None = None,
    workers: int | None = None,
    pid_file: str | None = None,
    admin: str | None = None,
    access_log: str | None = None,
) -> Config:
    """`config` with the command line's overrides; ConfigError if the admin address is refused."""
    ports = ports or {}
    listeners = {
        name: attrs.evolve(
            listener,
            address=bind or listener.address,
            port=ports.get(listener.port, listener.port),
        )
        for name, listener in config.listeners.items()
    }
    if bind or ports:
        flags = " ".join(
            [*(["--bind " + bind] if bind else []), *(f"--port {f}={t}" for f, t in ports.items())]
        )
        conflicts = bound_conflicts(
            attrs.evolve(config, listeners=listeners), config.listeners, flags
        )
        if conflicts:
            raise ConfigError(config.source, conflicts)
    gateway = config.gateway
    if workers is not None:
        gateway = attrs.evolve(gateway, workers=workers)
    if pid_file is not None:
        gateway = attrs.evolve(gateway, pid_file=pid_file)
    if access_log is not None:
        gateway = attrs.evolve(gateway, access_log=access_log)
    if admin is not None:
        try:
            address, port = parse_admin(admin)
        except ValueError as exc:
            raise ConfigError(config.source, [str(exc)]) from None
        public = gateway.admin.public if gateway.admin is not None else False
        gateway = attrs.evolve(gateway, admin=Admin(port=port, address=address, public=public))
    if gateway.admin is not None and (admin is not None or bind or ports):
        where = f"--admin {admin}" if admin is not None else "gateway.admin"
        problems = admin_problems(gateway.admin, listeners.values())
        if problems:
            raise ConfigError(config.source, [f"{where}: {message}" for _, message in problems])
    return attrs.evolve(config, listeners=listeners, gateway=gateway)


def parse_port_map(items: list[str]) -> dict[int, int]:
    """["80=8080", "443=8443"] -> {80: 8080, 443: 8443}; ValueError names the bad item."""
    mapping = {}
    for item in items:
        front, sep, local = item.partition("=")
        try:
            if not sep:
                raise ValueError
            front_port, local_port = int(front), int(local)
            if not (0 < front_port < 65536 and 0 < local_port < 65536):
                raise ValueError
        except ValueError:
            raise ValueError(f"--port {item}: expected FRONTEND=LOCAL, ports 1..65535") from None
        mapping[front_port] = local_port
    return mapping
