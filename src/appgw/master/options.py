"""How `appgw run` was asked to run: the command line the master keeps.

A reload reads the configuration file again and applies the same
command-line overrides, so `--bind`, `--port` and `--workers` hold across
reloads.
"""

from __future__ import annotations

import attrs

from appgw.config import load
from appgw.config.model import Config
from appgw.config.overrides import apply


@attrs.define
class RunOptions:
    config_path: str
    workers: int | None = None
    pid_file: str | None = None
    bind: str | None = None
    ports: dict[int, int] = attrs.Factory(dict)
    ready_fd: int | None = None
    watch: bool = False  # --watch: reload when the configuration file changes
    admin: str | None = None  # --admin ADDR:PORT
    access_log: str | None = None  # --access-log PATH

    def load(self) -> Config:
        """The configuration with the overrides applied; ConfigError if it is invalid."""
        config = load(self.config_path)
        return apply(
            config,
            bind=self.bind,
            ports=self.ports,
            workers=self.workers,
            pid_file=self.pid_file,
            admin=self.admin,
            access_log=self.access_log,
        )
