"""Readers let go of their parsers: no cyclic garbage per request.

A reader and its llhttp parser refer to each other (the parser holds the
reader's callbacks). A reader that is closed when its message is done is
freed by reference counting alone; the cyclic collector, which under load
made most of a worker's collection work, finds nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from appgw.worker.codec.request_reader import END, RequestHead, RequestReader
from appgw.worker.codec.response_reader import ResponseHead, ResponseReader

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello"
REQUEST = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_closed_response_reader_leaves_no_cycle(collector_off):
    reader = ResponseReader(False, 8192, "backend")
    reader.feed(RESPONSE)
    assert isinstance(reader.next_event(), ResponseHead)
    assert bytes(reader.rest) == b"hello"
    reader.close()
    del reader
    assert gc.collect() == 0


def test_a_response_reader_left_open_is_a_cycle(collector_off):
    """The check above can tell: a reader dropped without close is garbage
    only the collector frees."""
    reader = ResponseReader(False, 8192, "backend")
    reader.feed(RESPONSE)
    del reader
    assert gc.collect() > 0


def test_a_closed_request_reader_leaves_no_cycle(collector_off):
    reader = RequestReader(8192, 8192)
    reader.feed(REQUEST)
    assert isinstance(reader.next_event(), RequestHead)
    assert reader.next_event() is END
    reader.close()
    reader.close()  # closing twice is harmless
    del reader
    assert gc.collect() == 0
