"""The HTTP/2 codec's limits, as named settings.

The first six are what the server advertises in its SETTINGS frame and
enforces (the header limits are Application Gateway's documented 8 KB per
field and 16 KB per list). The connection window bounds the request bodies
a connection holds unforwarded. The rest bound what a hostile client can
make the gateway do without asking for anything (RFC 9113 section 10.5):
the budgets are token buckets, `*_burst` tokens that refill at
`*_per_second`; a client that runs one dry, or goes past a bound, gets
GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

from attrs import frozen


@frozen
class H2Settings:
    max_concurrent_streams: int = 100
    initial_window_bytes: int = 262144
    max_header_field_bytes: int = 8192
    max_header_list_bytes: int = 16384
    max_frame_bytes: int = 16384
    enable_connect_protocol: bool = True
    # The connection's receive window: what all streams' bodies may hold
    # unconsumed at once.
    connection_window_bytes: int = 1048576
    # Streams reset by the client (rapid reset, CVE-2023-44487) or by the
    # codec for the client's doing (reset flood, CVE-2019-9514).
    reset_burst: int = 200
    reset_per_second: float = 50.0
    # Frames that ask for work but carry no request: PING, SETTINGS,
    # PRIORITY, empty DATA without END_STREAM (CVE-2019-9512, -9515, -9513,
    # -9518).
    idle_frame_burst: int = 1000
    idle_frame_per_second: float = 100.0
    # CONTINUATION frames after one HEADERS (CVE-2024-28182).
    max_continuations: int = 8
    # A decoded header list this many times over max_header_list_bytes ends
    # the connection instead of answering 431 (an HPACK bomb).
    header_bomb_factor: int = 4
