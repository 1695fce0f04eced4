"""An HTTP/2 client for tests: the h2 library (python-hyper) over trio's TLS.

It is independent of the gateway's codec (libnghttp2), so a test that
passes checks the gateway against another implementation. Small and
explicit: `request` sends one request and waits for its answer, `start` and
`answer` let several run at once on the connection, and every event the
library reports is kept (`events`) for tests of resets and GOAWAY.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

import attrs
import h2.config
import h2.connection
import h2.events
import h2.settings
import trio

Fields = Sequence[tuple[bytes, bytes]]


@attrs.define
class Answer:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = attrs.Factory(list)
    body: bytearray = attrs.Factory(bytearray)
    ended: bool = False
    reset: int | None = None  # RST_STREAM's error code

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class H2Client:
    def __init__(
        self, stream: trio.SSLStream[trio.SocketStream], conn: h2.connection.H2Connection
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.answers: dict[int, Answer] = {}
        self.events: list[h2.events.Event] = []
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.settings: dict[int, int] = {}
        self.closed = False
        self.auto_window = True  # give back every DATA frame's bytes at once
        self.tunnel: dict[int, bytearray] = {}  # DATA of streams used as byte pipes

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def read_once(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self.events.append(event)
            self._handle(event)
        await self.flush()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            answer = self.answers[event.stream_id]
            for name, value in event.headers:
                if name == b":status":
                    answer.status = int(value)
                else:
                    answer.headers.append((name, value))
        elif isinstance(event, h2.events.DataReceived):
            answer = self.answers[event.stream_id]
            answer.body += event.data
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.answers[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.answers:
                self.answers[event.stream_id].reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for key, changed in event.changed_settings.items():
                self.settings[int(key)] = changed.new_value

    async def start(
        self,
        path: str,
        *,
        method: str = "GET",
        authority: str = "localhost",
        headers: Fields = (),
        body: bytes | None = None,
        extra: Fields = (),
        open_ended: bool = False,
    ) -> int:
        """Send a request's head (and `body`); its stream id. The stream
        ends with the head unless there is a body or it is `open_ended`."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *extra,
            *headers,
        ]
        self.answers[stream_id] = Answer()
        self.conn.send_headers(stream_id, fields, end_stream=body is None and not open_ended)
        await self.flush()
        if body is not None:
            await self.send_body(stream_id, body, end=True)
        return stream_id

    async def send_body(self, stream_id: int, body: bytes, *, end: bool) -> None:
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(stream_id), 16384)
            if window <= 0:
                await self.read_once()
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
            await self.flush()
        if end:
            self.conn.end_stream(stream_id)
            await self.flush()

    async def answer(self, stream_id: int) -> Answer:
        answer = self.answers[stream_id]
        while not answer.ended and answer.reset is None:
            if self.closed:
                raise ConnectionError(f"connection closed before stream {stream_id} ended")
            await self.read_once()
        return answer

    async def request(self, path: str, **kwargs: object) -> Answer:
        return await self.answer(await self.start(path, **kwargs))  # type: ignore[arg-type]

    async def frames_after(self, data: bytes = b"") -> list[object]:
        """hyperframe's frames from the socket until the gateway closes it
        (for what the h2 library stops parsing after a GOAWAY); `data` goes
        out first, as it is."""
        import hyperframe.frame

        if data:
            await self.stream.send_all(data)
        buffer = bytearray()
        frames: list[object] = []
        while True:
            try:
                chunk = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                chunk = b""
            if not chunk:
                return frames
            buffer += chunk
            while len(buffer) >= 9:
                frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(bytes(buffer[9 : 9 + length])))
                del buffer[: 9 + length]
                frames.append(frame)

    async def aclose(self) -> None:
        try:
            self.conn.close_connection()
            await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h2.exceptions.ProtocolError):
            pass
        await trio.aclose_forcefully(self.stream)


async def open_h2(
    port: int,
    ca_pem: bytes,
    *,
    host: str = "127.0.0.1",
    server_name: str = "localhost",
    window: int | None = None,
    client_cert: Path | None = None,
) -> H2Client:
    """An HTTP/2 connection to the gateway (ALPN h2 required), preface and
    SETTINGS exchanged; `window`: the client's initial stream window;
    `client_cert`: a PEM file with the client's certificate and key."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    if client_cert is not None:
        context.load_cert_chain(client_cert)
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, context, server_hostname=server_name)
    await stream.do_handshake()
    assert stream.selected_alpn_protocol() == "h2", stream.selected_alpn_protocol()
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    if window is not None:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    client = H2Client(stream, conn)
    await client.flush()
    while not client.settings and not client.closed:
        await client.read_once()
    return client
