#!/usr/bin/env python3
"""CPU per request of the HTTP/2 codec's server side: libnghttp2 (appgw's
H2Session) against python-hyper's h2 doing the same work.

    .venv/bin/python scripts/h2_codec_bench.py [REQUESTS] [ROUNDS]

The client's bytes are recorded once with h2 (a preface, windows opened
wide, then one HEADERS frame per GET), so that only the server side is
timed: bytes in, the request's head out, a response head and body queued,
the bytes to write taken. Two bodies (13 bytes, 64 KiB) and two shapes
(one request per read, ten per read as h2load -m 10 sends them). Prints
the best of ROUNDS, in microseconds of process CPU per request.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings

from appgw.worker.codec.h2_events import RequestHeaders
from appgw.worker.codec.h2_session import H2Session
from appgw.worker.codec.h2_settings import H2Settings
from appgw.worker.codec.nghttp2_lib import load

GET = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "bench.example"),
    (":path", "/index.html"),
    ("user-agent", "h2load nghttp2/1.52.0"),
    ("accept", "*/*"),
]
WINDOW = 2**31 - 1


def record(requests: int, per_read: int) -> tuple[bytes, list[bytes]]:
    """The client's preface, and its bytes for each read of `per_read` GETs."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
    client.increment_flow_control_window(WINDOW - 65535)
    preface = client.data_to_send()
    reads = []
    stream_id = 1
    for _ in range(requests // per_read):
        for _ in range(per_read):
            client.send_headers(stream_id, GET, end_stream=True)
            stream_id += 2
        reads.append(client.data_to_send())
    return preface, reads


def nghttp2_server(body: bytes) -> Callable[[bytes], bytes]:
    session = H2Session(H2Settings())
    head = [(b"content-type", b"text/html"), (b"content-length", str(len(body)).encode())]

    def serve(data: bytes) -> bytes:
        for event in session.receive(data):
            if isinstance(event, RequestHeaders):
                session.respond(event.stream_id, 200, head, False)
                session.send_data(event.stream_id, body, True)
        return session.pending()

    return serve


def h2_server(body: bytes) -> Callable[[bytes], bytes]:
    config = h2.config.H2Configuration(client_side=False, validate_inbound_headers=True)
    connection = h2.connection.H2Connection(config)
    connection.initiate_connection()
    head = [
        (b":status", b"200"),
        (b"content-type", b"text/html"),
        (b"content-length", str(len(body)).encode()),
    ]

    def serve(data: bytes) -> bytes:
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                stream_id = event.stream_id
                connection.send_headers(stream_id, head)
                size = connection.max_outbound_frame_size
                for at in range(0, len(body), size):
                    piece = body[at : at + size]
                    connection.send_data(stream_id, piece, end_stream=at + size >= len(body))
                if not body:
                    connection.end_stream(stream_id)
        return connection.data_to_send()

    return serve


def run(
    server: Callable[[bytes], Callable[[bytes], bytes]],
    body: bytes,
    preface: bytes,
    reads: list[bytes],
) -> float:
    """CPU seconds the server spends on all the reads."""
    serve = server(body)
    serve(preface)
    started = time.process_time()
    for data in reads:
        serve(data)
    return time.process_time() - started


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    versions = f"libnghttp2 {load().version}, h2 {h2.__version__}"
    print(f"{versions}, {requests} requests, best of {rounds}")
    print(f"{'case':<28}{'nghttp2 us':>12}{'h2 us':>10}{'h2/nghttp2':>12}")
    for label, body in (("small GET (13 B)", b"hello, world\n"), ("64 KiB response", b"x" * 65536)):
        for per_read in (1, 10):
            preface, reads = record(requests, per_read)
            count = len(reads) * per_read
            ours = min(run(nghttp2_server, body, preface, reads) for _ in range(rounds))
            theirs = min(run(h2_server, body, preface, reads) for _ in range(rounds))
            name = f"{label}, {per_read}/read"
            print(
                f"{name:<28}{ours / count * 1e6:>12.1f}{theirs / count * 1e6:>10.1f}"
                f"{theirs / ours:>11.1f}x"
            )


if __name__ == "__main__":
    main()
