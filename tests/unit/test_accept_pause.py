"""AcceptPause: a pause at a resource limit is told once when it begins and once when it ends."""

from __future__ import annotations

import errno
import os

from appgw.accept_pause import PAUSING_ERRNOS, AcceptPause
from appgw.config.model import Config, Gateway, Limits
from appgw.master.descriptors import BASE, needed


def emfile() -> OSError:
    return OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def test_a_pause_is_one_line_in_and_one_line_out_with_its_length_and_deferred_accepts() -> None:
    pause = AcceptPause("127.0.0.1:8080")
    assert pause.accepted(1.0) is None  # not paused: nothing to say
    began = pause.refused(emfile(), 10.0)
    assert began is not None
    assert began.startswith("accept on 127.0.0.1:8080: [Errno 24] Too many open files; pausing")
    assert "until descriptors are free" in began
    assert [pause.refused(emfile(), 10.0 + n / 10) for n in range(1, 42)] == [None] * 41
    assert pause.accepted(14.2) is None  # too soon: the pause may not be over
    assert pause.refused(emfile(), 14.25) is None  # and it was not: the same pause
    ended = pause.accepted(14.8)
    assert ended == (
        "accept on 127.0.0.1:8080: accepting again after 4.3 s paused; 43 accept(s) deferred"
    )
    assert pause.since is None and pause.deferred == 0
    assert pause.accepted(15.0) is None
    again = pause.refused(OSError(errno.ENOBUFS, "No buffer space available"), 20.0)
    assert again is not None and "pausing accepts until memory is free" in again


def test_the_errors_that_pause_are_resource_limits_only() -> None:
    assert {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM} == PAUSING_ERRNOS
    assert errno.ECONNABORTED not in PAUSING_ERRNOS


def test_descriptors_needed_are_two_per_connection_plus_sockets_and_a_base() -> None:
    config = Config("test.toml", gateway=Gateway(limits=Limits(max_connections=100)))
    assert needed(config) == 200 + BASE
