"""How `appgw run` was asked to run: the command line the master keeps.

A reload reads the configuration file again and applies the same
command-line overrides, so `--bind`, `--port` and `--workers` hold across
reloads.
"""

from __future__ import annotations

import os

import attrs

from appgw import runfiles
from appgw.config import Inputs, load
from appgw.config.errors import ConfigError
from appgw.config.fields import Invalid
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
    inputs: Inputs = attrs.Factory(Inputs)  # --parameters, --reference, --certificate
    handoff: str | None = None  # where `appgw reload --parameters ...` leaves new inputs

    def load(self) -> Config:
        """The configuration with the overrides applied; ConfigError if it is invalid.

        Inputs handed over by `appgw reload --parameters ...` replace the kept
        ones once a configuration loads with them.
        """
        inputs = self.inputs
        if self.handoff is not None and os.path.exists(self.handoff):
            try:
                data = runfiles.read_json(self.handoff)
            except (OSError, ValueError):
                data = None
            runfiles.remove(self.handoff)
            if data is not None:
                try:
                    inputs = Inputs.from_json(data)
                except Invalid as exc:
                    raise ConfigError(self.config_path, [f"appgw reload: {exc}"]) from None
        config = load(self.config_path, inputs)
        self.inputs = inputs
        return apply(
            config,
            bind=self.bind,
            ports=self.ports,
            workers=self.workers,
            pid_file=self.pid_file,
            admin=self.admin,
            access_log=self.access_log,
        )
