"""The HTTP desync classification table as raw requests.

The table (DESYNC_DIR, README there) lists requests by how dangerous their
framing is: Compliant, Acceptable, Ambiguous, Severe. Each case gives a
method, URI, version and headers; YAML's double-quoted escapes are decoded
by the YAML loader, and literal `\\t`, `\\r`, `\\n`, `\\xNN` sequences left in
plain scalars are decoded here. Characters up to U+00FF become the byte of
the same value.

A case becomes bytes as `METHOD SP URI SP VERSION CRLF`, a Host header (the
table leaves it out; HTTP/1.1 requires it), a marker header naming the
case and a padding header, the case's headers as `name: value`, and the
blank line. The body
follows the framing a strict HTTP/1.1 parser (h11) reads from that head, so
a case the gateway forwards completes instead of waiting for bytes that
never come.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs
import h11
import yaml

DESYNC_DIR = Path(os.environ.get("APPGW_DESYNC_CASES", "/work/shared/desync-cases"))
TIERS = ("Compliant", "Acceptable", "Ambiguous", "Severe")
BODY_FILL = b"B"
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|t|r|n)")


def _unescape(raw: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code.startswith(b"x"):
            return bytes([int(code[1:], 16)])
        return {b"t": b"\t", b"r": b"\r", b"n": b"\n"}[code]

    return _ESCAPE.sub(one, raw)


def to_bytes(value: object) -> bytes:
    """A YAML scalar as wire bytes (latin-1 where possible, else UTF-8), escapes decoded."""
    text = "" if value is None else str(value)
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    return _unescape(raw)


@attrs.frozen
class DesyncCase:
    id: str  # "<file stem>#<position>: <name>"
    name: str
    file: str
    tier: str
    reason: str
    method: bytes
    uri: bytes
    version: bytes
    headers: tuple[tuple[bytes, bytes], ...]

    def head(self, marker: str, host: bytes = b"gateway.test") -> bytes:
        lines = [self.method + b" " + self.uri + b" " + self.version]
        if not any(name.strip().lower() == b"host" for name, _ in self.headers):
            lines.append(b"Host: " + host)
        lines.append(b"X-Desync-Marker: " + marker.encode())
        # A case header that starts with whitespace continues the line before
        # it (obs-fold); this one takes it, so the marker stays intact.
        lines.append(b"X-Desync-Pad: 1")
        lines += [name + b": " + value for name, value in self.headers]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def request(self, marker: str, host: bytes = b"gateway.test") -> bytes:
        """The whole request: head, then a body in the framing h11 reads from the head."""
        head = self.head(marker, host)
        return head + body_for(head)


def strict_verdict(head: bytes) -> tuple[h11.Request | None, str]:
    """How h11 reads a request head: (the request, "") or (None, why it refuses it)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return None, str(exc)
    if isinstance(event, h11.Request):
        return event, ""
    return None, f"incomplete head ({event!r})"


def body_for(head: bytes, size: int = 5, limit: int = 8 * 1024 * 1024) -> bytes:
    """A body matching the framing h11 reads from `head`.

    Nothing if h11 refuses the head or announces more than `limit` bytes.
    """
    request, _ = strict_verdict(head)
    if request is None:
        return b""
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names:
        return b"%x\r\n%s\r\n0\r\n\r\n" % (size, BODY_FILL * size)
    for name, value in request.headers:
        if name == b"content-length":
            length = int(value)
            return BODY_FILL * length if length <= limit else b""
    return b""


def load_cases(directory: Path = DESYNC_DIR) -> list[DesyncCase]:
    """Every case of every *.yaml file in `directory`, in file order."""
    cases = []
    for path in sorted(directory.glob("*.yaml")):
        for position, item in enumerate(yaml.safe_load(path.read_text()) or [], start=1):
            tier = item["expected"]["tier"]
            if tier not in TIERS:
                raise ValueError(f"{path.name} #{position}: unknown tier {tier!r}")
            cases.append(
                DesyncCase(
                    id=f"{path.stem}#{position}: {item['name']}",
                    name=str(item["name"]),
                    file=path.name,
                    tier=tier,
                    reason=str(item["expected"].get("reason", "")),
                    method=to_bytes(item["method"]),
                    uri=to_bytes(item["uri"]),
                    version=to_bytes(item["version"]),
                    headers=tuple(
                        (to_bytes(h["name"]), to_bytes(h["value"]))
                        for h in item.get("headers") or ()
                    ),
                )
            )
    return cases
