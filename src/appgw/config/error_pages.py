"""Custom error pages: read from either format, fetched while loading.

Application Gateway's `customErrorConfigurations` (on the gateway and on
listeners) name a page per status: 400, 403, 405, 408, 500, 502, 503 or
504. The page is fetched when the configuration loads or reloads, from
`http://`, `https://`, `file:` or a plain file path (relative to the
configuration file), at most 1 MB, and kept in memory: serving it never
touches the network or the disk. A page that cannot be fetched is a
configuration error naming its key, so a reload keeps the old pages rather
than serving a broken one.

In appgw's TOML: `[error_pages]` and `[listeners.<name>.error_pages]`, each
a table of status to URL (`502 = "pages/502.html"`).
"""

from __future__ import annotations

import mimetypes
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from appgw.config.fields import Invalid, Section
from appgw.config.model import CUSTOM_ERROR_STATUSES, ErrorPage

if TYPE_CHECKING:
    from appgw.config.arm_reader import ArmReader

MAX_PAGE_BYTES = 1024 * 1024
FETCH_TIMEOUT = 10.0
DEFAULT_TYPE = "text/html; charset=utf-8"
ARM_STATUS_PREFIX = "httpstatus"  # "HttpStatus502"

Fetcher = Callable[[str, Path], tuple[bytes, str]]


def fetch(url: str, base: Path) -> tuple[bytes, str]:
    """(the page, its content type); raises Invalid saying why not."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise Invalid(f"{url!r}: a file: URL names a local file (file:///path)")
        return _read_file(Path(unquote(parts.path)), base)
    if scheme and len(scheme) > 1:  # "C:" is a path, not a scheme
        raise Invalid(f"{url!r} is not an http://, https:// or file: URL")
    return _read_file(Path(url), base)


def _read_file(path: Path, base: Path) -> tuple[bytes, str]:
    path = path.expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PAGE_BYTES + 1)
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror or e}") from None
    _check_size(data)
    kind, _ = mimetypes.guess_type(path.name)
    if kind is None or kind == "text/html":
        return data, DEFAULT_TYPE
    return data, kind + ("; charset=utf-8" if kind.startswith("text/") else "")


def _fetch_http(url: str) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "appgw"})
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT, context=context) as response:
            data = response.read(MAX_PAGE_BYTES + 1)
            kind = response.headers.get("Content-Type") or DEFAULT_TYPE
    except urllib.error.HTTPError as e:
        raise Invalid(f"cannot fetch {url}: {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise Invalid(f"cannot fetch {url}: {reason}") from None
    _check_size(data)
    return data, kind


def _check_size(data: bytes) -> None:
    if len(data) > MAX_PAGE_BYTES:
        raise Invalid(f"the page is larger than {MAX_PAGE_BYTES // 1024} KB")
    if not data:
        raise Invalid("the page is empty")


def _page(s: Section, key: str, status: int, url: str, base: Path, get: Fetcher) -> ErrorPage:
    try:
        body, kind = get(url, base)
    except Invalid as e:
        s.error(key, str(e))
        return ErrorPage(status, url)
    return ErrorPage(status, url, body, kind)


def read_toml(s: Section | None, base: Path, get: Fetcher = fetch) -> tuple[ErrorPage, ...]:
    """A TOML table of status -> URL (`error_pages`), each page fetched."""
    if s is None:
        return ()
    allowed = ", ".join(str(code) for code in CUSTOM_ERROR_STATUSES)
    pages = []
    for key in s.keys():
        url = s.data[key]
        if not key.isdigit() or int(key) not in CUSTOM_ERROR_STATUSES:
            s.error(key, f"not a status with a custom error page ({allowed})")
        elif not isinstance(url, str) or not url:
            s.error(key, "must be a URL or a file path")
        else:
            pages.append(_page(s, key, int(key), url, base, get))
    return tuple(pages)


def read_arm(
    arm: ArmReader, parent: Section, base: Path, get: Fetcher = fetch
) -> tuple[ErrorPage, ...]:
    """`customErrorConfigurations` of the gateway or a listener, each page fetched."""
    allowed = ", ".join(f"HttpStatus{code}" for code in CUSTOM_ERROR_STATUSES)
    pages: dict[int, ErrorPage] = {}
    for item in parent.get_sections("customErrorConfigurations"):
        code = item.get_str("statusCode", "", required=True)
        url = item.get_str("customErrorPageUrl", "", required=True)
        arm.finish(item, "customErrorConfigurations")
        if not code or not url:
            continue
        digits = code.lower().removeprefix(ARM_STATUS_PREFIX)
        if not digits.isdigit() or int(digits) not in CUSTOM_ERROR_STATUSES:
            item.error("statusCode", f"must be one of {allowed}, not {code!r}")
            continue
        if int(digits) in pages:
            item.error("statusCode", f"{code} has a page already")
            continue
        pages[int(digits)] = _page(item, "customErrorPageUrl", int(digits), url, base, get)
    return tuple(pages.values())
