"""Request framing checks beyond h11's (pure): the gateway's desync defence.

h11 parses leniently where RFC 9112 allows a recipient to: it unfolds
obsolete line folding, accepts bare LF line endings, merges
`Content-Length: 10,10`, and answers 501 to unknown transfer codings. A
server may do that safely; a gateway may not, because the backend behind it
may read the same bytes differently (request smuggling). So the raw head of
every request is checked here before anything is forwarded:

Rejected with 400 (and the client connection closed):
- Content-Length or Transfer-Encoding in a request of HTTP/0.9 or an
  unknown 1.x version (the framing is undefined there);
- a line ending in a bare LF, or a header line folded onto the previous one;
- a header name that is a framing header in disguise (`Transfer_Encoding`,
  `content-length` with junk, `Transfer---Encoding`);
- more than one Content-Length, or one that is not plain digits;
- any Transfer-Encoding but a single `chunked`;
- Transfer-Encoding together with Content-Length;
- Transfer-Encoding in an HTTP/1.0 request.

Forwarded, but the backend connection is not reused afterwards: a GET or
HEAD with a body (some servers ignore such bodies and would read them as the
next request).

What reaches the backend is re-serialised by h11 with one framing header
(headers.py), so whatever passes here is unambiguous by construction.
"""

from __future__ import annotations

from attrs import frozen

_FRAMING = {b"contentlength": b"content-length", b"transferencoding": b"transfer-encoding"}
_MAX_LENGTH_DIGITS = 15  # 1 PB; longer values are overflow probes


@frozen
class Verdict:
    problem: str | None = None  # why the request is refused (400)
    reuse_backend: bool = True  # False: close the backend connection after it


ACCEPT = Verdict()


def head_of(data: bytes | bytearray) -> bytes:
    """The request head at the start of `data` (leading empty lines skipped)."""
    start = 0
    while data[start : start + 2] == b"\r\n":
        start += 2
    end = data.find(b"\n\r\n", start)
    bare = data.find(b"\n\n", start)
    if end < 0 or (0 <= bare < end):
        end = bare
        return bytes(data[start : end + 1]) if end >= 0 else bytes(data[start:])
    return bytes(data[start : end + 1])


def inspect(head: bytes, method: bytes, http_version: bytes) -> Verdict:
    """Check a raw request head (request line and fields, each ending in LF)."""
    lines = head.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if not line.endswith(b"\r"):
            return Verdict("a line ends in a bare LF")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            return Verdict("obsolete line folding")
        name, _, value = line[:-1].partition(b":")
        lowered = name.lower()
        squashed = lowered.replace(b"-", b"").replace(b"_", b"").strip(b" \t")
        framing = _FRAMING.get(squashed)
        if framing is not None and lowered != framing:
            return Verdict(f"header name {name!r} imitates {framing.decode()}")
        if lowered == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif lowered == b"transfer-encoding":
            codings.append(value.strip(b" \t"))
    if (lengths or codings) and http_version not in (b"1.0", b"1.1"):
        # The framing of a body in HTTP/0.9 (or an unknown 1.x) is undefined.
        return Verdict(f"a body framed in HTTP/{http_version.decode('ascii', 'replace')}")
    if len(lengths) > 1:
        return Verdict("more than one Content-Length")
    if lengths and not (lengths[0].isdigit() and len(lengths[0]) <= _MAX_LENGTH_DIGITS):
        return Verdict("Content-Length is not a plain number")
    if codings:
        if len(codings) != 1 or codings[0].lower() != b"chunked":
            return Verdict("Transfer-Encoding other than a single chunked")
        if lengths:
            return Verdict("both Transfer-Encoding and Content-Length")
        if http_version == b"1.0":
            return Verdict("Transfer-Encoding in an HTTP/1.0 request")
    has_body = bool(codings) or (bool(lengths) and int(lengths[0]) > 0)
    if has_body and method in (b"GET", b"HEAD"):
        return Verdict(reuse_backend=False)
    return ACCEPT
