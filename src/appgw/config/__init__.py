"""Loading and validating the gateway's configuration."""

from __future__ import annotations

from appgw.config.errors import ConfigError
from appgw.config.inputs import Inputs
from appgw.config.model import Config
from appgw.config.silence import config_notes

__all__ = ["Config", "ConfigError", "Inputs", "config_notes", "load"]



def load(path: str, inputs: Inputs | None = None) -> Config:
    """Load and validate a TOML file, an ARM template or `az ... show` JSON,
    with the command line's inputs (`--parameters`, `--reference`, ...).

    Raises ConfigError listing every problem with its key path.
    """
    from appgw.config.loader import load_file

    return load_file(path, inputs)
