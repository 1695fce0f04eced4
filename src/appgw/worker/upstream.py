"""Older import path of the stream helpers (see streams.py and backends.py)."""

from __future__ import annotations

from appgw.worker.streams import RECEIVE_SIZE, abort, raw_socket

__all__ = ["RECEIVE_SIZE", "abort", "raw_socket"]
