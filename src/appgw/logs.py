"""Error and access logging.

Plain synchronous stdlib logging for the error log, set up once per
process, to stderr or a file. The access log is not stdlib logging: one
JSON object per line, with Application Gateway's access-log field names,
written by the worker that served the request straight to its file (one
write per line, no lock, no formatting layers). USR1 makes every process
reopen its files (for logrotate).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import IO

log = logging.getLogger("appgw")

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


def setup(error_log: str | None, access_log_path: str | None, *, debug: bool = False) -> None:
    """(Re)configure this process's logging."""
    for handler in list(log.handlers):
        log.removeHandler(handler)
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
    access_log.open(access_log_path)


def reopen() -> None:
    """Reopen every log file (USR1)."""
    for handler in log.handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
    access_log.reopen()
    firewall_log.reopen()


class AccessLog:
    """The access log: a path ("-" for stdout) opened line-buffered, or nothing."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.stream: IO[str] | None = None

    @property
    def enabled(self) -> bool:
        return self.stream is not None

    def open(self, path: str | None) -> None:
        self.close()
        self.path = path or None
        if self.path is None:
            return
        if self.path == "-":
            self.stream = sys.stdout
            return
        try:
            self.stream = self._open(self.path)
        except OSError as exc:
            log.error("cannot open the access log %s: %s", self.path, exc)

    @staticmethod
    def _open(path: str) -> IO[str]:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        return open(path, "a", buffering=1, encoding="utf-8")

    def reopen(self) -> None:
        if self.path in (None, "-"):
            return
        assert self.path is not None
        try:
            stream = self._open(self.path)
        except OSError as exc:
            log.error("cannot reopen the access log %s: %s", self.path, exc)
            return
        old, self.stream = self.stream, stream
        if old is not None:
            old.close()

    def close(self) -> None:
        if self.stream is not None and self.stream is not sys.stdout:
            self.stream.close()
        self.stream = None

    def write(self, entry: dict[str, object]) -> None:
        stream = self.stream
        if stream is None:
            return
        try:
            # Line-buffered: the newline makes this one write.
            stream.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
        except (OSError, ValueError) as exc:  # a full disk must not fail the request
            log.warning("access log: %s", exc)
            if stream is not sys.stdout:
                self.close()


access_log = AccessLog()
# The WAF's firewall log (ApplicationGatewayFirewallLog's fields), opened by
# workers that have WAF policies (worker/exchange/firewall_step.py).
firewall_log = AccessLog()
