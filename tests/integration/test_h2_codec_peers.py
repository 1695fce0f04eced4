"""The HTTP/2 codec against real clients: curl, nghttp and h2load.

A small blocking server (a thread per connection, plain TCP with prior
knowledge, as the clients allow) drives H2Session the way the gateway
does: bytes read go to receive(), the events are answered, pending() is
written in one send, response bodies wait for WindowOpened and request
bodies are consumed() once counted. Each client is skipped where it is
not installed (Debian: curl, nghttp2-client).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from appgw.worker.codec.h2_events import (
    ConnectionEnded,
    RequestData,
    RequestHeaders,
    StreamReset,
    WindowOpened,
)
from appgw.worker.codec.h2_session import H2Session
from appgw.worker.codec.h2_settings import H2Settings

BIG = bytes(range(256)) * 4096  # 1 MiB, past any client's first window


class Server:
    """Answers `/` with hello, `/big` with BIG, a POST with its body's length."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            with connection:
                self._run(connection)
        except BaseException as error:  # reported by the test
            self.errors.append(error)

    def _run(self, connection: socket.socket) -> None:
        session = H2Session(H2Settings())
        bodies: dict[int, memoryview] = {}  # what waits for a window
        uploads: dict[int, int] = {}
        connection.sendall(session.pending())
        while not session.closed:
            data = connection.recv(65536)
            if not data:
                return
            for event in session.receive(data):
                if isinstance(event, RequestHeaders):
                    fields = dict(event.headers)
                    if fields[b":method"] == b"POST":
                        uploads[event.stream_id] = 0
                        continue
                    body = BIG if fields[b":path"] == b"/big" else b"hello"
                    session.respond(event.stream_id, 200, [(b"content-type", b"text/plain")], False)
                    bodies[event.stream_id] = memoryview(body)
                elif isinstance(event, RequestData):
                    uploads[event.stream_id] += len(event.data)
                    session.consumed(event.stream_id, event.flow_length)
                    if event.end_stream:
                        count = str(uploads.pop(event.stream_id)).encode()
                        session.respond(event.stream_id, 200, [], False)
                        bodies[event.stream_id] = memoryview(count)
                elif isinstance(event, StreamReset):
                    bodies.pop(event.stream_id, None)
                elif isinstance(event, ConnectionEnded | WindowOpened):
                    pass
            for stream_id, rest in list(bodies.items()):
                taken = session.send_data(stream_id, rest, True)
                if taken == len(rest):
                    del bodies[stream_id]
                else:
                    bodies[stream_id] = rest[taken:]
            out = session.pending()
            if out:
                connection.sendall(out)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()
    assert not running.errors


def _client(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _run(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=data, capture_output=True, timeout=30, check=False)


def test_curl_gets_and_posts(server):
    curl = _client("curl")
    url = f"http://127.0.0.1:{server.port}"
    # One URL per run: curl 7.88 fails reusing a prior-knowledge connection
    # (curl/curl#10634, fixed in 8.0).
    for path, body in (("/", b"hello"), ("/big", BIG)):
        done = _run(curl, "-sS", "--http2-prior-knowledge", f"{url}{path}")
        assert done.returncode == 0, done.stderr
        assert done.stdout == body
    upload = bytes(300_000)  # past the stream's 256 KiB window: consumed() opens it
    done = _run(curl, "-sS", "--http2-prior-knowledge", "--data-binary", "@-", f"{url}/up", data=upload)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"300000"


def test_nghttp_with_its_64_kib_window(server):
    nghttp = _client("nghttp")
    done = _run(nghttp, f"http://127.0.0.1:{server.port}/big")
    assert done.returncode == 0, done.stderr
    assert done.stdout == BIG


def test_h2load_many_streams_on_two_connections(server):
    h2load = _client("h2load")
    done = _run(h2load, "-n", "2000", "-c", "2", "-m", "10", f"http://127.0.0.1:{server.port}/")
    assert done.returncode == 0, done.stderr
    assert b"2000 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout
