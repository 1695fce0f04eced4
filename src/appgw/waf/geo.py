"""Countries of client addresses, from Debian's GeoIP country databases.

GeoMatch custom rules, and rate limits grouped by GeoLocation, need the
country of an address. Debian ships MaxMind's last free country databases
in the legacy GeoIP format (`geoip-database`: /usr/share/GeoIP/GeoIP.dat
for IPv4, GeoIPv6.dat for IPv6), read by `libgeoip1` (which libmodsecurity3
already needs), bound here through cffi in ABI mode. ModSecurity's own
`@geoLookup` cannot use them: it wants the City edition, which Debian does
not ship. The databases are read into memory once (GEOIP_MEMORY_CACHE).

An address the database does not map (private, loopback, unassigned) is
in "ZZ", the code Azure gives addresses it cannot place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appgw.config.waf import GEOIP_DATABASES as DATABASES

LIBRARY = "libGeoIP.so.1"
INSTALL_HINT = "Debian: apt-get install geoip-database libgeoip1"
UNKNOWN = "ZZ"

_CDEF = """
typedef struct GeoIPTag GeoIP;
GeoIP *GeoIP_open(const char *filename, int flags);
const char *GeoIP_country_code_by_addr(GeoIP *gi, const char *addr);
const char *GeoIP_country_code_by_addr_v6(GeoIP *gi, const char *addr);
void GeoIP_delete(GeoIP *gi);
"""
_MEMORY_CACHE = 1
_SILENCE = 16  # no messages of its own on stderr


class GeoUnavailable(Exception):
    """The library or a database is missing; the message says what to install."""


def problem(databases: tuple[str, str] = DATABASES) -> str | None:
    """Why countries cannot be looked up on this machine, or None."""
    for path in databases:
        if not Path(path).is_file():
            return f"GeoIP country database {path} not found; {INSTALL_HINT}"
    try:
        Countries(databases)
    except GeoUnavailable as e:
        return str(e)
    return None


class Countries:
    """`country(address)`: its ISO 3166 code, or "ZZ"."""

    def __init__(self, databases: tuple[str, str] = DATABASES) -> None:
        try:
            import cffi  # type: ignore[import-untyped]
        except ImportError:
            raise GeoUnavailable("GeoMatch needs the cffi package (pip install cffi)") from None
        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        try:
            self.lib: Any = self.ffi.dlopen(LIBRARY)
        except OSError:
            raise GeoUnavailable(f"{LIBRARY} not found; {INSTALL_HINT}") from None
        handles = []
        for path in databases:
            handle = self.lib.GeoIP_open(path.encode(), _MEMORY_CACHE | _SILENCE)
            if handle == self.ffi.NULL:
                raise GeoUnavailable(f"cannot open the GeoIP database {path}; {INSTALL_HINT}")
            handles.append(self.ffi.gc(handle, self.lib.GeoIP_delete))
        self.v4, self.v6 = handles
        self.cache: dict[str, str] = {}

    def country(self, address: str) -> str:
        found = self.cache.get(address)
        if found is None:
            if ":" in address:
                code = self.lib.GeoIP_country_code_by_addr_v6(self.v6, address.encode())
            else:
                code = self.lib.GeoIP_country_code_by_addr(self.v4, address.encode())
            found = UNKNOWN if code == self.ffi.NULL else self.ffi.string(code).decode()
            if found == "--":
                found = UNKNOWN
            if len(self.cache) >= 65_536:
                self.cache.clear()
            self.cache[address] = found
        return found
