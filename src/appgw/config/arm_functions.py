"""ARM's template functions that depend only on their arguments.

FUNCTIONS maps a lower-case name to a function of the evaluated arguments.
Each follows Microsoft's template functions reference (string, array,
object, logical, comparison, numeric); the functions that read the
deployment (parameters, variables, copyIndex, resourceId, reference, ...)
live in arm_scope.py. A bad argument raises Invalid naming the function.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from appgw.config.arm_expressions import type_name
from appgw.config.arm_format import format_string, to_string, unique_string
from appgw.config.fields import Invalid

Function = Callable[[list[Any]], Any]

# guid(): a name-based (version 5) UUID in this namespace, as ARM computes it.
GUID_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")


def _arity(name: str, args: list[Any], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(args) <= (high if high >= 0 else len(args)):
        want = str(low) if low == high else f"{low} or more" if high < 0 else f"{low} to {high}"
        raise Invalid(f"{name}() takes {want} argument(s), got {len(args)}")


def _want(name: str, value: Any, *types: type) -> Any:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(
            t.__name__.replace("str", "string").replace("dict", "object").replace("list", "array")
            for t in types
        )
        raise Invalid(f"{name}(): expected {names}, got {type_name(value)} {value!r}")
    return value


def fn(name: str, low: int, high: int | None = None) -> Callable[[Function], Function]:
    """Register a function with its arity (high -1: any number of arguments)."""

    def register(body: Function) -> Function:
        def checked(args: list[Any]) -> Any:
            _arity(name, args, low, high)
            return body(args)

        FUNCTIONS[name.lower()] = checked
        return body

    return register


FUNCTIONS: dict[str, Function] = {}

# -- strings ---------------------------------------------------------------


@fn("concat", 0, -1)
def _concat(a: list[Any]) -> Any:
    if a and all(isinstance(x, list) for x in a):
        return [item for x in a for item in x]
    return "".join(to_string(x) for x in a)


fn("format", 1, -1)(lambda a: format_string(_want("format", a[0], str), a[1:]))
fn("string", 1)(lambda a: to_string(a[0]))
fn("toLower", 1)(lambda a: _want("toLower", a[0], str).lower())
fn("toUpper", 1)(lambda a: _want("toUpper", a[0], str).upper())
fn("trim", 1)(lambda a: _want("trim", a[0], str).strip())
fn("replace", 3)(
    lambda a: _want("replace", a[0], str).replace(
        _want("replace", a[1], str), _want("replace", a[2], str)
    )
)
fn("startsWith", 2)(lambda a: str(a[0]).lower().startswith(str(a[1]).lower()))
fn("endsWith", 2)(lambda a: str(a[0]).lower().endswith(str(a[1]).lower()))
fn("indexOf", 2)(lambda a: str(a[0]).lower().find(str(a[1]).lower()))
fn("lastIndexOf", 2)(lambda a: str(a[0]).lower().rfind(str(a[1]).lower()))
fn("uniqueString", 1, -1)(lambda a: unique_string([_want("uniqueString", x, str) for x in a]))
fn("guid", 1, -1)(
    lambda a: str(uuid.uuid5(GUID_NAMESPACE, "-".join(_want("guid", x, str) for x in a)))
)
fn("newGuid", 0)(lambda a: str(uuid.uuid4()))
fn("base64", 1)(lambda a: base64.b64encode(_want("base64", a[0], str).encode()).decode())
fn("uriComponent", 1)(lambda a: urllib.parse.quote(_want("uriComponent", a[0], str), safe="-_.~"))
fn("uriComponentToString", 1)(lambda a: urllib.parse.unquote(_want("uriComponent", a[0], str)))
fn("dataUri", 1)(
    lambda a: (
        "data:text/plain;charset=utf8;base64,"
        + base64.b64encode(_want("dataUri", a[0], str).encode()).decode()
    )
)


fn("join", 2)(
    lambda a: _want("join", a[1], str).join(to_string(x) for x in _want("join", a[0], list))
)


@fn("split", 2)
def _split(a: list[Any]) -> Any:
    text = _want("split", a[0], str)
    delimiters = [a[1]] if isinstance(a[1], str) else _want("split", a[1], list)
    parts = [text]
    for d in delimiters:
        parts = [piece for part in parts for piece in part.split(_want("split", d, str))]
    return parts


@fn("substring", 1, 3)
def _substring(a: list[Any]) -> Any:
    text = _want("substring", a[0], str)
    start = _want("substring", a[1], int) if len(a) > 1 else 0
    length = _want("substring", a[2], int) if len(a) > 2 else len(text) - start
    if start < 0 or length < 0 or start + length > len(text):
        raise Invalid(
            f"substring(): start {start} and length {length} are outside the string "
            f"of length {len(text)}"
        )
    return text[start : start + length]


@fn("padLeft", 2, 3)
def _pad_left(a: list[Any]) -> Any:
    fill = _want("padLeft", a[2], str) if len(a) > 2 else " "
    if len(fill) != 1:
        raise Invalid("padLeft(): the padding must be one character")
    return to_string(a[0]).rjust(_want("padLeft", a[1], int), fill)


@fn("base64ToString", 1)
def _base64_to_string(a: list[Any]) -> Any:
    try:
        return base64.b64decode(_want("base64ToString", a[0], str), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Invalid(f"base64ToString(): {a[0]!r} is not base64 of UTF-8 text") from None


fn("base64ToJson", 1)(lambda a: _json([_base64_to_string(a)], "base64ToJson"))


@fn("uri", 2)
def _uri(a: list[Any]) -> Any:
    base, relative = _want("uri", a[0], str), _want("uri", a[1], str)
    return urllib.parse.urljoin(base, relative)


@fn("utcNow", 0, 1)
def _utc_now(a: list[Any]) -> Any:
    now = datetime.now(UTC)
    if not a:
        return now.strftime("%Y%m%dT%H%M%SZ")
    spec = {"u": "%Y-%m-%d %H:%M:%SZ", "d": "%m/%d/%Y", "s": "%Y-%m-%dT%H:%M:%S"}
    return now.strftime(spec.get(_want("utcNow", a[0], str), "%Y%m%dT%H%M%SZ"))


# -- arrays and objects ----------------------------------------------------


def _json(a: list[Any], name: str = "json") -> Any:
    try:
        return json.loads(_want(name, a[0], str))
    except ValueError as e:
        raise Invalid(f"{name}(): not valid JSON: {e}") from None


fn("json", 1)(_json)
fn("createArray", 0, -1)(lambda a: list(a))
fn("array", 1)(lambda a: list(a[0]) if isinstance(a[0], list) else [a[0]])
fn("empty", 1)(lambda a: a[0] is None or (not isinstance(a[0], bool | int) and len(a[0]) == 0))
fn("first", 1)(lambda a: a[0][0] if a[0] else ("" if isinstance(a[0], str) else None))
fn("last", 1)(lambda a: a[0][-1] if a[0] else ("" if isinstance(a[0], str) else None))
fn("length", 1)(lambda a: len(_want("length", a[0], str, list, dict)))
fn("take", 2)(lambda a: a[0][: max(0, _want("take", a[1], int))])
fn("skip", 2)(lambda a: a[0][max(0, _want("skip", a[1], int)) :])
fn("range", 2)(lambda a: list(range(_want("range", a[0], int), a[0] + _want("range", a[1], int))))
fn("coalesce", 1, -1)(lambda a: next((x for x in a if x is not None), None))
fn("objectKeys", 1)(lambda a: list(_want("objectKeys", a[0], dict)))
fn("items", 1)(
    lambda a: [{"key": k, "value": v} for k, v in sorted(_want("items", a[0], dict).items())]
)


@fn("createObject", 0, -1)
def _create_object(a: list[Any]) -> Any:
    if len(a) % 2:
        raise Invalid("createObject(): takes pairs of name and value")
    return {_want("createObject", a[i], str): a[i + 1] for i in range(0, len(a), 2)}


@fn("contains", 2)
def _contains(a: list[Any]) -> Any:
    container, item = a
    if isinstance(container, str):
        return to_string(item) in container
    if isinstance(container, Mapping):
        return any(str(k).lower() == str(item).lower() for k in container)
    return item in _want("contains", container, list)


@fn("union", 1, -1)
def _union(a: list[Any]) -> Any:
    if all(isinstance(x, Mapping) for x in a):
        merged: dict[str, Any] = {}
        for x in a:
            for k, v in x.items():
                if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping):
                    v = _union([merged[k], v])
                merged[k] = v
        return merged
    items: list[Any] = []
    for x in a:
        for item in _want("union", x, list):
            if item not in items:
                items.append(item)
    return items


@fn("intersection", 1, -1)
def _intersection(a: list[Any]) -> Any:
    if all(isinstance(x, Mapping) for x in a):
        return {k: v for k, v in a[0].items() if all(k in x and x[k] == v for x in a[1:])}
    return [item for item in _want("intersection", a[0], list) if all(item in x for x in a[1:])]


@fn("min", 1, -1)
def _min(a: list[Any]) -> Any:
    values = a[0] if len(a) == 1 and isinstance(a[0], list) else a
    return min(_want("min", v, int) for v in values)


@fn("max", 1, -1)
def _max(a: list[Any]) -> Any:
    values = a[0] if len(a) == 1 and isinstance(a[0], list) else a
    return max(_want("max", v, int) for v in values)


# -- logic and comparison --------------------------------------------------

fn("and", 2, -1)(lambda a: all(_want("and", x, bool) for x in a))
fn("or", 2, -1)(lambda a: any(_want("or", x, bool) for x in a))
fn("not", 1)(lambda a: not _want("not", a[0], bool))
fn("true", 0)(lambda a: True)
fn("false", 0)(lambda a: False)
fn("null", 0)(lambda a: None)


@fn("bool", 1)
def _bool(a: list[Any]) -> Any:
    value = a[0]
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int):
        return value != 0
    raise Invalid(f"bool(): cannot convert {value!r}")


def _equals(x: Any, y: Any) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    return bool(x == y)


fn("equals", 2)(lambda a: _equals(a[0], a[1]))


def _compare(name: str, test: Callable[[Any, Any], bool]) -> None:
    def body(a: list[Any]) -> Any:
        x, y = a
        both_int = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        if not both_int and not (isinstance(x, str) and isinstance(y, str)):
            raise Invalid(f"{name}(): compares two integers or two strings, not {x!r} and {y!r}")
        return test(x, y)

    fn(name, 2)(body)


_compare("less", lambda x, y: x < y)
_compare("lessOrEquals", lambda x, y: x <= y)
_compare("greater", lambda x, y: x > y)
_compare("greaterOrEquals", lambda x, y: x >= y)

# -- numbers ---------------------------------------------------------------


@fn("int", 1)
def _int(a: list[Any]) -> Any:
    try:
        return int(a[0]) if not isinstance(a[0], bool) else int(a[0])
    except (TypeError, ValueError):
        raise Invalid(f"int(): cannot convert {a[0]!r} to an integer") from None


fn("float", 1)(lambda a: float(a[0]))
fn("add", 2)(lambda a: _want("add", a[0], int) + _want("add", a[1], int))
fn("sub", 2)(lambda a: _want("sub", a[0], int) - _want("sub", a[1], int))
fn("mul", 2)(lambda a: _want("mul", a[0], int) * _want("mul", a[1], int))


def _divide(name: str, a: list[Any]) -> tuple[int, int]:
    x, y = _want(name, a[0], int), _want(name, a[1], int)
    if y == 0:
        raise Invalid(f"{name}(): division by zero")
    return x, y


def _div(a: list[Any]) -> int:
    x, y = _divide("div", a)
    quotient = abs(x) // abs(y)  # truncated toward zero, as .NET does
    return quotient if (x >= 0) == (y >= 0) else -quotient


def _mod(a: list[Any]) -> int:
    x, y = _divide("mod", a)
    return x - y * _div([x, y])


fn("div", 2)(_div)
fn("mod", 2)(_mod)
