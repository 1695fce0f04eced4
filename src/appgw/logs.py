"""Error and access logging.

Plain synchronous stdlib logging, set up once per process. The error log goes
to stderr or a file; USR1 makes every process reopen its files (for
logrotate). The access log is one line per exchange in a fixed,
space-separated format, written by the worker that served it.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("appgw")
access = logging.getLogger("appgw.access")

FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(message)s"


class ReopenableFileHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A file handler whose file can be reopened after rotation."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(self._open())

    def _open(self):  # type: ignore[no-untyped-def]
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return open(self.path, "a", buffering=1, encoding="utf-8")

    def reopen(self) -> None:
        self.acquire()
        try:
            try:
                stream = self._open()
            except OSError as exc:
                # Keep logging to the old file rather than losing the process.
                self.stream.write(f"appgw: cannot reopen {self.path}: {exc}\n")
                return
            old, self.stream = self.stream, stream
            old.close()
        finally:
            self.release()


def setup(error_log: str | None, access_log: str | None, *, debug: bool = False) -> None:
    """(Re)configure this process's logging."""
    for logger in (log, access):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            if isinstance(handler, ReopenableFileHandler):
                handler.close()
    error_handler: logging.Handler = (
        ReopenableFileHandler(error_log)
        if error_log and error_log != "-"
        else logging.StreamHandler(sys.stderr)
    )
    error_handler.setFormatter(logging.Formatter(FORMAT))
    log.addHandler(error_handler)
    log.setLevel(logging.DEBUG if debug or os.environ.get("APPGW_DEBUG") else logging.INFO)
    log.propagate = False
    access.propagate = False
    access.setLevel(logging.INFO)
    if access_log:
        access_handler: logging.Handler = (
            logging.StreamHandler(sys.stdout)
            if access_log == "-"
            else ReopenableFileHandler(access_log)
        )
        access_handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(access_handler)
    access.disabled = not access_log


def reopen() -> None:
    """Reopen every log file (USR1)."""
    for logger in (log, access):
        for handler in logger.handlers:
            if isinstance(handler, ReopenableFileHandler):
                handler.reopen()


def access_line(
    client: str,
    method: str,
    target: str,
    status: int,
    sent: int,
    duration: float,
    upstream: str,
    host: str,
    transaction_id: str = "",
) -> None:
    if access.disabled or not access.handlers:
        return
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    access.info(
        '%s [%s] "%s %s" %d %d %.3f %s %s %s',
        client,
        stamp,
        method,
        target,
        status,
        sent,
        duration,
        upstream or "-",
        host or "-",
        transaction_id or "-",
    )
