"""An HTTP/2 stream as the exchange's Downstream (server/h2_stream.py), on a
recording fake of the codec: flow control as back-pressure, both ways."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from appgw.config.model import Limits
from appgw.errors import ClientGone
from appgw.worker.server.h2_stream import H2Stream


class Session:
    """What the stream calls of the codec (H2Session), recorded."""

    def __init__(self, window: int) -> None:
        self.window_left = window
        self.calls: list[tuple[Any, ...]] = []

    def consumed(self, stream_id: int, n: int) -> None:
        self.calls.append(("consumed", n))

    def respond(self, stream_id: int, status: int, fields: list[Any], end_stream: bool) -> None:
        self.calls.append(("respond", status, fields, end_stream))

    def send_data(self, stream_id: int, data: Any, end_stream: bool) -> int:
        taken = min(len(data), self.window_left)
        self.window_left -= taken
        self.calls.append(("data", bytes(data[:taken]), end_stream and taken == len(data)))
        return taken

    def reset(self, stream_id: int, code: int) -> None:
        self.calls.append(("reset", code))


class Host:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.limits = Limits(request_timeout=5)
        self.peer = ("127.0.0.1", 1)
        self.flushes = 0
        self.backlogged = False

    def flush(self) -> None:
        self.flushes += 1


async def test_request_body_windows_open_only_once_a_piece_went_on() -> None:
    session = Session(window=1000)
    stream = H2Stream(Host(session), 1)  # type: ignore[arg-type]
    stream.data(b"abc", 3, False)
    stream.data(b"de", 7, True)  # 5 bytes of padding
    assert await stream.receive_body() == b"abc"
    assert session.calls == []  # handed out, not yet forwarded
    assert await stream.receive_body() == b"de"
    assert session.calls == [("consumed", 3)]
    assert await stream.receive_body() is None
    assert session.calls == [("consumed", 3), ("consumed", 7)]
    assert stream.request_done


async def test_a_response_waits_for_the_clients_window() -> None:
    session = Session(window=4)
    stream = H2Stream(Host(session), 1)  # type: ignore[arg-type]
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_head, head, b"0123456789")
        await trio.testing.wait_all_tasks_blocked()
        assert session.calls[0] == ("respond", 200, [(b"content-length", b"10")], False)
        assert session.calls[1] == ("data", b"0123", False)
        session.window_left = 100  # WINDOW_UPDATE
        stream.wake()
    assert session.calls[-1] == ("data", b"456789", True)  # the last byte ends the stream
    stream.finish()
    assert session.calls[-1] == ("data", b"456789", True)  # nothing more: it ended already


async def test_a_client_that_never_opens_its_window_is_gone_in_time() -> None:
    session = Session(window=0)
    host = Host(session)
    host.limits = Limits(request_timeout=0.05)
    stream = H2Stream(host, 1)  # type: ignore[arg-type]
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"
    with trio.fail_after(2), pytest.raises(ClientGone):
        await stream.send_head(head, b"abc")


def test_the_codec_settings_come_from_the_configuration() -> None:
    from appgw.config.model import Http2
    from appgw.worker.server.http2 import codec_settings

    settings = codec_settings(
        Http2(enabled=True, websocket=False, max_concurrent_streams=128, initial_window_bytes=65535)
    )
    assert (settings.max_concurrent_streams, settings.initial_window_bytes) == (128, 65535)
    assert (settings.max_header_field_bytes, settings.max_header_list_bytes) == (8192, 16384)
    assert settings.enable_connect_protocol is False  # websocket = false: not advertised


def test_a_whole_response_is_told_by_the_codec() -> None:
    """The connection resets an answered stream whose request goes on once
    the codec says its response is out (H2Session.response_sent)."""
    from tests.support.h2_raw import POST, headers_frame, raw_session

    session, encoder = raw_session()
    session.receive(headers_frame(encoder, 1, POST, end_stream=False))  # a request body to come
    session.respond(1, 200, [(b"content-length", b"2")], end_stream=False)
    assert session.send_data(1, b"ok", end_stream=True) == 2
    assert not session.response_sent(1)  # taken, not yet framed
    assert session.pending()
    assert session.response_sent(1)  # END_STREAM written: a reset may follow


def test_the_server_reads_nothing_private_of_the_codec() -> None:
    """server/ asks the codec's session through its methods only: no
    `session._x` (the codec's records are its own to change)."""
    import ast
    from pathlib import Path

    import appgw.worker.server as server

    reached = []
    for path in Path(server.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name.endswith("session"):
                    reached.append(f"{path.name}:{node.lineno} {name}.{node.attr}")
    assert reached == []


def test_an_interim_response_comes_before_the_final_one() -> None:
    """H2Session.inform: a 1xx HEADERS frame, the stream left open for the final one."""
    from hpack import Decoder
    from hyperframe.frame import HeadersFrame

    from tests.support.h2_raw import POST, frames, headers_frame, raw_session

    session, encoder = raw_session()
    session.receive(headers_frame(encoder, 1, [*POST, ("expect", "100-continue")], False))
    session.inform(1, 100, [])
    session.respond(1, 204, [], end_stream=True)
    sent = [f for f in frames(session.pending()) if isinstance(f, HeadersFrame)]
    decoder = Decoder()
    assert [decoder.decode(f.data) for f in sent] == [[(":status", "100")], [(":status", "204")]]
    assert [sorted(f.flags) for f in sent] == [["END_HEADERS"], ["END_HEADERS", "END_STREAM"]]
    with pytest.raises(ValueError, match="not interim"):
        session.inform(1, 200, [])
