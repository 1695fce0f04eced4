"""Rewrite action values: templates parsed once, rendered per request (pure).

A value is text with `{variable}` references (see `rewrite.py` for the
rules). `parse_template` splits it once per configuration into literal text,
variables and capture references to a rule's conditions; `render` joins the
parts for one request, reading variables through its `Scope` and captures
from the conditions' matches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen

from appgw.patterns import Match
from appgw.worker.policy.variables import Scope, latin1

_REFERENCE = re.compile(r"\{((?:http_req_|http_resp_|var_)[^{}\s]+)\}")

REQ, RESP, VAR = 0, 1, 2


@frozen
class Variable:
    kind: int  # REQ | RESP | VAR
    key: bytes | str  # lowercase header name, or server variable name


@frozen
class Capture:
    condition: int  # index into the rule's conditions
    group: int


Part = str | Variable | Capture
Template = tuple[Part, ...]


def parse_variable(name: str) -> Variable:
    if name.startswith("http_req_"):
        return Variable(REQ, name[9:].lower().encode("utf-8", "surrogatepass"))
    if name.startswith("http_resp_"):
        return Variable(RESP, name[10:].lower().encode("utf-8", "surrogatepass"))
    if name.startswith("var_"):
        return Variable(VAR, name[4:])
    return Variable(VAR, "")  # not a variable at all: always ""


def parse_template(text: str, captures: dict[str, int]) -> Template:
    parts: list[Part] = []
    at = 0
    for m in _REFERENCE.finditer(text):
        if m.start() > at:
            parts.append(latin1(text[at : m.start()]))
        parts.append(_reference(m.group(1), captures))
        at = m.end()
    if at < len(text):
        parts.append(latin1(text[at:]))
    return tuple(parts)


def _reference(token: str, captures: dict[str, int]) -> Part:
    base, sep, digits = token.rpartition("_")
    if sep and digits.isdigit() and base in captures:
        return Capture(captures[base], int(digits))
    return parse_variable(token)


def variable_value(scope: Scope, variable: Variable) -> str:
    if variable.kind == VAR:
        return scope.server(variable.key)  # type: ignore[arg-type]
    return scope.header(variable.kind == RESP, variable.key)  # type: ignore[arg-type]


def render(template: Template, scope: Scope, matches: Sequence[Match | None]) -> str:
    out = []
    for part in template:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, Capture):
            m = matches[part.condition]
            try:
                out.append((m.group(part.group) or "") if m is not None else "")
            except IndexError:
                pass
        else:
            out.append(variable_value(scope, part))
    return "".join(out)
