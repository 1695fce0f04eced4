"""The state libnghttp2's callbacks (h2_callbacks.py) keep for one HTTP/2
connection: the header block being read, DATA chunks until their frame
ends, events in arrival order, the response bodies waiting for nghttp2 to
frame them. `Streams` is the callbacks' `user_data` (through
`ffi.new_handle`); it holds no reference to the session that owns it, so
the two make no cycle.

The defences that need counting keep their counts here, each a `Budget`
(a token bucket with the clock passed in): streams reset by the client or,
for its doing, by the codec (rapid reset, reset floods), and frames that
carry no request (PING, SETTINGS, PRIORITY, empty DATA). Running one dry
sets `calm`; the callback then fails where it can (which stops nghttp2's
parsing at once) and the session queues GOAWAY ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from appgw.worker.codec import nghttp2_lib as ng
from appgw.worker.codec.h2_events import ErrorCode, Event
from appgw.worker.codec.h2_settings import H2Settings

HEADER_FIELD_OVERHEAD = 32  # RFC 9113 6.5.2: a field's size is name + value + 32


class Budget:
    """A token bucket: `burst` tokens, refilled at `per_second`."""

    __slots__ = ("burst", "per_second", "tokens", "stamp")

    def __init__(self, burst: int, per_second: float, now: float) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self.tokens = float(burst)
        self.stamp = now

    def spend(self, now: float) -> bool:
        """Take one token; False once the bucket is empty."""
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if tokens < 1:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1
        return True


class Body:
    """A response body send_data took and nghttp2 has not framed yet: the
    caller's bytes objects themselves, no copy until the frame."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: deque[bytes | memoryview] = deque()
        self.size = 0

    def __len__(self) -> int:
        return self.size


class Streams:
    """What the callbacks record for one connection."""

    __slots__ = (
        "events",
        "block_stream",
        "fields",
        "size",
        "block_refused",
        "refused",
        "chunks",
        "announced",
        "unconsumed",
        "outgoing",
        "ending",
        "buffered",
        "opened",
        "calm",
        "remote_goaway",
        "clock",
        "resets",
        "uncounted",
        "receiving",
        "idle_frames",
        "continuations",
        "max_continuations",
        "field_limit",
        "list_limit",
        "bomb_limit",
        "stream_limit",
    )

    def __init__(self, settings: H2Settings, clock: Callable[[], float]) -> None:
        self.events: list[Event] = []
        # The header block being read: one at a time on a connection (RFC
        # 9113 6.10), so no table by stream.
        self.block_stream = 0
        self.fields: list[tuple[bytes, bytes]] = []
        self.size = 0
        self.block_refused = False  # over a limit: fields no longer kept
        self.refused: set[int] = set()  # heads over a limit: 431, body dropped
        self.chunks: dict[int, list[bytes]] = {}  # DATA of a frame not yet ended
        self.announced: set[int] = set()  # streams the server has been told of
        self.unconsumed: dict[int, int] = {}  # delivered, not yet consumed()
        self.outgoing: dict[int, Body] = {}  # response bodies taken, not yet framed
        self.ending: set[int] = set()  # END_STREAM once their body runs out
        self.buffered = 0  # the sum of their sizes
        self.opened: set[int] = set()  # WindowOpened made by this receive()
        self.calm: tuple[int, str] | None = None
        self.remote_goaway = False
        self.clock = clock
        now = clock()
        self.resets = Budget(settings.reset_burst, settings.reset_per_second, now)
        # Streams whose close spends no reset budget: reset by the server,
        # or by the client (counted when its RST_STREAM came).
        self.uncounted: set[int] = set()
        self.receiving = False  # inside nghttp2_session_mem_recv
        self.idle_frames = Budget(settings.idle_frame_burst, settings.idle_frame_per_second, now)
        self.continuations = 0
        self.max_continuations = settings.max_continuations
        self.field_limit = settings.max_header_field_bytes
        self.list_limit = settings.max_header_list_bytes
        self.bomb_limit = settings.max_header_list_bytes * settings.header_bomb_factor
        self.stream_limit = settings.max_concurrent_streams

    def forget(self, stream_id: int) -> int:
        """Drop a closed stream's state; returns its unconsumed byte count."""
        self.chunks.pop(stream_id, None)
        self.refused.discard(stream_id)
        self.ending.discard(stream_id)
        body = self.outgoing.pop(stream_id, None)
        if body is not None:
            self.buffered -= body.size
        return self.unconsumed.pop(stream_id, 0)

    def idle_frame(self) -> int:
        if self.idle_frames.spend(self.clock()):
            return 0
        self.calm = (ErrorCode.ENHANCE_YOUR_CALM, "too many frames that carry no request")
        return ng.ERR_CALLBACK_FAILURE
