"""Text that ARM's functions make: string(), format() and uniqueString().

- `to_string` is ARM's conversion to a string: booleans as .NET writes them
  (True, False), arrays and objects as compact JSON, null as "".
- `format_string` is .NET's composite format (`{0}`, `{1:N0}`, `{0,5}`,
  `{{` and `}}`), which format() uses.
- `unique_string` is ARM's uniqueString(): its arguments joined with "-",
  hashed with the 64-bit MurmurHash variant Azure Resource Manager uses
  (two interleaved 32-bit lanes, seed 0), and the hash (and a zero bit)
  written as 13 characters of lower-case base32 (a-z, 2-7).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from appgw.config.fields import Invalid


def to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)(?:,(-?\d+))?(?::([^}]*))?\}|[{}]")


def format_string(template: str, args: list[Any]) -> str:
    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        if match.group(1) is None:
            raise Invalid(f"format(): {template!r} has an unmatched {text!r}")
        index = int(match.group(1))
        if index >= len(args):
            raise Invalid(f"format(): {{{index}}} but only {len(args)} value(s) given")
        out = _format_value(args[index], match.group(3) or "")
        width = int(match.group(2) or 0)
        return out.rjust(width) if width >= 0 else out.ljust(-width)

    return _ITEM.sub(one, template)


def _format_value(value: Any, spec: str) -> str:
    if not spec:
        return to_string(value)
    kind, digits = spec[0].upper(), spec[1:]
    if not isinstance(value, int | float) or isinstance(value, bool) or kind not in "DNXFP":
        raise Invalid(f"format(): the format {spec!r} is not supported for {value!r}")
    places = int(digits) if digits.isdigit() else None
    if kind == "D":
        text = str(abs(int(value))).rjust(places or 0, "0")
        return ("-" if value < 0 else "") + text
    if kind == "X":
        text = format(int(value), "x" if spec[0] == "x" else "X")
        return text.rjust(places or 0, "0")
    if kind == "N":
        return f"{value:,.{2 if places is None else places}f}"
    if kind == "P":
        return f"{value * 100:,.{2 if places is None else places}f} %"
    return f"{value:.{2 if places is None else places}f}"


_M32 = 0xFFFFFFFF
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _mix(h: int) -> int:
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _M32
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def murmur64(data: bytes) -> int:
    """Azure Resource Manager's 64-bit MurmurHash (seed 0)."""
    c1, c2 = 0xAB0E9789, 0x239B961B
    h1 = h2 = 0
    length = len(data)
    whole = length - length % 8
    for i in range(0, whole, 8):
        k1 = int.from_bytes(data[i : i + 4], "little")
        k2 = int.from_bytes(data[i + 4 : i + 8], "little")
        h1 ^= _rotl((k1 * c2) & _M32, 15) * c1 & _M32
        h1 = (_rotl(h1, 19) + h2) & _M32
        h1 = (h1 * 5 + 0x561CCD1B) & _M32
        h2 ^= _rotl((k2 * c1) & _M32, 17) * c2 & _M32
        h2 = (_rotl(h2, 13) + h1) & _M32
        h2 = (h2 * 5 + 0x0BCAA747) & _M32
    rest = data[whole:]
    if rest:
        k1 = int.from_bytes(rest[:4], "little")
        h1 ^= _rotl((k1 * c2) & _M32, 15) * c1 & _M32
        if len(rest) > 4:
            k2 = int.from_bytes(rest[4:], "little")
            h2 ^= _rotl((k2 * c1) & _M32, 17) * c2 & _M32
    h2 ^= length
    h1 = ((h1 ^ length) + h2) & _M32
    h2 = (h2 + h1) & _M32
    h1, h2 = _mix(h1), _mix(h2)
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32
    return (h2 << 32) | h1


def unique_string(parts: list[str]) -> str:
    h = murmur64("-".join(parts).encode())
    bits = h << 1  # 65 bits: 13 characters of 5
    return "".join(_BASE32[(bits >> (60 - 5 * i)) & 31] for i in range(13))
