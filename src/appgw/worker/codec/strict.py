"""Request checks beyond llhttp's (pure): the gateway's desync defence.

llhttp (worker/codec/request_reader.py) already refuses what no reading of RFC 9112 allows:
Content-Length with Transfer-Encoding, a repeated or non-numeric
Content-Length, obsolete line folding, a bare LF or CR, whitespace before a
colon, control characters in a field value (tab aside), a transfer coding
list not ending in chunked, a bad chunk size. It accepts a few things that
a server may take but a gateway must not, because the backend behind it may
read the same bytes differently (request smuggling). They are checked here
on the parsed fields of every request head, before anything is forwarded.

Rejected with 400 (and the client connection closed):
- a header name that is a framing header in disguise (`Transfer_Encoding`,
  `Transfer---Encoding`);
- more than one Content-Length, or one that is not plain digits;
- any Transfer-Encoding but a single `chunked` (llhttp takes
  `gzip, chunked`);
- Transfer-Encoding together with Content-Length;
- Transfer-Encoding in an HTTP/1.0 request;
- no Host in an HTTP/1.1 request, more than one Host, or a Host that is not
  a valid host (`uri-host [":" port]`: control characters or spaces inside).

Rejected with 400 too (proxy.py, `authority_problem`): an absolute-form
target whose authority is not a valid host, or that comes with an empty
(or blank) Host.

Rejected with 505: a version other than HTTP/1.0 and HTTP/1.1 (after the
framing checks, so a smuggling attempt in an odd version is still a 400).

Forwarded, but the backend connection is not reused afterwards: a GET or
HEAD with a body (some servers ignore such bodies and would read them as the
next request).

What reaches the backend is re-serialised with one framing header
(headers.py), so whatever passes here is unambiguous by construction.
"""

from __future__ import annotations

import functools

from attrs import frozen

_FRAMING = {b"contentlength": b"content-length", b"transferencoding": b"transfer-encoding"}
_MAX_LENGTH_DIGITS = 15  # 1 PB; longer values are overflow probes
_VERSIONS = frozenset({"1.0", "1.1"})
# RFC 3986 reg-name, IP-literal and port characters: everything a Host may hold.
_HOST_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:[]"


@frozen
class Verdict:
    problem: str | None = None  # why the request is refused
    status: int = 400  # the status of the refusal
    reuse_backend: bool = True  # False: close the backend connection after it


ACCEPT = Verdict()
NO_REUSE = Verdict(reuse_backend=False)


@functools.lru_cache(maxsize=1024)  # a gateway sees the same few hosts again and again
def host_problem(host: bytes) -> str | None:
    """Why a Host value is not `uri-host [":" port]`, or None."""
    if not host:
        return None  # an empty Host is allowed when the target has no authority
    if host.translate(None, _HOST_CHARS):
        return f"Host {host!r} is not a valid host"
    name, colon, port = host.rpartition(b":") if not host.endswith(b"]") else (host, b"", b"")
    if colon and not name.endswith(b"]") and b":" in name:
        return f"Host {host!r} is not a valid host"
    if colon and port and not port.isdigit():
        return f"Host {host!r} has a bad port"
    return None


def authority_problem(authority: bytes, host: bytes | None) -> str | None:
    """Why an absolute-form request is refused: its authority is not a valid
    host, or its Host header has no valid value (an empty or blank Host is
    for targets without an authority, RFC 9112 §3.2), or None."""
    if not authority:
        return "absolute-form target without a host"
    problem = host_problem(authority)
    if problem:
        return problem.replace("Host", "request target's host", 1)
    if host is not None and not host:
        return "empty Host with an absolute-form target"
    return None


def inspect(method: bytes, version: str, headers: list[tuple[bytes, bytes]]) -> Verdict:
    """Check a parsed request head (names lowercased, as wire.py hands them over)."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    hosts: list[bytes] = []
    for name, value in headers:
        if name == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif name == b"transfer-encoding":
            codings.append(value.strip(b" \t"))
        elif name == b"host":
            hosts.append(value.strip(b" \t"))
        elif b"-" in name or b"_" in name:
            squashed = name.replace(b"-", b"").replace(b"_", b"")
            framing = _FRAMING.get(squashed)
            if framing is not None:
                return Verdict(f"header name {name!r} imitates {framing.decode()}")
    if len(lengths) > 1:
        return Verdict("more than one Content-Length")
    if lengths and not (lengths[0].isdigit() and len(lengths[0]) <= _MAX_LENGTH_DIGITS):
        return Verdict("Content-Length is not a plain number")
    if codings:
        if len(codings) != 1 or codings[0].lower() != b"chunked":
            return Verdict("Transfer-Encoding other than a single chunked")
        if lengths:
            return Verdict("both Transfer-Encoding and Content-Length")
        if version == "1.0":
            return Verdict("Transfer-Encoding in an HTTP/1.0 request")
    if version not in _VERSIONS:
        if lengths or codings:
            # The framing of a body in HTTP/0.9 (or an unknown 1.x) is undefined.
            return Verdict(f"a body framed in HTTP/{version}")
        return Verdict(f"HTTP/{version} is not supported", status=505)
    if len(hosts) > 1:
        return Verdict("more than one Host")
    if not hosts and version == "1.1":
        return Verdict("no Host in an HTTP/1.1 request")
    if hosts:
        problem = host_problem(hosts[0])
        if problem:
            return Verdict(problem)
    if method in (b"GET", b"HEAD") and (codings or (lengths and int(lengths[0]) > 0)):
        return NO_REUSE
    return ACCEPT
