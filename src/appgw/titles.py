"""Process titles: what `ps`, `top` and `pgrep` show for each process.

Every process of a gateway starts as the same `python .../appgw run -c
FILE` line. The master, each worker and the prober then set their own
title, as nginx's, PostgreSQL's and gunicorn's processes do:

    appgw: master (gen 3) -c /etc/appgw/gateway.toml
    appgw: worker (gen 3)
    appgw: worker (gen 2, draining)
    appgw: prober

The master's names the generation it serves (1 + successful reloads) and
the configuration file as given on its command line; a worker's names its
generation and, once it drains, says so. The texts are pure functions;
`set_title` is the one call that changes the process (setproctitle, which
also sets the kernel's short name that `top` and plain `pgrep` read).
"""

from __future__ import annotations

import setproctitle


def master_title(generation: int, config_path: str, stopping: bool = False) -> str:
    state = f"gen {generation}, stopping" if stopping else f"gen {generation}"
    return f"appgw: master ({state}) -c {config_path}"


def worker_title(generation: int, *, draining: bool = False) -> str:
    state = f"gen {generation}, draining" if draining else f"gen {generation}"
    return f"appgw: worker ({state})"


PROBER_TITLE = "appgw: prober"


def set_title(title: str) -> None:
    """This process's title in ps; never fails (a title is not worth a crash)."""
    try:
        setproctitle.setproctitle(title)
    except Exception:  # noqa: BLE001 - an exotic platform: keep the old title
        pass


__all__ = ["PROBER_TITLE", "master_title", "set_title", "worker_title"]
