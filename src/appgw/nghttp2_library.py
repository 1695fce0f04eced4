"""Where libnghttp2 is, and what to install where it is not.

Shared by the configuration check (HTTP/2 enabled on a machine without the
library is a configuration error, found by `appgw check` and at load) and
the HTTP/2 codec, which opens the library (worker/codec/nghttp2_lib.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

PACKAGE = "libnghttp2-14"
SONAME = "libnghttp2.so.14"
INSTALL_HINT = f"install the Debian package {PACKAGE} (apt-get install {PACKAGE})"


def names(soname: str = SONAME) -> list[str]:
    """The names to open the library by, the ABI's own first."""
    found = ctypes.util.find_library("nghttp2")
    return [soname] + ([found] if found and found != soname else [])


def problem() -> str | None:
    """Why this machine cannot serve HTTP/2, or None."""
    for name in names():
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return None
    return f"HTTP/2 needs libnghttp2 ({SONAME} not found; {INSTALL_HINT})"
